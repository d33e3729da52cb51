"""Exported weights for sampling: one safetensors file holding the (EMA) denoiser weights and, in
its metadata, the run's config as JSON. Loading never unpickles anything; only constructors
under ``diffsuite.`` may be named by a stored config. Files written before the package moved under
the ``diffsuite`` namespace name ``core.*`` / ``domains.*``; they load unchanged."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from ..errors import MissingFileError, UserError, WouldOverwriteError

ALLOWED_TARGET_PREFIXES = ("diffsuite.",)
LEGACY_TARGET_PREFIXES = ("core.", "domains.")  # exports written before the diffsuite namespace


def export_weights(path: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write weights + config atomically (temp file, fsync, rename); refuse to overwrite."""
    path = Path(path)
    if path.exists():
        raise WouldOverwriteError(f"{path} exists; exported weights are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"diffsuite_config": json.dumps(config)})
        # safetensors writes the file 0600 (as mkstemp would): that hid the weights from a team
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    """The process umask, read without setting it where Linux shows it (setting it to read it is
    process-wide, and races with threads that create files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_exported(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no exported weights at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file: {e}") from e
    kind = weights_kind(meta)
    if kind != "denoiser":
        raise UserError(f"{path} holds {kind}, not denoiser weights; checkpoint= expects the "
                        "export/weights.safetensors that `diffsuite train` writes")
    config = json.loads(meta["diffsuite_config"])
    _check_targets(config, str(path))
    return state, config


def weights_kind(meta: dict[str, str]) -> str:
    """What a safetensors file's metadata says it holds: "denoiser", or a phrase naming the other
    thing (a domain's classifier, whose file is for evaluate's classifier=, or an unknown file)."""
    if "classifier_config" in meta:  # the video classifier's first format
        return "a video classifier (the weights evaluate's classifier= takes)"
    try:
        config = json.loads(meta.get("diffsuite_config", "null"))
    except json.JSONDecodeError:
        config = None
    if not isinstance(config, dict):
        return "no diffsuite config (a safetensors file not written by diffsuite)"
    if "domain" in config and "model" in config:
        return "denoiser"
    kind = str(config.get("kind", "something else"))
    if kind.endswith("_classifier"):
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind.replace('_', ' ')} (the weights evaluate's classifier= takes)"
    return f"{kind.replace('_', ' ')} weights"


def _check_targets(node: Any, where: str) -> None:
    """Refuse any constructor outside diffsuite; move legacy ``core.``/``domains.`` names under it."""
    if isinstance(node, dict):
        t = node.get("_target_")
        if t is not None and str(t).startswith(LEGACY_TARGET_PREFIXES):
            node["_target_"] = t = f"diffsuite.{t}"
        if t is not None and not str(t).startswith(ALLOWED_TARGET_PREFIXES):
            raise UserError(f"{where}: refusing to build {t!r}; stored configs may only name diffsuite.*")
        for v in node.values():
            _check_targets(v, where)
    elif isinstance(node, list):
        for v in node:
            _check_targets(v, where)


def build_from_export(path: str | Path, device: str | torch.device = "cpu", expect_domain: str | None = None):
    """(domain, denoiser, config) from an exported file; the denoiser is in eval mode."""
    state, config = load_exported(path)
    domain, denoiser = _build(state, config, path)
    if expect_domain is not None and domain.name != expect_domain:
        raise UserError(f"{path} holds a {domain.name!r} model, not a {expect_domain!r} one; pass domain={domain.name}")
    return domain, denoiser.to(device).eval(), config


def misfit(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """How stored weights `state` fail to fit a network's `own` state dict (keys it lacks, keys it
    does not know, shapes that differ), or None when they fit."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return None
    return f"missing {missing[:5]}, unexpected {unexpected[:5]}, shapes (stored vs network) {shapes[:3]}"


def _build(state: dict[str, torch.Tensor], config: dict[str, Any], path: str | Path):
    from hydra.utils import instantiate

    domain = instantiate(config["domain"])
    denoiser = instantiate(config["model"]["precond"])(domain.network())
    problem = misfit(denoiser.state_dict(), state)
    if problem:
        raise UserError(f"{path} does not fit the network its config builds: {problem}")
    denoiser.load_state_dict(state)
    return domain, denoiser


def check_export(path: str | Path) -> None:
    """Load-check a file just exported, as a user will load it: the stored domain config must
    rebuild the domain (and rebuilt, give back the same config), and the weights must fit the
    network that domain builds. A mismatch is a bug in the domain's config, not a user error.
    (The file was written from this process's own domain, so a domain outside diffsuite, a test's
    or a user's plug-in, is built here too; loading it elsewhere still refuses such targets.)"""
    state = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["diffsuite_config"])
    domain, _ = _build(state, config, path)
    stored, rebuilt = config["domain"], domain.config()
    if rebuilt != stored:
        differ = sorted(k for k in set(stored) | set(rebuilt) if stored.get(k, KeyError) != rebuilt.get(k, KeyError))
        raise RuntimeError(f"{path}: the stored domain config does not rebuild its domain (keys {differ} differ): "
                           f"{type(domain).__name__}.config() drifted from its constructor")


def export_half(src: str | Path, dst: str | Path) -> Path:
    """A float16 copy of exported weights (half the bytes; what the repository ships), with the same
    config; loading casts back to the network's float32. Refused when a weight does not fit float16."""
    state, config = load_exported(src)
    half = {}
    for k, v in state.items():
        if v.is_floating_point():
            h = v.to(torch.float16)
            if not torch.isfinite(h).all():
                raise UserError(f"{src}: weight {k} overflows float16 (max |w| {v.abs().max().item():.3g}); keep float32")
            half[k] = h
        else:
            half[k] = v
    return export_weights(dst, half, config)


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Export a checkpoint folder of a run (``<run_dir>/checkpoints/step_N``) as the trainer exports
    its last step: the first EMA's weights (float32) with the domain, model and sampling options of
    the run's config, load-checked. For sampling or evaluating a run part of the way through."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ..domain import config_options
    from .checkpoint import checkpoint_weights

    weights, run = checkpoint_weights(Path(src))
    _check_targets(run, str(src))  # built below: only diffsuite.* constructors, as for a loaded export
    cfg = OmegaConf.create(run)
    domain = instantiate(cfg.domain)
    config = {"domain": domain.config(), "model": OmegaConf.to_container(cfg.model, resolve=True),
              "seed": run.get("seed"), "step": run["step"], "source_checkpoint": str(src),
              "sample_options": config_options(cfg)}
    path = export_weights(dst, weights, config)
    check_export(path)
    return path


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m diffsuite.core.training.export SRC DST.safetensors\n"
                         "  SRC a .safetensors export: DST is its float16 copy (what the repository ships)\n"
                         "  SRC a checkpoint folder (run_dir/checkpoints/step_N): DST is its EMA weights, exported")
    from .checkpoint import CheckpointError

    try:
        src = Path(sys.argv[1])
        print(export_checkpoint(src, sys.argv[2]) if src.is_dir() else export_half(src, sys.argv[2]))
    except (UserError, FileExistsError, CheckpointError) as e:
        raise SystemExit(f"error: {e}") from None

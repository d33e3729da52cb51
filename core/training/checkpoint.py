"""Resumable checkpoints through torch.distributed.checkpoint (DCP).

A checkpoint is a directory ``<run_dir>/checkpoints/step_<N>/`` holding

* the DCP files (model, optimizer, EMA shadows: sharded or replicated tensors, written by all
  ranks in parallel and resharded on load, so a run resumes on another number of processes);
* ``trainer_state.json``: step, data position, LR schedule, seed, world size, counters (JSON,
  so reading it never unpickles anything);
* ``manifest.json``, written last: the size and sha256 of every other file.

Writes are atomic: everything goes to ``.tmp_step_<N>/`` and is renamed into place only when
complete, so a crash mid-write leaves the previous checkpoint as the latest. Before a resume the
manifest is checked; a truncated or corrupted checkpoint is refused with an error that names it
and the previous good one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException

from .distributed import DistInfo, barrier, broadcast_object

log = logging.getLogger("diffsuite.train")

STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"
PREFIX = "step_"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names it (and a good one)."""


@contextmanager
def _single_process_ok():
    """DCP warns that it runs without a process group; in a single process that is the intent."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete-looking checkpoint directories under `root`, oldest first (temp dirs excluded)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def verify_checkpoint(path: Path, *, hashes: bool = True) -> dict[str, Any]:
    """The trainer state of a checkpoint, or CheckpointError saying what is wrong with it."""
    man_path = path / MANIFEST
    if not man_path.is_file():
        raise CheckpointError(f"checkpoint {path} has no {MANIFEST}: it was not written completely")
    try:
        manifest = json.loads(man_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: {MANIFEST} is unreadable ({e})") from e
    for name, entry in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
        size = f.stat().st_size
        if size != entry["size"]:
            raise CheckpointError(f"checkpoint {path} is corrupted: {name} holds {size} bytes, "
                                  f"the manifest says {entry['size']} (truncated?)")
        if hashes and entry.get("sha256") and _sha256(f) != entry["sha256"]:
            raise CheckpointError(f"checkpoint {path} is corrupted: the sha256 of {name} does not match its manifest")
    try:
        return json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} is unreadable ({e})") from e


def save_checkpoint(root: Path, step: int, state: dict[str, Any], trainer_state: dict[str, Any], info: DistInfo, *,
                    keep: int, hashes: bool = True) -> Path:
    """Write a checkpoint atomically (a collective: every rank calls it) and keep the last `keep`."""
    final = root / checkpoint_name(step)
    tmp = root / f".tmp_{checkpoint_name(step)}"
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp_*"):  # left by a crash mid-write
            shutil.rmtree(stale, ignore_errors=True)
    good = None
    if info.is_main and final.exists():
        try:  # e.g. SIGTERM right after a periodic save of the same step: keep a sound one
            verify_checkpoint(final, hashes=hashes)
            good = True
        except CheckpointError as e:  # a damaged one is moved aside and written again
            log.warning("%s; moving it aside and writing step %d again", e, step)
            shutil.rmtree(root / f".bad_{final.name}", ignore_errors=True)
            final.rename(root / f".bad_{final.name}")
    if broadcast_object(good, info):
        log.info("checkpoint %s already holds a sound step %d; kept it", final, step)
        return final
    barrier(info)
    with _single_process_ok():
        dcp.save(state, checkpoint_id=str(tmp))
    barrier(info)
    if info.is_main:
        _write_json(tmp / STATE_FILE, trainer_state)
        files = {}
        for f in sorted(tmp.iterdir()):
            if f.is_file():
                files[f.name] = {"size": f.stat().st_size, "sha256": _sha256(f) if hashes else None}
        _write_json(tmp / MANIFEST, {"step": step, "files": files})
        _fsync_dir(tmp)
        os.replace(tmp, final)
        _fsync_dir(root)
        for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        log.info("wrote checkpoint %s", final)
    barrier(info)
    return final


def set_aside_later(run_dir: Path, step: int, info: DistInfo) -> Path | None:
    """Resuming step `step` of a run that went further starts a new branch: checkpoints of later
    steps and exports of later steps are moved (never deleted) to ``<run_dir>/superseded/
    from_step_<step>[_k]/``, so what the run writes and returns next is this branch's own. Rank 0
    moves, every rank gets the folder (None when nothing was later)."""
    moved: Path | None = None
    if info.is_main:
        later = [c for c in list_checkpoints(run_dir / "checkpoints") if _step_of(c) > step]
        exports = [f for f in sorted((run_dir / "export").glob("*.safetensors")) if _export_step(f) != step]
        if later or (exports and any(_export_step(f) is None or _export_step(f) > step for f in exports)):
            base = run_dir / "superseded" / f"from_{checkpoint_name(step)}"
            moved, k = base, 1
            while moved.exists():
                moved, k = base.with_name(f"{base.name}_{k}"), k + 1
            (moved / "checkpoints").mkdir(parents=True)
            for c in later:
                os.replace(c, moved / "checkpoints" / c.name)
            if (run_dir / "export").is_dir():
                os.replace(run_dir / "export", moved / "export")
            log.warning("resuming step %d of a run that went on to step %s: its later checkpoints (%s) and its "
                        "export were moved to %s; this run continues as a new branch from step %d", step,
                        max([_step_of(c) for c in later], default="?"), ", ".join(c.name for c in later) or "none",
                        moved, step)
    return broadcast_object(moved, info)


def _export_step(path: Path) -> int | None:
    """The training step an exported file records (None when unreadable)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return int(json.loads((f.metadata() or {})["diffsuite_config"])["step"])
    except Exception:  # noqa: BLE001 -- a broken or foreign file counts as not this branch's
        return None


def choose_checkpoint(resume: Any, run_dir: Path, info: DistInfo, *, hashes: bool = True) -> Path | None:
    """The checkpoint to resume from (rank 0 decides, every rank gets the answer).

    resume: ``auto`` -- the newest good checkpoint of run_dir (a corrupted newer one is skipped
    with a warning that names it), or none; ``never``/null/false -- none (and run_dir must hold
    no checkpoint, so nothing is overwritten); a path -- that checkpoint (or the newest good one
    of that run directory), refused with an error naming the previous good one if corrupted.
    """
    choice: Path | None | Exception = None
    if info.is_main:
        try:
            choice = _choose(resume, run_dir, hashes)
        except Exception as e:  # raised on every rank below
            choice = e
    choice = broadcast_object(choice, info)
    if isinstance(choice, Exception):
        raise choice
    return choice


def _newest_good(root: Path, hashes: bool, below: int | None = None) -> tuple[Path | None, list[str]]:
    problems = []
    for c in reversed(list_checkpoints(root)):
        if below is not None and int(c.name[len(PREFIX):]) >= below:
            continue
        try:
            verify_checkpoint(c, hashes=hashes)
            return c, problems
        except CheckpointError as e:
            problems.append(str(e))
    return None, problems


def _choose(resume: Any, run_dir: Path, hashes: bool) -> Path | None:
    root = run_dir / "checkpoints"
    if resume in (None, False) or str(resume).lower() in ("never", "none", "null", "false", "no"):
        if list_checkpoints(root):
            raise CheckpointError(f"{run_dir} already holds checkpoints and resume={resume}; "
                                  "pass resume=auto to continue that run, or choose another run_dir")
        return None
    if str(resume).lower() == "auto":
        good, problems = _newest_good(root, hashes)
        for p in problems:
            log.warning("%s; skipping it", p)
        if good is None and problems:
            raise CheckpointError(f"no usable checkpoint in {root}:\n  " + "\n  ".join(problems))
        if good is not None and problems:
            log.warning("resuming from the previous good checkpoint %s", good)
        return good
    path = Path(str(resume)).expanduser()
    if (path / "checkpoints").is_dir():  # a run directory
        path = path / "checkpoints"
    if path.is_dir() and not (path / MANIFEST).exists() and list_checkpoints(path):  # a checkpoints folder
        good, problems = _newest_good(path, hashes)
        if good is None:
            raise CheckpointError(f"no usable checkpoint in {path}:\n  " + "\n  ".join(problems))
        for p in problems:
            log.warning("%s; skipping it", p)
        return good
    if not path.is_dir():
        raise CheckpointError(f"resume={resume}: no checkpoint directory at {path}")
    try:
        verify_checkpoint(path, hashes=hashes)
    except CheckpointError as e:
        prev, _ = _newest_good(path.parent, hashes, below=_step_of(path))
        hint = f"; the previous good checkpoint is {prev} (pass resume={prev})" if prev else "; no earlier good checkpoint beside it"
        raise CheckpointError(f"{e}{hint}") from e
    return path


def _step_of(path: Path) -> int | None:
    tail = path.name[len(PREFIX):]
    return int(tail) if path.name.startswith(PREFIX) and tail.isdigit() else None


def read_trainer_state(path: Path) -> dict[str, Any]:
    """The trainer state (JSON) of a checkpoint, without touching its tensors."""
    try:
        return json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: {STATE_FILE} is unreadable ({e})") from e


def mismatch(path: Path, state: dict[str, Any]) -> list[str]:
    """How the tensors of `state` differ from those stored in checkpoint `path`: keys this run
    has that the checkpoint lacks, model keys only the checkpoint has, and shapes that differ."""
    from torch.distributed.checkpoint._nested_dict import flatten_state_dict
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    stored = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata
    flat, _ = flatten_state_dict(state)
    out = []
    missing = [k for k in flat if k not in stored]
    extra = [k for k in stored if k not in flat and k.startswith("model.")]  # e.g. a dropped EMA decay is fine
    if missing:
        out.append(f"{len(missing)} key(s) of this run are not in it: {_some(missing)}")
    if extra:
        out.append(f"{len(extra)} key(s) in it are not in this run: {_some(extra)}")
    shapes = [f"{k} {tuple(stored[k].size)} in the checkpoint, {tuple(v.shape)} here" for k, v in flat.items()
              if k in stored and isinstance(stored[k], TensorStorageMetadata) and hasattr(v, "shape")
              and tuple(stored[k].size) != tuple(v.shape)]
    if shapes:
        out.append(f"{len(shapes)} shape(s) differ: {_some(shapes)}")
    return out


def _some(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def checkpoint_weights(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(weights, run config) of a checkpoint folder, for ``init=`` (a warm start): its first EMA
    shadow (the raw weights when it keeps none), and the config the run wrote beside its
    checkpoints (``<run_dir>/config.yaml``)."""
    import tempfile

    from omegaconf import OmegaConf
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    path = Path(path)
    verify_checkpoint(path, hashes=True)  # names the folder when it is incomplete or corrupt
    run_config = path.parent.parent / "config.yaml"
    if not run_config.is_file():
        raise CheckpointError(f"checkpoint {path}: its run's {run_config} is missing, so what it trained is unknown")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with _single_process_ok():
                dcp_to_torch_save(str(path), f"{tmp}/state.pt")
            state = torch.load(f"{tmp}/state.pt", weights_only=True)
        except (Exception, CheckpointException) as e:  # DCP's CheckpointException is a BaseException
            raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    shadows = state.get("ema") or {}
    weights = next(iter(shadows.values())) if shadows else state["model"]
    config = OmegaConf.to_container(OmegaConf.load(run_config), resolve=False)
    config["step"] = read_trainer_state(path).get("step")
    return weights, config


def load_checkpoint(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Load the DCP tensors of `path` in place into `state` (resharding as needed) and return
    the trainer state. Errors name the checkpoint, and the keys or shapes that differ."""
    try:
        problems = mismatch(path, state)
    except Exception as e:  # unreadable metadata: let the load below say what it finds
        problems = []
        log.debug("could not compare %s with this run: %s", path, e)
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit this run (another domain, network, preset or "
                              f"trainer.ema?): " + "; ".join(problems) + ". Resume with the settings it was "
                              "written with, or start a new run_dir.")
    try:
        with _single_process_ok():
            dcp.load(state, checkpoint_id=str(path))
    except (Exception, CheckpointException) as e:  # DCP's CheckpointException is a BaseException
        raise CheckpointError(f"cannot load checkpoint {path}: {type(e).__name__}: {e}") from e
    return read_trainer_state(path)

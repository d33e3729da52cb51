"""`diffsuite train|sample|evaluate|demo`: hydra entry points over `configs/`.

Each command is a hydra app, so every config key can be overridden (`domain=audio steps=25`),
groups are listed by `diffsuite <command> --help`, each run gets its own output folder, and
`-m hydra/launcher=submitit_slurm` sends a run to Slurm.

Errors: a bad request (an unknown key or group option, a value out of range, a file that is
missing or unreadable; anything raised as ``core.errors.UserError``) prints one line,
``diffsuite: <what, which value, what is allowed>``, exits with status 2 and leaves no run folder
behind; an exception of any other kind is a bug and keeps its traceback. ``HYDRA_FULL_ERROR=1``
prints the full traceback in both cases.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from .errors import UserError, WouldOverwriteError, one_line, user_error_in, user_message

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
COMMANDS = {
    "train": "train a denoiser (configs/train.yaml)",
    "sample": "draw samples from exported weights and write files (configs/sample.yaml)",
    "evaluate": "offline quality figures for sample files (configs/evaluate.yaml)",
    "demo": "train the toy and sample every domain's shipped weights (configs/demo.yaml)",
    "plot": "learning curves of run folders: PNG + CSV each, overlaid (diffsuite plot RUN_DIR ... out=DIR)",
}
USAGE = "usage: diffsuite {train,sample,evaluate,demo,plot} [key=value ...] [group=option ...]\n\n" + "\n".join(
    f"  {k:<9} {v}" for k, v in COMMANDS.items()) + (
    "\n\n`diffsuite COMMAND --help` lists the config groups and the composed config.\n"
    "examples:\n  diffsuite sample domain=audio n=16 class=3 seconds=1.0 out=clips\n"
    "  diffsuite evaluate domain=molecules samples=mols/molecules.sdf out=figures.json\n")


def resolve_device(name: str) -> str:
    """auto (CUDA when there is one, else CPU), cpu, cuda, cuda:N or mps; one that is not there is
    a user error naming it."""
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise UserError(f"device={name!r} is not a device; expected auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= count:
            raise UserError(f"device={name} but this machine has {count} CUDA device(s); use device=auto or device=cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device=mps but no Apple-silicon GPU is available here; use device=auto or device=cpu")
    return name


def print_table(title: str, figures: dict[str, float]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k in figures) if figures else 0
    for k, v in figures.items():
        print(f"  {k:<{width}}  {v:.4g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


def run_train(cfg) -> None:
    from .training import train

    path = train(cfg)
    print(f"exported weights: {path}")


def run_sample(cfg) -> None:
    """A thin layer over the Python API (core/api.py): the same loading, options and writing."""
    from .api import Model

    model = Model.from_config(cfg)
    files = model.sample_from_config(cfg, progress=True).save(cfg.out)
    print(f"wrote {len(files)} files to {cfg.out}:")
    for f in files:
        print(f"  {f}")


def run_evaluate(cfg) -> None:
    from .api import evaluate_from_config

    name, figures = evaluate_from_config(cfg)  # the Python API's diffsuite.evaluate, from the same config
    print_table(f"{name}: {cfg.samples}", figures)
    if cfg.out:
        out = Path(cfg.out)
        if out.exists():
            raise WouldOverwriteError(f"out={out} exists; figures are never overwritten")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {out}")


def run_demo(cfg) -> None:
    from .demo import demo

    demo(cfg)


RUNNERS = {"train": run_train, "sample": run_sample, "evaluate": run_evaluate, "demo": run_demo}


def _fail(message: str) -> NoReturn:
    """Print a user error as one line and exit with status 2."""
    print(f"diffsuite: {one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


class _UserExit(SystemExit):
    """Carries a user error out of hydra: hydra's job runner catches only ``Exception``."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


def _full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def _override_error(command: str, overrides: list[str], e: Exception) -> str:
    """One line for a hydra composition error: the override, the key or option, what is allowed."""
    from hydra.errors import MissingConfigException

    text = one_line(e)
    if isinstance(e, MissingConfigException) and e.options is not None and e.missing_cfg_file:
        group, _, choice = str(e.missing_cfg_file).rpartition("/")
        return f"{group}={choice}: no such {group}; expected one of {', '.join(sorted(e.options))}"
    m = re.match(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        bad = next((o for o in overrides if o.split("=", 1)[0].lstrip("~+") == key), key)
        where, _, leaf = key.rpartition(".")
        known = _keys_at(command, [o for o in overrides if o != bad], where)
        allowed = f"; the keys{' under ' + where if where else ''} are: {', '.join(known)}" if known else ""
        return (f"unknown option {key!r} in {bad!r}: `diffsuite {command}` has no such key{allowed} "
                f"(+{key}=... adds a new key)")
    return f"bad command-line override ({' '.join(overrides)}): {text}"


def _keys_at(command: str, overrides: list[str], where: str) -> list[str]:
    """The config keys under `where` ('' = top level), hydra's own excluded; [] if they cannot be had."""
    from omegaconf import OmegaConf

    try:
        cfg = _compose(command, overrides)
        node = OmegaConf.select(cfg, where) if where else cfg
        return sorted(k for k in node.keys() if k != "hydra")
    except Exception:  # noqa: BLE001 -- only a hint for the message
        return []


def _compose(command: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name=command):
        cfg = compose(config_name=command, overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    return cfg


def _check_overrides(command: str, argv: list[str]) -> None:
    """Compose the config once before hydra runs, so that a bad override (a key that does not
    exist, an unknown group option, a syntax error) is one line, not hydra's report, and no run
    folder is made for it. Rare hydra flags (another config, --help, --info, ...) skip the check."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # hydra's parser reports a bad flag itself when the app runs
        return
    if (args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_name
            or args.config_dir or args.experimental_rerun):
        return
    overrides = list(args.overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        if args.multirun:  # check the sweep's first job
            from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

            jobs = BasicSweeper.split_arguments(parsed, None)
            overrides = list(jobs[0][0]) if jobs and jobs[0] else []
        elif any(o.is_sweep_override() for o in parsed):
            bad = next(o.input_line for o in parsed if o.is_sweep_override())
            raise UserError(f"{bad!r} lists several values; run a sweep with -m (diffsuite {command} -m {bad})")
        _compose(command, overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(_override_error(command, overrides, e)) from e


def _output_dir_state() -> tuple[Path, bool] | None:
    """(hydra's run folder, whether it holds nothing but what hydra just wrote into it)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        out = Path(hc.runtime.output_dir)
        log = f"{hc.job.name}.log"
        sub = hc.output_subdir
    except Exception:  # noqa: BLE001 -- not under hydra (tests calling a runner directly)
        return None
    names = set(os.listdir(out)) if out.is_dir() else set()
    fresh = names <= {sub, log} and (log not in names or (out / log).stat().st_size == 0)
    if fresh and sub in names:
        fresh = set(os.listdir(out / sub)) <= {"config.yaml", "hydra.yaml", "overrides.yaml"}
    return out, fresh


def _close_log_files_under(folder: Path) -> None:
    """Detach and close every logging file handler writing inside `folder`."""
    import logging

    folder = folder.resolve()
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for h in list(lg.handlers):
            if isinstance(h, logging.FileHandler) and folder in Path(h.baseFilename).resolve().parents:
                lg.removeHandler(h)
                h.close()


def _remove_fresh_output_dir(state: tuple[Path, bool] | None) -> None:
    """After a user error, remove hydra's run folder if it held nothing before this run: a bad
    request leaves nothing behind. Folders are removed only when empty, up to the working folder."""
    if state is None or not state[1]:
        return
    from hydra.core.hydra_config import HydraConfig

    out = state[0]
    hc = HydraConfig.get()
    sub = out / hc.output_subdir if hc.output_subdir else None
    _close_log_files_under(out)  # hydra's job log: a handler left open would reopen it (or fail) on the next record
    for f in [out / f"{hc.job.name}.log"] + ([sub / n for n in ("config.yaml", "hydra.yaml", "overrides.yaml")] if sub else []):
        with contextlib.suppress(OSError):
            f.unlink()
    cwd = Path.cwd().resolve()
    for d in [sub, out, *out.resolve().parents] if sub else [out, *out.resolve().parents]:
        d = d.resolve()
        if d == cwd or cwd not in d.parents:
            break
        try:
            d.rmdir()  # only an empty folder goes
        except OSError:
            break


def _guarded(runner):
    """The hydra task: runs `runner`; a user error leaves as `_UserExit` (one line, status 2)."""

    @functools.wraps(runner)
    def task(cfg) -> None:
        state = _output_dir_state()
        try:
            runner(cfg)
        except Exception as e:
            found = user_error_in(e)
            if found is None:
                raise  # a bug: hydra prints the traceback (all of it with HYDRA_FULL_ERROR=1)
            _remove_fresh_output_dir(state)
            if _full_error():
                traceback.print_exc()
            raise _UserExit(user_message(found)) from e

    return task


def main(argv: list[str] | None = None) -> None:
    """`diffsuite COMMAND [overrides]`. A user error (bad option, value or file) is one line on
    stderr, `diffsuite: ...`, and exit status 2; a bug keeps its traceback."""
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "plot":  # run folders and out=DIR: no hydra config to compose
        from .training.curves import PlotError, main as plot

        try:
            plot(rest)
        except PlotError as e:
            print(f"diffsuite: plot: {' '.join(str(e).split())}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    if command not in RUNNERS:
        _fail(f"unknown command {command!r}; expected one of {', '.join(RUNNERS)} (diffsuite --help)")
    try:
        _check_overrides(command, rest)
    except UserError as e:
        if _full_error():
            traceback.print_exc()
        _fail(str(e))
    sys.argv = [f"diffsuite {command}", *rest]
    app = hydra.main(config_path=CONFIG_DIR, config_name=command, version_base="1.3")(_guarded(RUNNERS[command]))
    try:
        app()
    except _UserExit as e:
        _fail(e.message)


if __name__ == "__main__":
    main()

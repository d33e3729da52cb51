"""`diffsuite plot RUN_DIR [RUN_DIR ...] [out=DIR]`: learning curves from training run folders.

A run folder is what `diffsuite train` writes (``log.csv``, and ``evals.csv`` when
``trainer.eval_every`` is on). For each run this draws the loss and every evaluation figure
against steps (left column) and wall time (right column) into ``<out>/<run>.png``, and writes the
same numbers to ``<out>/<run>.csv`` (one row per step that has a loss or an evaluation). With
several runs it also draws them overlaid in ``<out>/overlay.png`` (each run one colour, labelled by
its folder). Figures that never change in a run (sample counts) are left out of the picture but
kept in the CSV; a figure's reference on real data (``real_<name>``, ``<name>_real...``) is drawn
as a dashed line in that figure's panel. Plots are derived files: running the command again
replaces them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

LOG_CSV = "log.csv"
EVALS_CSV = "evals.csv"
META = {"step", "wall_s", "eval_s", "nfe", "n", "loss", "epoch", "lr", "grad_norm", "samples_per_s", "skipped",
        "elapsed_s"}


# figures that count or time things rather than measure quality: never the summary's main metric
BOOKKEEPING = {"n", "samples", "molecules", "seconds", "classifier_test_accuracy"}


def is_reference(name: str) -> bool:
    """A figure of real data, measured beside the samples' (``real_fd``, ``fd_real_heldout``,
    ``sliced_wasserstein_real``, audio's ``vocoded_fd``)."""
    return name.startswith(("real_", "vocoded_")) or "_real" in name


def is_bookkeeping(name: str) -> bool:
    return name in BOOKKEEPING or name.endswith("_samples") or name.startswith("n_")


class PlotError(ValueError):
    """A request the plot command cannot follow (an unknown option, no folder): one line."""


class NotARunError(PlotError):
    """A folder given to the plot command that `diffsuite train` did not write."""


@dataclass
class RunCurves:
    name: str
    path: Path
    loss: list[tuple[int, float, float]] = field(default_factory=list)  # (step, wall_s, loss)
    evals: list[dict[str, float]] = field(default_factory=list)  # step, wall_s, eval_s, nfe, figures...
    figures: list[str] = field(default_factory=list)  # evaluation figure names, in column order


def _number(v: str | None) -> float | None:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def read_run(run_dir: Path | str, name: str | None = None) -> RunCurves:
    """The loss rows of ``log.csv`` and the rows of ``evals.csv``; a folder without ``log.csv``
    raises NotARunError naming it."""
    path = Path(run_dir)
    log_csv = path / LOG_CSV
    if not path.is_dir():
        raise NotARunError(f"{path}: no such folder (expected a run folder written by `diffsuite train`)")
    if not log_csv.is_file():
        raise NotARunError(f"{path}: not a training run folder (it has no {LOG_CSV}; pass the run_dir of "
                           f"`diffsuite train`)")
    run = RunCurves(name=name or path.resolve().name, path=path)
    wall = 0.0
    with open(log_csv, newline="") as f:
        reader = csv.DictReader(f)
        if "step" not in (reader.fieldnames or []) or "loss" not in (reader.fieldnames or []):
            raise NotARunError(f"{log_csv}: not a training log (no step and loss columns)")
        for r in reader:
            step, loss = _number(r.get("step")), _number(r.get("loss"))
            if step is None or loss is None:
                continue
            w = _number(r.get("wall_s"))
            wall = w if w is not None else wall + (_number(r.get("elapsed_s")) or 0.0)  # logs older than wall_s
            run.loss.append((int(step), wall, loss))
    evals_csv = path / EVALS_CSV
    if evals_csv.is_file():
        with open(evals_csv, newline="") as f:
            reader = csv.DictReader(f)
            run.figures = [c for c in (reader.fieldnames or []) if c not in META]
            for r in reader:
                row = {k: _number(v) for k, v in r.items() if k is not None}
                if row.get("step") is not None:
                    run.evals.append({k: v for k, v in row.items() if v is not None})
    return run


def curves_table(run: RunCurves) -> tuple[list[str], list[dict]]:
    """One row per step with a loss and/or an evaluation: step, wall_s (of the loss row), loss,
    eval_wall_s (when the evaluation ended), eval_s, nfe, then the evaluation figures."""
    rows: dict[int, dict] = {}
    for step, wall, loss in run.loss:
        rows.setdefault(step, {"step": step})
        rows[step].update(wall_s=wall, loss=loss)
    for e in run.evals:
        step = int(e["step"])
        row = rows.setdefault(step, {"step": step})
        row.update({k: v for k, v in e.items() if k not in ("step", "loss", "wall_s")})
        if "wall_s" in e:  # the evaluation follows the step's log row: its own, later, wall time
            row["eval_wall_s"] = e["wall_s"]
            row.setdefault("wall_s", e["wall_s"])
        if "loss" not in row and "loss" in e:
            row["loss"] = e["loss"]
    columns = ["step", "wall_s", "loss", "eval_wall_s", "eval_s", "nfe", *run.figures]
    return columns, [rows[s] for s in sorted(rows)]


def plotted_figures(run: RunCurves) -> tuple[list[str], dict[str, str]]:
    """Figures drawn as panels (those that vary), and for each the reference figure drawn in it."""
    refs: dict[str, str] = {}
    for k in run.figures:
        if is_reference(k):
            continue
        for ref in run.figures:  # real_fd for fd, sliced_wasserstein_real for sliced_wasserstein, fd_real_heldout
            if ref == f"real_{k}" or ref.startswith(f"{k}_real"):
                refs[k] = ref
                break
    shown = []
    for k in run.figures:
        if k in refs.values():
            continue
        values = {e[k] for e in run.evals if k in e and math.isfinite(e[k])}
        if len(values) > 1 or (len(run.evals) == 1 and values):
            shown.append(k)
    return shown, refs


def _series(run: RunCurves, key: str, x: str) -> tuple[list[float], list[float]]:
    if key == "loss":
        return [s if x == "step" else w for s, w, _ in run.loss], [v for _, _, v in run.loss]
    pts = [(e[x], e[key]) for e in run.evals if key in e and x in e]
    return [p[0] for p in pts], [p[1] for p in pts]


def draw(runs: list[RunCurves], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[str] = ["loss"]
    refs: dict[str, dict[str, str]] = {}
    for run in runs:
        shown, ref = plotted_figures(run)
        refs[run.name] = ref
        panels += [k for k in shown if k not in panels]
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 2.6 * len(panels)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(panels):
        for j, x in enumerate(("step", "wall_s")):
            ax = axes[i][j]
            for c, run in enumerate(runs):
                colour = colours[c % len(colours)]
                xs, ys = _series(run, key, x)
                if not xs:
                    continue
                style = dict(marker="o", markersize=3) if key != "loss" else {}
                ax.plot(xs, ys, color=colour, label=run.name if len(runs) > 1 else None, **style)
                ref = refs[run.name].get(key)
                if ref:
                    rx, ry = _series(run, ref, x)
                    if ry:
                        ax.axhline(ry[-1], color=colour, linestyle="--", linewidth=1,
                                   label=f"{ref}" if len(runs) == 1 else f"{run.name}: {ref}")
            if key == "loss" and all(v > 0 for r in runs for _, _, v in r.loss):
                ax.set_yscale("log")
            ax.set_ylabel(key)
            ax.set_xlabel("step" if x == "step" else "wall time (s)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def write_table(run: RunCurves, out: Path, *, with_run: bool = False) -> Path:
    columns, rows = curves_table(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=(["run"] if with_run else []) + columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**({"run": run.name} if with_run else {}), **r})
    return out


def _names(paths: list[Path]) -> list[str]:
    """Folder names, with the parent's name added where two runs share a name."""
    names = [p.resolve().name for p in paths]
    return [f"{p.resolve().parent.name}-{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def plot_runs(run_dirs: list[Path | str], out: Path | str) -> list[Path]:
    """Per run ``<out>/<name>.png`` and ``<out>/<name>.csv``; with several runs also
    ``<out>/overlay.png`` and ``<out>/overlay.csv`` (the rows of all runs, with a run column)."""
    if not run_dirs:
        raise PlotError("give at least one run folder")
    paths = [Path(p) for p in run_dirs]
    runs = [read_run(p, n) for p, n in zip(paths, _names(paths))]  # refuse a bad folder before drawing anything
    out = Path(out)
    written = []
    for run in runs:
        if not run.loss and not run.evals:
            raise NotARunError(f"{run.path}: the run has logged nothing yet ({LOG_CSV} has no rows)")
        written.append(draw([run], out / f"{run.name}.png", f"{run.name}: {len(run.loss)} loss rows, "
                                                             f"{len(run.evals)} evaluations"))
        written.append(write_table(run, out / f"{run.name}.csv"))
    if len(runs) > 1:
        written.append(draw(runs, out / "overlay.png", " vs ".join(r.name for r in runs)))
        overlay = out / "overlay.csv"
        columns = ["run"]
        tables = [curves_table(r) for r in runs]
        for cols, _ in tables:
            columns += [c for c in cols if c not in columns]
        with open(overlay, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            for run, (_, rows) in zip(runs, tables):
                w.writerows({"run": run.name, **r} for r in rows)
        written.append(overlay)
    return written


USAGE = ("usage: diffsuite plot RUN_DIR [RUN_DIR ...] [out=DIR]\n"
         "  learning curves (loss and every evaluation figure against steps and wall time) of runs written\n"
         "  by `diffsuite train`: <out>/<run>.png and .csv per run, <out>/overlay.png and .csv for several.\n"
         "  out defaults to RUN_DIR/curves for one run, ./curves for several.")


def main(args: list[str]) -> list[Path]:
    """The command line: positional run folders and ``out=DIR``; a bad request raises PlotError."""
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return []
    out: str | None = None
    runs: list[str] = []
    for a in args:
        if a.startswith("out="):
            out = a[len("out="):]
        elif "=" in a and not Path(a).exists():
            raise PlotError(f"unknown option {a.split('=')[0]!r}; the plot command takes run folders and out=DIR")
        else:
            runs.append(a)
    if not runs:
        raise PlotError("no run folder given: diffsuite plot RUN_DIR [RUN_DIR ...] [out=DIR]")
    target = Path(out) if out else (Path(runs[0]) / "curves" if len(runs) == 1 else Path("curves"))
    written = plot_runs(runs, target)
    for p in written:
        print(p)
    return written

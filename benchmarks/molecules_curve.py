"""Molecules: the learning curve -- the three protocols' molecule stabilities, validity and
uniqueness against training steps and CPU hours -- for the joint model and the positions-only
baseline, read from each run's periodic evaluations (``<run_dir>/evals.csv``, written by the
trainer every ``trainer.eval_every`` steps from the EMA weights).

    python benchmarks/molecules_curve.py runs/molecules/qm9_joint_s runs/molecules/qm9_egnn_s_curve [--no-record]
    python benchmarks/molecules_curve.py runs/molecules/qm9_joint_s+runs/molecules/qm9_joint_s2 --cores 1

``A+B`` is one curve of a run B warm-started (``init=``) from the end of run A: B's steps and wall
time continue from A's last logged step and wall time.

The baseline needs a run with evaluations on, e.g.
``diffsuite train experiment=molecules_default trainer.eval_every=500 trainer.eval_n=48 trainer.eval_steps=25
run_dir=runs/molecules/qm9_egnn_s_curve``. Appends the tables under ``## Molecules`` in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import re
from pathlib import Path

import yaml

from _results import RESULTS, machine, record

COLUMNS = [("strict_molecule_stability", "strict mol"), ("midi_molecule_stability", "MiDi mol"),
           ("edm_molecule_stability", "EDM mol"), ("strict_atom_stability", "strict atom"),
           ("validity", "valid"), ("connected_validity", "connected valid"), ("uniqueness", "unique")]


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "evals.csv"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: train with trainer.eval_every > 0 (configs/experiment/molecules_joint.yaml)")
    return list(csv.DictReader(path.open()))


def _last_logged(run_dir: Path) -> tuple[int, float]:
    """(step, wall seconds) of the last row of a run's log.csv: where a run continuing it starts."""
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    if not rows:
        raise SystemExit(f"{run_dir / 'log.csv'} holds no step")
    return int(rows[-1]["step"]), float(rows[-1]["wall_s"])


def curve(spec: str, cores: float) -> str:
    stages = [Path(p) for p in spec.split("+")]
    rows, step0, wall0 = [], 0, 0.0
    for i, run_dir in enumerate(stages):
        for r in _rows(run_dir):
            rows.append({**r, "step": int(r["step"]) + step0, "wall_s": float(r["wall_s"]) + wall0, "stage": i + 1})
        if i + 1 < len(stages):
            step, wall = _last_logged(run_dir)
            init = re.search(r"step_(\d+)", str(yaml.safe_load((stages[i + 1] / "config.yaml").read_text()).get("init")))
            step0, wall0 = step0 + (int(init.group(1)) if init else step), wall0 + wall  # the checkpoint it started from
    if not rows:
        raise SystemExit(f"{spec}: no evaluation yet")
    head = "| step | wall h | CPU h | loss | samples (NFE) | " + " | ".join(h for _, h in COLUMNS) + " |"
    title = " then ".join(f"`{p}`" for p in stages)
    lines = [title, "", head, "|" + "---|" * (5 + len(COLUMNS))]
    for r in rows:
        wall = r["wall_s"] / 3600
        cells = [f"{100 * float(r[k]):.1f}%" if r.get(k) not in (None, "") else "-" for k, _ in COLUMNS]
        stage = f" ({r['stage']})" if len(stages) > 1 else ""
        lines.append(f"| {r['step']}{stage} | {wall:.2f} | {wall * cores:.2f} | {float(r['loss']):.3f} | {r['n']} ({r['nfe']}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="run directories (each with evals.csv); A+B: B continues A")
    ap.add_argument("--cores", type=float, default=2.0, help="CPU cores the runs used (CPU h = wall h x cores)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    text = "\n\n".join(curve(r, args.cores) for r in args.runs)
    print(text)
    if not args.no_record:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        record("## Molecules", f"Learning curve, `benchmarks/molecules_curve.py`, {stamp}, {machine('cpu')}; "
                               f"figures from each run's periodic evaluations (EMA weights, the same seed each time; "
                               f"wall time includes the evaluations).\n\n{text}\n")
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()

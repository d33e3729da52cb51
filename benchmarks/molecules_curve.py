"""Molecules: the learning curve -- the three protocols' molecule stabilities, validity and
uniqueness against training steps and CPU hours -- for the joint model and the positions-only
baseline, read from each run's periodic evaluations (``<run_dir>/evals.csv``, written by the
trainer every ``trainer.eval_every`` steps from the EMA weights).

    python benchmarks/molecules_curve.py runs/molecules/qm9_joint_s runs/molecules/qm9_egnn_s_curve [--no-record]

The baseline needs a run with evaluations on, e.g.
``diffsuite train experiment=molecules_default trainer.eval_every=500 trainer.eval_n=48 trainer.eval_steps=25
run_dir=runs/molecules/qm9_egnn_s_curve``. Appends the tables under ``## Molecules`` in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
from pathlib import Path

from _results import RESULTS, machine, record

COLUMNS = [("strict_molecule_stability", "strict mol"), ("midi_molecule_stability", "MiDi mol"),
           ("edm_molecule_stability", "EDM mol"), ("strict_atom_stability", "strict atom"),
           ("validity", "valid"), ("connected_validity", "connected valid"), ("uniqueness", "unique")]


def curve(run_dir: Path, cores: float) -> str:
    path = run_dir / "evals.csv"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: train with trainer.eval_every > 0 (configs/experiment/molecules_joint.yaml)")
    rows = list(csv.DictReader(path.open()))
    if not rows:
        raise SystemExit(f"{path} holds no evaluation yet")
    head = "| step | wall h | CPU h | loss | samples (NFE) | " + " | ".join(h for _, h in COLUMNS) + " |"
    lines = [f"`{run_dir}`", "", head, "|" + "---|" * (5 + len(COLUMNS))]
    for r in rows:
        wall = float(r["wall_s"]) / 3600
        cells = [f"{100 * float(r[k]):.1f}%" if r.get(k) not in (None, "") else "-" for k, _ in COLUMNS]
        lines.append(f"| {r['step']} | {wall:.2f} | {wall * cores:.2f} | {float(r['loss']):.3f} | {r['n']} ({r['nfe']}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (each with evals.csv)")
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

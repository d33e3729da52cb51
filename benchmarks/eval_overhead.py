"""Periodic evaluation's cost (issue 16): the same training run with and without
``trainer.eval_every``, at the trainer's default evaluation settings (eval_n=16, eval_steps=32,
the run's sampler: Heun, 63 network evaluations per sample).

    .venv/bin/python benchmarks/eval_overhead.py                      # toy S (batch 256), audio XS (batch 32)
    .venv/bin/python benchmarks/eval_overhead.py --domains toy --steps 60 --no-write

Each domain trains `--steps` steps twice: without evaluation, then evaluated at the middle and the
last step. From the run folders: the seconds per training step (log.csv wall_s, setup excluded),
the seconds of the second evaluation (evals.csv eval_s: warm, as every evaluation after the first
is in a long run), the measured slowdown of the evaluated run, and the overhead a run would see at
``eval_every`` = E: eval_s / (E * step_s). The table is printed and recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
import tempfile
from pathlib import Path

import torch

from _results import machine, record

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETUPS = {  # the domain's size preset and a batch its shipped recipe uses
    "toy": ["domain=toy", "domain.preset=S", "trainer.batch_size=256"],
    "audio": ["domain=audio", "domain.preset=XS", "trainer.batch_size=32"],
}
EVERY = (250, 500, 1000, 2000)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def measure(name: str, steps: int, tmp: Path) -> dict:
    from hydra import compose, initialize_config_dir

    from diffsuite.core.training import fit

    base = [*SETUPS[name], "trainer.device=cpu", "trainer.num_workers=0", "trainer.progress=false",
            "trainer.tensorboard=true", f"trainer.steps={steps}", "trainer.log_every=1", "trainer.checkpoint_every=0",
            "trainer.warmup=0"]
    out = {}
    for label, every in (("plain", 0), ("evaluated", steps // 2)):
        run_dir = tmp / f"{name}_{label}"
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*base, f"trainer.eval_every={every}", f"run_dir={run_dir}"])
        fit(cfg)
        log = rows(run_dir / "log.csv")
        first, last = float(log[0]["wall_s"]), float(log[-1]["wall_s"])
        out[label] = {"step_s": (last - first) / (len(log) - 1), "end_s": last}
        if every:
            ev = rows(run_dir / "evals.csv")
            out[label]["end_s"] = float(ev[-1]["wall_s"])
            out["eval_s"] = [float(r["eval_s"]) for r in ev]
            out["nfe"] = int(ev[-1]["nfe"])
    step_s = out["plain"]["step_s"]
    warm = out["eval_s"][-1]
    return {"domain": name, "step_s": step_s, "eval_s_first": out["eval_s"][0], "eval_s": warm, "nfe": out["nfe"],
            "slowdown": out["evaluated"]["end_s"] / out["plain"]["end_s"] - 1, "steps": steps,
            "overhead": {e: warm / (e * step_s) for e in EVERY}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.domains:
            results.append(measure(name, args.steps, Path(tmp)))
    head = "| domain | s/step | eval s (first, warm) | NFE | slowdown, 2 evals in {steps} steps | " + " | ".join(
        f"overhead at eval_every={e}" for e in EVERY) + " |"
    lines = [f"{datetime.date.today()}, {machine('cpu')}; default eval settings (16 samples, 32 Heun steps)", "",
             head.format(steps=args.steps), "|" + "---|" * (5 + len(EVERY))]
    for r in results:
        lines.append(f"| {r['domain']} | {r['step_s']:.3f} | {r['eval_s_first']:.1f}, {r['eval_s']:.1f} | {r['nfe']} | "
                     f"{100 * r['slowdown']:.0f}% | " + " | ".join(f"{100 * r['overhead'][e]:.1f}%" for e in EVERY) + " |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        record("## Periodic evaluation overhead", text)


if __name__ == "__main__":
    main()

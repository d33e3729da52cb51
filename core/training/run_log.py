"""What a run reports: a tqdm bar (rank 0: steps, loss, samples/s, ETA), a CSV log and
TensorBoard scalars under the run directory, and the periodic evaluations (``evals.csv``,
TensorBoard ``eval/*`` scalars and ``samples/*`` media).

``wall_s`` in both CSV files is the run's wall-clock seconds since its first step; a resumed run
continues from the last row it keeps, so curves against wall time join up across restarts."""

from __future__ import annotations

import csv
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger("diffsuite.train")

COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "skipped", "elapsed_s", "wall_s"]
EVALS_CSV = "evals.csv"


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    if not path.exists():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_rows(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _kept(rows: list[dict], start_step: int) -> list[dict]:
    return [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= start_step]


class RunLog:
    def __init__(self, run_dir: Path, *, enabled: bool, start_step: int, total_steps: int, progress: bool,
                 tensorboard: bool):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / "log.csv"
        self.evals_path = self.run_dir / EVALS_CSV
        self.bar = None
        self.tb = None
        self.last: dict[str, Any] = {}  # the last row written (its loss goes into the evaluation rows)
        if not enabled:
            return
        self._wall0 = max(self._trim_csv(start_step), self._trim_evals(start_step))  # an evaluation ends later
        self._t0 = time.perf_counter()
        new = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=COLUMNS)
        if new:
            self._csv.writeheader()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        if progress:
            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                            mininterval=1.0, file=sys.stderr)

    def wall(self) -> float:
        """Wall-clock seconds of this run so far (continuing a resumed run's count)."""
        return self._wall0 + time.perf_counter() - self._t0

    def _trim_csv(self, start_step: int) -> float:
        """A resumed run re-does the steps after its checkpoint: drop their old rows (and bring an
        older file's header up to date). Returns the wall time the kept rows reached."""
        columns, rows = _read_rows(self.csv_path)
        if not columns:
            return 0.0
        keep = _kept(rows, start_step)
        wall = 0.0
        for r in keep:  # rows written before wall_s existed: sum their windows
            try:
                wall = float(r["wall_s"]) if r.get("wall_s") else wall + float(r.get("elapsed_s") or 0.0)
            except ValueError:
                pass
            r["wall_s"] = r.get("wall_s") or round(wall, 3)
        if len(keep) != len(rows) or columns != COLUMNS:
            _write_rows(self.csv_path, COLUMNS, keep)
        return wall

    def _trim_evals(self, start_step: int) -> float:
        """As `_trim_csv`, for evals.csv; returns the wall time the last kept evaluation ended at."""
        columns, rows = _read_rows(self.evals_path)
        keep = _kept(rows, start_step)
        if columns and len(keep) != len(rows):
            _write_rows(self.evals_path, columns, keep)
        walls = [float(r["wall_s"]) for r in keep if r.get("wall_s")]
        return max(walls, default=0.0)

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def row(self, values: dict) -> None:
        if not self.enabled:
            return
        values = {**values, "wall_s": round(self.wall(), 3)}
        self.last = values
        self._csv.writerow({k: values.get(k, "") for k in COLUMNS})
        self._csv_file.flush()
        if self.tb is not None:
            for k in ("loss", "lr", "grad_norm", "samples_per_s"):
                if isinstance(values.get(k), float):
                    self.tb.add_scalar(f"train/{k}", values[k], values["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{values['loss']:.4g}", sps=f"{values['samples_per_s']:.1f}", refresh=False)

    def evaluation(self, ev: Any, *, media: int = 4) -> float | None:
        """Log a periodic evaluation (``periodic_eval.Evaluation``): a row of evals.csv with the
        step, wall time, the last logged loss, the evaluation's own seconds, the network
        evaluations per sample and every figure; TensorBoard scalars and up to `media` files of
        each kind as media. Returns the loss it logged beside the figures."""
        if not self.enabled:
            return None
        from .periodic_eval import EVAL_COLUMNS, add_media

        loss = self.last.get("loss")
        row = {"step": ev.step, "wall_s": round(self.wall(), 3), "loss": "" if loss is None else loss,
               "eval_s": round(ev.eval_s, 3), "nfe": ev.nfe, "n": ev.n}
        row.update({k: v for k, v in ev.figures.items() if k not in row})
        columns, rows = _read_rows(self.evals_path)
        columns = columns or list(EVAL_COLUMNS)
        new = [k for k in row if k not in columns]
        if new or not self.evals_path.exists():
            _write_rows(self.evals_path, columns + new, [*rows, row])
        else:
            with open(self.evals_path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=columns, extrasaction="ignore").writerow(row)
        ev.row = row
        if self.tb is not None:
            for k, v in ev.figures.items():
                self.tb.add_scalar(f"eval/{k}", v, ev.step)
            self.tb.add_scalar("eval/eval_s", ev.eval_s, ev.step)
            self.tb.add_scalar("eval/nfe", ev.nfe, ev.step)
            if media:
                add_media(self.tb, ev.files, ev.step, limit=media)
            self.tb.flush()
        return loss if isinstance(loss, float) else None

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self.enabled:
            return
        self.enabled = False  # closing twice is harmless
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self._csv_file.close()

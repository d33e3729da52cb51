"""What a run reports: a tqdm bar (rank 0: steps, loss, samples/s, ETA), a CSV log and
TensorBoard scalars under the run directory."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("diffsuite.train")

COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "skipped", "elapsed_s"]


class RunLog:
    def __init__(self, run_dir: Path, *, enabled: bool, start_step: int, total_steps: int, progress: bool,
                 tensorboard: bool):
        self.enabled = enabled
        self.csv_path = run_dir / "log.csv"
        self.bar = None
        self.tb = None
        if not enabled:
            return
        self._trim_csv(start_step)
        new = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=COLUMNS)
        if new:
            self._csv.writeheader()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        if progress:
            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True,
                            mininterval=1.0, file=sys.stderr)

    def _trim_csv(self, start_step: int) -> None:
        """A resumed run re-does the steps after its checkpoint: drop their old rows."""
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
        if len(keep) != len(rows):
            with open(self.csv_path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                w.writerows(keep)

    def step(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def row(self, values: dict) -> None:
        if not self.enabled:
            return
        self._csv.writerow({k: values.get(k, "") for k in COLUMNS})
        self._csv_file.flush()
        if self.tb is not None:
            for k in ("loss", "lr", "grad_norm", "samples_per_s"):
                if isinstance(values.get(k), float):
                    self.tb.add_scalar(f"train/{k}", values[k], values["step"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{values['loss']:.4g}", sps=f"{values['samples_per_s']:.1f}", refresh=False)

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

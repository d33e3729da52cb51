"""SIGTERM / SIGINT (a preempted cluster job, a Ctrl-C) ask the trainer to stop at the next step
boundary, save a checkpoint and exit cleanly. A second SIGINT interrupts at once.

Under hydra's submitit launcher, SIGUSR2 (Slurm's warning before the time limit) does the same,
and once the checkpoint is written the trainer hands the signal on to submitit's own handler,
which requeues the job; the requeued job resumes from the checkpoint (resume=auto)."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("diffsuite.train")


class StopRequest:
    """Context manager that installs the handlers and restores the old ones on exit."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}
        self.signals = [signal.SIGTERM, signal.SIGINT]
        if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
            self.signals.append(signal.SIGUSR2)

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("received %s: stopping after this step with a checkpoint", signal.Signals(signum).name)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handle)
        else:
            log.warning("trainer not on the main thread: SIGTERM/SIGINT will not save a checkpoint")
        return self

    def hand_on(self) -> None:
        """After the checkpoint: hand SIGUSR2 to the handler installed before ours when it is a
        Python function (submitit's requeue). SIGTERM/SIGINT end here: the run exits cleanly."""
        old = self._old.get(self.signum) if self.signum is not None else None
        if callable(old) and self.signum == getattr(signal, "SIGUSR2", None):
            old(self.signum, None)

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

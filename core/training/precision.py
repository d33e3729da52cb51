"""The precision and the CPU resources of a training step: ``trainer.precision = auto | fp32 |
bf16`` and ``trainer.num_workers = auto | N``.

bf16 autocast runs the network's matrix products in bfloat16; the weights, the optimizer, the EMA
and the loss reduction stay in float32 (the loss is cast back before it is reduced). On a GPU,
``auto`` means bf16. On a CPU it pays only where the processor has bf16 units (AVX512-BF16 or AMX):
elsewhere oneDNN emulates bf16 and a step gets slower, so ``auto`` picks bf16 only when the
processor reports those units, and says which in the log.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of native bf16 units


@functools.lru_cache(maxsize=None)
def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The native bf16 unit this CPU reports (``amx_bf16`` or ``avx512_bf16``), or None.

    Read from /proc/cpuinfo on Linux; elsewhere nothing is assumed (``auto`` stays float32)."""
    if platform.system() != "Linux":
        return None
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return next((f for f in BF16_CPU_FLAGS if f in flags), None)


def resolve_precision(precision: str, device: torch.device) -> tuple[bool, str]:
    """(use bf16 autocast?, a phrase for the log saying why)."""
    if precision == "fp32":
        return False, "fp32 (trainer.precision=fp32)"
    if precision == "bf16":
        return True, "bf16 autocast (trainer.precision=bf16)"
    if precision != "auto":
        raise ValueError(f"trainer.precision must be auto, bf16 or fp32, got {precision!r}")
    if device.type == "cuda":
        return True, "bf16 autocast (auto: CUDA)"
    if device.type == "cpu":
        unit = cpu_bf16_units()
        if unit is not None:
            return True, f"bf16 autocast (auto: this CPU has {unit})"
        return False, "fp32 (auto: this CPU reports no avx512_bf16/amx_bf16, where bf16 would be emulated and slower)"
    return False, f"fp32 (auto: no bf16 default for device {device.type})"


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_resources(num_workers: int | str, device: torch.device) -> tuple[int, str]:
    """Data workers for this rank, and on a CPU the intra-op threads, with no oversubscription.

    ``auto`` workers: none on a CPU (the network and the batches share the same cores, and every
    domain's training set is collated from tensors in memory: a worker process only takes a core
    away from the network), 2 per rank on a GPU. On a CPU the network gets the cores the workers do
    not use (never more threads than torch already had), unless OMP_NUM_THREADS says otherwise."""
    workers = (0 if device.type == "cpu" else 2) if num_workers == "auto" else int(num_workers)
    if device.type != "cpu":
        return workers, f"{workers} data worker(s)"
    if os.environ.get("OMP_NUM_THREADS"):
        return workers, (f"{torch.get_num_threads()} intra-op thread(s) (OMP_NUM_THREADS), {workers} data worker(s) "
                         f"on {available_cores()} core(s)")
    threads = min(torch.get_num_threads(), max(1, available_cores() - workers))
    torch.set_num_threads(threads)
    return workers, f"{threads} intra-op thread(s), {workers} data worker(s) on {available_cores()} core(s)"

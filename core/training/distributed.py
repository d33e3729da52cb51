"""torch.distributed set-up for the trainer: who am I, which device, and one seed for the run.

The trainer runs unchanged in a single process (no process group), under ``torchrun
--nproc_per_node=N`` and under a multi-node rendezvous: it reads the environment torchrun sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and initialises the default process group itself,
gloo on CPU and nccl on CUDA (with gloo beside it for CPU-side collectives).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # True when setup_distributed created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if requested == "cpu":
        return torch.device("cpu")
    raise ValueError(f"trainer.device must be auto, cpu or cuda, got {requested!r}")


def slurm_environment() -> None:
    """Under hydra's submitit launcher each Slurm task is one rank but no torchrun set RANK and
    friends: derive them (and the rendezvous address) from the Slurm job, as torchrun would."""
    if "RANK" in os.environ or os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun (or a Slurm job under submitit) describes, or run alone
    when WORLD_SIZE is unset or 1."""
    slurm_environment()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
        owns = True
    if dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, owns_group=owns)


def teardown_distributed(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's value of `obj` on every rank (a run directory, a checkpoint choice)."""
    if not info.distributed:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed that is a pure function of (seed, keys): e.g. (seed, step, rank, micro_step).

    The trainer draws every random number of a step (noise levels, noise, condition dropout,
    anything the network draws from the global generator) from generators seeded this way, so
    ranks draw different noise from one run seed, and a resumed run -- on any number of
    processes -- draws exactly what an uninterrupted one would have; sampling seeds sample i with
    ``derive_seed(seed, i)``. Every integer counts whole (a 64-bit seed is not cut to 32 bits;
    negative values are distinct from positive ones) and the number of keys is part of the input,
    so ``derive_seed(s, k)`` and ``derive_seed(s, k, 0)`` differ.
    """
    entropy = [len(keys)]
    for v in (seed, *keys):
        entropy.extend(_words(int(v)))
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def _words(v: int) -> list[int]:
    """An integer as a self-delimiting list of 32-bit words: (count * 2 + sign), then |v| low word first."""
    mag, words = abs(v), []
    while True:
        words.append(mag & 0xFFFFFFFF)
        mag >>= 32
        if not mag:
            break
    return [len(words) * 2 + (v < 0), *words]

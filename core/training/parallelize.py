"""Parallelism, activation checkpointing and torch.compile, applied to a finished model.

Model code knows nothing of any of it: ``parallelize`` takes the built denoiser and applies, in
torchtitan's order, activation checkpointing and compilation to each block (every element of
an ``nn.ModuleList`` in the model), then data parallelism: DDP, or FSDP2 ``fully_shard`` on
each block and on the root. Neither changes the parameter names (``model.state_dict()`` keeps
its keys), so checkpoints and exports look the same however the model was trained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .distributed import DistInfo

log = logging.getLogger("diffsuite.train")


@dataclass(frozen=True)
class ParallelOptions:
    parallel: str = "ddp"  # ddp | fsdp
    compile: bool = False
    activation_checkpointing: bool = False
    ddp_find_unused: bool = False


def find_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a model: elements of its ModuleLists, outermost lists only."""
    blocks: list[nn.Module] = []
    inside: set[int] = set()
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in inside if p):
            continue
        if isinstance(module, nn.ModuleList):
            blocks.extend(module)
            inside.add(name + ".")
    return blocks


def parallelize(model: nn.Module, opts: ParallelOptions, info: DistInfo) -> nn.Module:
    """Return the module to call in training. `model` itself is modified in place (checkpointing,
    compile, fully_shard) and keeps its parameter names; under DDP the returned module wraps it."""
    if opts.parallel not in ("ddp", "fsdp"):
        raise ValueError(f"trainer.parallel must be ddp or fsdp, got {opts.parallel!r}")
    blocks = find_blocks(model)
    if opts.activation_checkpointing:
        from torch.distributed._composable import checkpoint

        if not blocks:
            log.warning("activation_checkpointing: the model has no nn.ModuleList blocks; nothing to checkpoint")
        for b in blocks:
            checkpoint(b)
    if opts.compile:
        for b in blocks:
            b.compile()
        if not blocks:
            model.compile()
    if not info.distributed:
        return model
    if opts.parallel == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(info.device.type, (info.world_size,))
        for b in blocks:
            fully_shard(b, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=opts.ddp_find_unused)

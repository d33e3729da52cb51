"""Parallelism, activation checkpointing and torch.compile, applied to a finished model.

Model code knows nothing of any of it: ``parallelize`` takes the built denoiser and applies, in
torchtitan's order, activation checkpointing and compilation to each block (``find_blocks``: the
blocks a network names with ``repeated_blocks()``), then data parallelism: DDP, or FSDP2 ``fully_shard`` on
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
    """The blocks that activation checkpointing wraps, compile compiles and FSDP shards.

    A network names them with a ``repeated_blocks()`` method (found on the model or on any module
    inside it, e.g. under the preconditioning wrapper). A network without one gets every module
    held in an ``nn.ModuleList`` (nested lists are looked through) that has parameters and is not
    itself a container, so a list of lists, convolutions between levels or ``nn.Identity`` never
    count as blocks."""
    for module in model.modules():
        named = getattr(module, "repeated_blocks", None)
        if callable(named):
            blocks = list(named())
            bad = [type(b).__name__ for b in blocks if not isinstance(b, nn.Module) or _is_container(b)]
            if bad or not blocks:
                raise TypeError(f"{type(module).__name__}.repeated_blocks() must name modules with a forward of "
                                f"their own, got {bad or 'none'}")
            return blocks
    found: dict[int, nn.Module] = {}  # in order of discovery, each once

    def take(lst: nn.ModuleList) -> None:
        for m in lst:
            if isinstance(m, nn.ModuleList):
                take(m)
            elif not _is_container(m) and any(True for _ in m.parameters()):
                found.setdefault(id(m), m)

    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            take(module)
    # a block inside another block is not a block of its own: the outer one wraps it
    inner = {id(sub) for b in found.values() for sub in b.modules() if sub is not b}
    return [b for b in found.values() if id(b) not in inner]


def _is_container(m: nn.Module) -> bool:
    return isinstance(m, (nn.ModuleList, nn.ModuleDict))


def parallelize(model: nn.Module, opts: ParallelOptions, info: DistInfo) -> nn.Module:
    """Return the module to call in training. `model` itself is modified in place (checkpointing,
    compile, fully_shard) and keeps its parameter names; under DDP the returned module wraps it."""
    if opts.parallel not in ("ddp", "fsdp"):
        raise ValueError(f"trainer.parallel must be ddp or fsdp, got {opts.parallel!r}")
    blocks = find_blocks(model)
    if opts.activation_checkpointing:
        from torch.distributed._composable import checkpoint

        if not blocks:
            log.warning("activation_checkpointing: the model names no blocks (repeated_blocks()) and holds no nn.ModuleList of blocks; nothing to checkpoint")
        for b in blocks:
            checkpoint(b)
    if opts.compile:
        import torch._dynamo

        # blocks of one class share their forward's code, and dynamo keeps recompile_limit (8)
        # compiled versions per code object: a U-Net's blocks at 12 widths fell back to eager after 8
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, len(blocks) + 8)
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

"""Exponential moving averages of the weights, one or several decays, used for sampling.

The shadows mirror the trained parameters tensor for tensor, so under FSDP each rank averages
its own shard (a DTensor like the parameter) and a checkpoint reshards them like the model.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def full_tensor(t: Tensor) -> Tensor:
    """The whole tensor of a (maybe sharded) DTensor; a collective under FSDP."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


class EMA:
    """decay_t = min(decay, (1 + t) / (10 + t)) with warm-up, else decay (Karras-free, as in DDPM/DiT)."""

    def __init__(self, model: nn.Module, decays: Sequence[float], *, warmup: bool = True):
        for d in decays:
            if not 0.0 <= float(d) < 1.0:
                raise ValueError(f"trainer.ema decays must lie in [0, 1), got {d}")
        self.decays = [float(d) for d in decays]
        self.warmup = warmup
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadows: list[dict[str, Tensor]] = [
            {n: params[n].detach().clone() for n in self.names} for _ in self.decays]

    def decay_at(self, decay: float, step: int) -> float:
        return min(decay, (1 + step) / (10 + step)) if self.warmup else decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        params = dict(model.named_parameters())
        current = [params[n].detach() for n in self.names]
        for decay, shadow in zip(self.decays, self.shadows):
            torch._foreach_lerp_(list(shadow.values()), current, 1.0 - self.decay_at(decay, step))

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """For torch.distributed.checkpoint: loaded in place into the same tensors."""
        return {key(d): s for d, s in zip(self.decays, self.shadows)}

    def state_dict_for(self, decays: Sequence[float]) -> dict[str, dict[str, Tensor]]:
        """The shadows of those of this EMA's decays that are also in `decays` (a checkpoint's):
        what a resume can load when trainer.ema changed."""
        saved = {float(d) for d in decays}
        return {key(d): s for d, s in zip(self.decays, self.shadows) if d in saved}

    @torch.no_grad()
    def restart(self, model: nn.Module, decays: Sequence[float]) -> None:
        """Start the shadows of `decays` again from the model's current weights."""
        params = dict(model.named_parameters())
        for d, shadow in zip(self.decays, self.shadows):
            if d in {float(x) for x in decays}:
                for n in self.names:
                    shadow[n].copy_(params[n].detach())

    def full_weights(self, model: nn.Module, index: int) -> dict[str, Tensor]:
        """A full CPU state dict of the model with EMA `index` in place of the parameters
        (buffers from the model). A collective under FSDP: every rank must call it."""
        shadow = self.shadows[index] if self.decays else {}
        out = {}
        for name, value in model.state_dict().items():
            t = shadow.get(name, value)
            out[name] = full_tensor(t).detach().cpu().clone()
        return out


def key(decay: float) -> str:
    """A checkpoint key for a decay, with no dot in it."""
    return "ema_" + repr(float(decay)).replace(".", "p")

"""Denoiser -> denoiser wrappers: classifier-free guidance (with rescale and a sigma interval)
and known-region conditioning (inpainting, continuation, fragment-conditioned generation).

A wrapper is a plain closure with the denoiser signature ``D(x, sigma, cond) -> x0_hat``, so it
composes with every sampler and with other wrappers.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor, "dict[str, Tensor] | None"], Tensor]


def _col(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def cfg(denoiser: Denoiser, scale: float, *, rescale: float = 0.0,
        interval: tuple[float, float] = (0.0, math.inf)) -> Denoiser:
    """Classifier-free guidance, D = D_u + scale (D_c - D_u), both passes in one network call.

    The unconditional pass is the same ``cond`` with ``cond["drop"] = True`` (see core.domain).
    rescale: Lin et al. 2024, sec. 3.4 -- blend towards the guided prediction rescaled to the
      conditional one's standard deviation (per sample), applied here to the x0 prediction.
    interval: guidance applies only where interval[0] <= sigma <= interval[1] (Kynkaanniemi et
      al. 2024); elsewhere the conditional prediction is used, and a step where no sample is in
      the interval costs one pass, not two.
    """
    if scale == 1.0 and rescale == 0.0:
        return denoiser
    lo, hi = interval

    def guided(x: Tensor, sigma: Tensor, cond: dict[str, Tensor] | None) -> Tensor:
        if cond is None:
            raise ValueError("cfg needs a condition to guide towards; got cond=None")
        sigma = torch.as_tensor(sigma, device=x.device).expand(x.shape[0])
        inside = (sigma >= lo) & (sigma <= hi)  # (B,)
        if not inside.any():
            return denoiser(x, sigma, cond)
        B = x.shape[0]
        drop = cond.get("drop", torch.zeros(B, dtype=torch.bool, device=x.device))
        both = {k: torch.cat([v, v]) for k, v in cond.items() if k != "drop"}
        both["drop"] = torch.cat([drop, torch.ones_like(drop)])
        d_c, d_u = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), both).chunk(2)
        g = d_u + scale * (d_c - d_u)
        if rescale > 0:
            dims = tuple(range(1, x.ndim))
            ratio = d_c.std(dim=dims, keepdim=True) / g.std(dim=dims, keepdim=True).clamp_min(1e-12)
            g = rescale * g * ratio + (1 - rescale) * g
        return torch.where(_col(inside, x), g, d_c)

    return guided


def known_region(denoiser: Denoiser, known: Tensor, mask: Tensor, eps: Tensor) -> Denoiser:
    """Keep the region where ``mask`` is 1 equal to ``known``; generate the rest.

    At every call the known part of the input is set to ``known + sigma * eps`` (one fixed draw,
    so the trajectory of the known part is the exact forward process) and the known part of the
    output to ``known``. Any sampler then carries the known region through unchanged while the
    network sees it at the right noise level, which is how the domains do in-filling,
    continuation, frame prediction and fragment-conditioned molecule generation.
    """
    if known.shape != eps.shape:
        raise ValueError(f"known {tuple(known.shape)} and eps {tuple(eps.shape)} differ in shape")
    mask = mask.to(known.dtype).expand_as(known)

    def conditioned(x: Tensor, sigma: Tensor, cond: dict[str, Tensor] | None) -> Tensor:
        if x.shape != known.shape:
            raise ValueError(f"known region {tuple(known.shape)} does not match x {tuple(x.shape)}")
        s = _col(torch.as_tensor(sigma, device=x.device, dtype=x.dtype).expand(x.shape[0]), x)
        x = torch.lerp(x, known + s * eps, mask)
        return torch.lerp(denoiser(x, sigma, cond), known, mask)

    return conditioned

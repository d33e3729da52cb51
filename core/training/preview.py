"""Periodic preview samples from the EMA weights, written through the domain's ``write``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger("diffsuite.train")


def write_preview(domain: Any, make_denoiser, weights: dict[str, torch.Tensor], out_dir: Path, *, n: int,
                  sampler: str, steps: int, seed: int, device: torch.device, options: dict[str, Any],
                  grid=None, sampler_options: dict | None = None) -> list[Path]:
    """Build a fresh denoiser with `weights`, sample `n` examples and write them to `out_dir`.

    A failure is logged, never fatal: a preview must not end a long run."""
    try:
        from ..generate import generate

        denoiser: nn.Module = make_denoiser(domain.network())
        denoiser.load_state_dict(weights)
        denoiser.to(device).eval()
        with torch.no_grad():
            samples, _ = generate(domain, denoiser, n, sampler=sampler, steps=steps, grid=grid, seed=seed,
                                  sampler_options=sampler_options, device=str(device), **options)
        paths = domain.write(samples, out_dir)
        log.info("preview: %d files in %s", len(paths), out_dir)
        return paths
    except Exception as e:  # noqa: BLE001 -- reported, training goes on
        log.warning("preview at %s failed: %s: %s", out_dir, type(e).__name__, e)
        return []

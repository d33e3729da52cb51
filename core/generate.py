"""From a trained denoiser to domain samples: the one loop behind `diffsuite sample`, the demo
and the trainer's previews."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .domain import Batch, Domain
from .guidance import cfg, known_region
from .options import check_guidance, check_something_to_guide, whole
from .samplers import get_sampler
from .schedules import karras_sigmas
from .training.distributed import derive_seed


def generate(domain: Domain, denoiser: Callable, n: int, *, sampler: str = "heun", steps: int = 32,
             grid: Callable[[int], Tensor] | None = None, guidance: float = 1.0, guidance_rescale: float = 0.0,
             guidance_interval: tuple[float, float] | None = None, sampler_options: dict | None = None,
             seed: int = 0, device: str | torch.device = "cpu", batch_size: int | None = None,
             progress: bool = False, **options: Any) -> tuple[list[Any], Tensor | list[Tensor]]:
    """Draw `n` samples. `options` go to ``domain.sampling_batch`` (class, length, known region...).

    Batch k is seeded derive_seed(seed, k), so a run is reproducible and two seeds share no batch.
    Returns the decoded samples and the model-space tensor (one tensor per batch, in a list, when
    a domain's batches differ in shape, e.g. variable sizes without padding).
    """
    n = whole(n, "n", low=1)
    steps = whole(steps, "steps", low=1)
    check_guidance(guidance, guidance_rescale, guidance_interval)
    solve = get_sampler(sampler)
    sigmas = (grid or karras_sigmas)(steps).to(device)
    batch_size = whole(batch_size or n, "batch_size", low=1)
    samples, xs = [], []
    bar = tqdm(total=n * steps, desc=f"sampling {domain.name}", unit="step", disable=not progress, leave=False)
    try:  # the bar is cleared on an error too, so the error's line stands alone
        for chunk, start in enumerate(range(0, n, batch_size)):
            m = min(batch_size, n - start)
            gen = torch.Generator(device).manual_seed(derive_seed(seed, chunk))  # seed=1 never replays seed=0's chunk 1
            batch = domain.sampling_batch(m, generator=gen, **options).to(device)
            if chunk == 0 and guidance != 1.0:  # before any work: refuse guidance that changes nothing
                probe = torch.Generator(device).manual_seed(0)  # leaves the samples' generator untouched
                x_probe = sigmas[0] * torch.randn(batch.x.shape, generator=probe, device=device).to(batch.x.dtype)
                check_something_to_guide(denoiser, x_probe, sigmas[0], batch.cond, guidance)

            def solve_batch(batch: Batch, gen: torch.Generator = gen) -> Tensor:
                noise = domain.noise_fn(batch, gen)
                D = denoiser
                if guidance != 1.0 or guidance_rescale:
                    kw = {} if guidance_interval is None else {"interval": tuple(guidance_interval)}
                    D = cfg(D, guidance, rescale=guidance_rescale, **kw)
                if batch.known is not None:
                    D = known_region(D, batch.known, batch.known_mask, noise(batch.known))
                x = sigmas[0] * noise(torch.zeros_like(batch.x))
                with torch.no_grad():
                    return solve(D, x, sigmas, batch.cond, noise=noise, callback=lambda info: bar.update(len(batch)),
                                 **(sampler_options or {}))

            # a domain may split a batch into several solves, in order (video: autoregressive windows for
            # clips longer than it was trained on); sample_loop(batch, solve_batch) returns the batch's x
            loop = getattr(domain, "sample_loop", None)
            x = solve_batch(batch) if loop is None else loop(batch, solve_batch)
            samples.extend(domain.decode(x, batch))
            xs.append(x.cpu())
    finally:
        bar.close()
    same = all(x.shape[1:] == xs[0].shape[1:] for x in xs)
    return samples, torch.cat(xs) if same else xs

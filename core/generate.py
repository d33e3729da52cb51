"""From a trained denoiser to domain samples: the one loop behind `diffsuite sample`, the demo
and the trainer's previews."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .domain import Batch, Domain
from .errors import UserError
from .guidance import cfg, known_region
from .options import check_guidance, check_something_to_guide, whole
from .samplers import get_sampler
from .schedules import karras_sigmas
from .training.distributed import derive_seed

log = logging.getLogger(__name__)


def generate(domain: Domain, denoiser: Callable, n: int, *, sampler: str = "heun", steps: int = 32,
             grid: Callable[[int], Tensor] | None = None, guidance: float = 1.0, guidance_rescale: float = 0.0,
             guidance_interval: tuple[float, float] | None = None, sampler_options: dict | None = None,
             seed: int = 0, device: str | torch.device = "cpu", batch_size: int | None = None,
             progress: bool = False, guidance_optional: bool = False,
             **options: Any) -> tuple[list[Any], Tensor | list[Tensor]]:
    """Draw `n` samples. `options` go to ``domain.sampling_batch`` (class, length, known region...).

    A sample is a function of (seed, its index) alone: the domain draws its random choices for all
    `n` samples at once from a generator seeded ``derive_seed(seed)``, and sample i takes all its
    noise (the start and what stochastic samplers add) from its own generator seeded
    ``derive_seed(seed, i)``, through the domain's noise hook. So `batch_size` only sets how many
    rows go through the network together, never what they become.
    Guidance that cannot change anything (no condition asked for) is refused, unless
    `guidance_optional` says the scale is a default rather than the user's: then it samples unguided.
    Returns the decoded samples and the model-space tensor.
    """
    n = whole(n, "n", low=1)
    steps = whole(steps, "steps", low=1)
    check_guidance(guidance, guidance_rescale, guidance_interval)
    solve = get_sampler(sampler)
    sigmas = (grid or karras_sigmas)(steps).to(device)
    batch_size = whole(batch_size or n, "batch_size", low=1)
    choices = torch.Generator(device).manual_seed(derive_seed(seed))  # the domain's random choices, all n at once
    full = domain.sampling_batch(n, generator=choices, **options).to(device)
    if len(full) != n:
        raise ValueError(f"{domain.name}: sampling_batch({n}) returned {len(full)} rows")
    xs = []
    bar = tqdm(total=n * steps, desc=f"sampling {domain.name}", unit="step", disable=not progress, leave=False)
    try:  # the bar is cleared on an error too, so the error's line stands alone
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            batch = rows(full, start, m)
            noise = per_sample_noise(domain, batch, [derive_seed(seed, start + j) for j in range(m)], device)
            if start == 0 and guidance != 1.0:  # before any work: refuse guidance that changes nothing
                probe = torch.Generator(device).manual_seed(0)  # leaves the samples' generators untouched
                x_probe = sigmas[0] * torch.randn(batch.x.shape, generator=probe, device=device).to(batch.x.dtype)
                try:
                    check_something_to_guide(denoiser, x_probe, sigmas[0], batch.cond, guidance)
                except UserError:
                    if not guidance_optional:
                        raise
                    log.info("no condition to guide (no class asked for): sampling without guidance")
                    guidance = 1.0  # a default scale, not the user's: nothing to guide is not an error

            def solve_batch(batch: Batch, noise: Callable[[Tensor], Tensor] = noise) -> Tensor:
                D = denoiser
                if guidance != 1.0 or guidance_rescale:
                    kw = {} if guidance_interval is None else {"interval": tuple(guidance_interval)}
                    D = cfg(D, guidance, rescale=guidance_rescale, **kw)
                x = sigmas[0] * noise(torch.zeros_like(batch.x))
                if batch.known is not None:
                    D = known_region(D, batch.known, batch.known_mask, noise(batch.known))
                with torch.no_grad():
                    return solve(D, x, sigmas, batch.cond, noise=noise, callback=lambda info: bar.update(len(batch)),
                                 **(sampler_options or {}))

            # A domain may split the rows' solve into several, in order: sample_loop(batch, solve_batch)
            # calls solve_batch on batches of the same rows and returns their x (the video domain rolls
            # clips longer than its training length out window by window; tests/video/test_context.py)
            loop = getattr(domain, "sample_loop", None)
            xs.append(solve_batch(batch) if loop is None else loop(batch, solve_batch))
    finally:
        bar.close()
    x = torch.cat(xs)
    return domain.decode(x, full), x.cpu()


def rows(batch: Batch, start: int, m: int) -> Batch:
    """Rows start..start+m of a batch: every tensor whose first axis is the batch is cut, the rest
    (and `meta`, which decode reads for the whole batch) is kept."""
    n = len(batch)
    cut = lambda t: t[start:start + m] if isinstance(t, Tensor) and t.ndim > 0 and t.shape[0] == n else t  # noqa: E731
    cond = None if batch.cond is None else {k: cut(v) for k, v in batch.cond.items()}
    return replace(batch, x=cut(batch.x), cond=cond, mask=cut(batch.mask), known=cut(batch.known),
                   known_mask=cut(batch.known_mask))


def per_sample_noise(domain: Domain, batch: Batch, seeds: list[int], device) -> Callable[[Tensor], Tensor]:
    """The domain's noise hook, row by row, each row from its own generator: what row j draws
    depends on seeds[j] alone, never on the other rows of the batch."""
    hooks = [domain.noise_fn(rows(batch, j, 1), torch.Generator(device).manual_seed(s)) for j, s in enumerate(seeds)]

    def noise(x: Tensor) -> Tensor:
        if x.shape[0] != len(hooks):
            raise ValueError(f"noise for {x.shape[0]} rows, but the batch has {len(hooks)} samples")
        return torch.cat([hook(x[j:j + 1]) for j, hook in enumerate(hooks)])

    return noise

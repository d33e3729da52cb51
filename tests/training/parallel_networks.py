"""Every network of every domain at its smallest preset, with a fixed seeded batch and a loss, for
the parallelism tests (FSDP2 across processes, activation checkpointing)."""

from __future__ import annotations

import copy

import torch
from hydra.utils import instantiate

from tests.training.run_trainer import compose_train

# (id, train.yaml overrides): each network the domains can build
NETWORKS = [
    ("toy", ["domain=toy", "domain.preset=tiny"]),
    ("audio_unet", ["domain=audio", "domain.preset=XS", "domain.pretrained=null"]),
    ("video_dit", ["domain=video", "domain.preset=tiny", "domain.pretrained=null"]),
    ("molecules_egnn", ["domain=molecules", "domain.preset=XS", "domain.network=egnn"]),
    ("molecules_tensor_product", ["domain=molecules", "domain.preset=XS", "domain.network=tensor_product"]),
    ("molecules_graph_egnn", ["domain=molecules", "domain.preset=XS", "domain.network=graph_egnn",
                              "domain.bonds=true", "domain.vocabulary=qm9_charged"]),
]
IDS = [n for n, _ in NETWORKS]


def build(name: str, batch: int = 4):
    """(denoiser, loss(model) -> scalar): the same model and batch on every call and every rank."""
    overrides = dict(NETWORKS)[name]
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    domain = instantiate(cfg.domain)
    model = instantiate(cfg.model.precond)(domain.network())
    g = torch.Generator().manual_seed(1)
    options = {"num_atoms": [5, 7, 4, 6][:batch]} if name.startswith("molecules") else {}  # no histogram to load
    b = domain.sampling_batch(batch, generator=g, **options)
    x0 = 0.5 * domain.noise_fn(b, g)(torch.zeros_like(b.x))  # data-like values in the domain's own space
    eps = domain.noise_fn(b, g)(torch.zeros_like(b.x))
    sigma = torch.exp(torch.randn(batch, generator=g))  # (B,)
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))

    def loss(m: torch.nn.Module, rows: slice = slice(None)) -> torch.Tensor:
        cond = None if b.cond is None else {k: v[rows] for k, v in b.cond.items()}
        out = m(x0[rows] + s[rows] * eps[rows], sigma[rows], cond)
        err = (out - x0[rows]) ** 2
        if b.mask is not None:
            err = err * b.mask[rows]
        return err.flatten(1).sum(1).mean()

    return model, loss


def clone(model):
    return copy.deepcopy(model)

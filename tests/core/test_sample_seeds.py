"""A sample is a function of (seed, sample index) alone: the batch size never changes it, in any
domain; seeds keep all their bits and never collide across argument counts."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from diffsuite.core.generate import generate
from diffsuite.core.training.distributed import derive_seed
from tests.training.run_trainer import compose_train

DOMAINS = [  # (id, train.yaml overrides, sampling options)
    ("toy", ["domain=toy", "domain.preset=tiny"], {}),
    ("audio", ["domain=audio", "domain.preset=XS", "domain.pretrained=null"], {"seconds": 0.256}),
    ("video", ["domain=video", "domain.preset=tiny", "domain.pretrained=null", "domain.frames=4", "domain.size=16"],
     {}),
    ("molecules", ["domain=molecules", "domain.preset=XS"], {"num_atoms": [5, 7, 4, 6]}),
]


def _model(overrides):
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    domain = instantiate(cfg.domain)
    return domain, instantiate(cfg.model.precond)(domain.network()).eval()


@pytest.mark.parametrize("name,overrides,options", DOMAINS, ids=[d[0] for d in DOMAINS])
def test_batch_size_never_changes_a_sample(name, overrides, options):
    domain, D = _model(overrides)
    # a stochastic sampler, so the noise added at every step counts too
    kw = dict(sampler="euler_ancestral", steps=2, seed=11, **options)
    _, whole = generate(domain, D, 4, batch_size=4, **kw)
    _, ones = generate(domain, D, 4, batch_size=1, **kw)
    torch.testing.assert_close(ones, whole, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(whole[0], whole[1]), "two samples of one batch are the same"
    if name == "toy":  # the cheap domain: uneven batches, and another seed
        _, mixed = generate(domain, D, 4, batch_size=3, **kw)
        torch.testing.assert_close(mixed, whole, rtol=1e-4, atol=1e-5)
        _, other = generate(domain, D, 4, batch_size=4, **{**kw, "seed": 12})
        assert not torch.allclose(other, whole), "another seed gave the same samples"


def test_a_sample_keeps_its_noise_when_more_are_drawn():
    domain, D = _model(DOMAINS[0][1])
    _, two = generate(domain, D, 2, sampler="euler_ancestral", steps=3, seed=5, **{"class": 1})
    _, five = generate(domain, D, 5, sampler="euler_ancestral", steps=3, seed=5, batch_size=2, **{"class": 1})
    torch.testing.assert_close(five[:2], two, rtol=1e-5, atol=1e-6)


def test_derive_seed_keeps_every_bit_and_the_argument_count():
    assert derive_seed(0, 3) != derive_seed(0, 3, 0) != derive_seed(0, 3, 0, 0)
    assert derive_seed(2**32) != derive_seed(0) and derive_seed(2**63 + 1) != derive_seed(1)
    assert derive_seed(-1) != derive_seed(1) and derive_seed(5, -2) != derive_seed(5, 2)
    assert derive_seed(7, 1, 2) == derive_seed(7, 1, 2) and 0 <= derive_seed(2**64 + 3, 9) < 2**63
    # words never run into each other: (1, 2**32) and (2**32 + 1,) are different inputs
    assert derive_seed(0, 1, 2**32) != derive_seed(0, 2**32 + 1) != derive_seed(0, 2**32, 1)

import math

import torch

from diffsuite.core.guidance import cfg, known_region
from diffsuite.core.samplers import SAMPLERS
from diffsuite.core.schedules import karras_sigmas


def conditional(gm, calls=None):
    """The exact class-conditional denoiser of the ring: cond['class'] selects a mode, drop -> all."""

    def D(x, sigma, cond):
        if calls is not None:
            calls.append(x.shape[0])
        k = cond["class"].clone()
        k[cond.get("drop", torch.zeros_like(k, dtype=torch.bool))] = -1
        return gm.denoise(x, sigma, component=k)

    return D


def test_cfg_batches_both_passes_in_one_call_and_follows_the_formula(gm):
    calls = []
    D = conditional(gm, calls)
    x = torch.randn(6, 2, dtype=torch.float64)
    s = torch.full((6,), 0.7)
    cond = {"class": torch.arange(6) % 8}
    out = cfg(D, 3.0)(x, s, cond)
    assert calls == [12]
    c = D(x, s, cond)
    u = D(x, s, {**cond, "drop": torch.ones(6, dtype=torch.bool)})
    torch.testing.assert_close(out, u + 3.0 * (c - u))


def test_cfg_scale_one_is_the_identity_and_interval_skips_the_second_pass(gm):
    D = conditional(gm)
    assert cfg(D, 1.0) is D
    calls = []
    guided = cfg(conditional(gm, calls), 4.0, interval=(0.5, 2.0))
    cond = {"class": torch.zeros(4, dtype=torch.long)}
    x = torch.randn(4, 2, dtype=torch.float64)
    torch.testing.assert_close(guided(x, torch.full((4,), 10.0), cond), D(x, torch.full((4,), 10.0), cond))
    assert calls == [4]


def test_cfg_rescale_matches_the_conditional_std():
    def D(x, sigma, cond):  # any two predictions of different spread
        return torch.where(cond["drop"][:, None, None], 0.1 * x, x + cond["class"][:, None, None])

    x = torch.randn(3, 16, 4, dtype=torch.float64)
    cond = {"class": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)}
    s = torch.ones(3)
    c = D(x, s, {**cond, "drop": torch.zeros(3, dtype=torch.bool)})
    out = cfg(D, 5.0, rescale=1.0)(x, s, cond)
    torch.testing.assert_close(out.std(dim=(1, 2)), c.std(dim=(1, 2)))
    half = cfg(D, 5.0, rescale=0.5)(x, s, cond)
    plain = cfg(D, 5.0)(x, s, cond)
    torch.testing.assert_close(half, 0.5 * out + 0.5 * plain)


def test_guided_sampling_lands_on_the_requested_mode(gm):
    torch.manual_seed(0)
    n = 400
    cond = {"class": torch.full((n,), 3)}
    x = 80 * torch.randn(n, 2, dtype=torch.float64)
    out = SAMPLERS["dpmpp_2m"](cfg(conditional(gm), 2.0), x, karras_sigmas(30), cond)
    dist = (out[:, None] - gm.means[None]).norm(dim=-1)  # (n, K)
    assert (dist.argmin(1) == 3).float().mean() > 0.99


def test_known_region_keeps_the_known_part_exactly_for_every_sampler(gm):
    torch.manual_seed(0)
    x0, _ = gm.sample(64)
    mask = torch.zeros(64, 2, dtype=torch.float64)
    mask[:, 0] = 1  # the first coordinate is given
    eps = torch.randn_like(x0)
    D = known_region(lambda x, s, c: gm.denoise(x, s), x0, mask, eps)
    for name, sampler in SAMPLERS.items():
        out = sampler(D, 80 * torch.randn_like(x0), karras_sigmas(12))
        torch.testing.assert_close(out[:, 0], x0[:, 0], msg=name)
        assert torch.isfinite(out).all()


def test_known_region_conditions_the_unknown_part(gm):
    # Given x, the ring's modes pin down y up to sign: the generated y must lie on the ring.
    torch.manual_seed(1)
    x0, _ = gm.sample(300)
    mask = torch.zeros_like(x0)
    mask[:, 0] = 1
    D = known_region(lambda x, s, c: gm.denoise(x, s), x0, mask, torch.randn_like(x0))
    out = SAMPLERS["heun"](D, 80 * torch.randn_like(x0), karras_sigmas(40))
    radius = out.norm(dim=1)
    assert ((radius - 0.7).abs() < 0.35).float().mean() > 0.95
    assert not math.isclose(out[:, 1].std().item(), 0.0)

"""The patch transformer: shapes at any patch-multiple size, identity start, class dropout, bad sizes
refused, rotary positions are relative, and the denoising loss falls when it trains."""

import pytest
import torch

from diffsuite.core.precond import DenoisingLoss, EDMPrecond
from diffsuite.core.schedules import LogNormalLaw
from diffsuite.domains.video.moving_digits import MovingDigits
from diffsuite.core.nn import apply_rope
from diffsuite.domains.video.transformer import PRESETS, VideoDiT, rope_angles


def _randomise(net):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0 and p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return net


@pytest.mark.parametrize("attention", ["full", "factorised"])
def test_shapes_at_variable_sizes(attention):
    net = PRESETS["tiny"](attention=attention)
    for T, H, W in [(4, 8, 8), (8, 16, 12), (2, 4, 20)]:
        x = torch.randn(2, 1, T, H, W)
        assert net(x, torch.zeros(2), None).shape == x.shape


def test_starts_at_zero_output():
    net = PRESETS["tiny"]()
    x = torch.randn(2, 1, 4, 8, 8)
    assert net(x, torch.ones(2), {"class": torch.tensor([1, 2])}).abs().max() == 0


def test_size_not_patch_multiple_is_refused():
    net = VideoDiT(patch=(2, 4, 4), dim=48, depth=1, heads=4)
    with pytest.raises(ValueError, match=r"T=5 is not a multiple of the patch 2"):
        net(torch.randn(1, 1, 5, 8, 8), torch.zeros(1), None)
    with pytest.raises(ValueError, match=r"W=10"):
        net(torch.randn(1, 1, 4, 8, 10), torch.zeros(1), None)


def test_class_drop_means_null_class():
    net = _randomise(PRESETS["tiny"]())
    x = torch.randn(3, 1, 4, 8, 8)
    c = torch.zeros(3)
    cls = torch.tensor([1, 5, 7])
    dropped = net(x, c, {"class": cls, "drop": torch.ones(3, dtype=torch.bool)})
    null = net(x, c, {"class": torch.full((3,), -1)})
    cond = net(x, c, {"class": cls})
    assert torch.allclose(dropped, null, atol=1e-6)
    assert not torch.allclose(cond, null, atol=1e-4)


def test_rotary_positions_are_relative_on_each_axis():
    """q.k after rotation depends on the offset between tokens along t, h and w, not on where they are."""
    grid, head_dim = (4, 4, 5), 12
    angles = rope_angles(grid, head_dim).reshape(*grid, head_dim // 2)
    q, k = torch.randn(1, 1, 1, head_dim), torch.randn(1, 1, 1, head_dim)

    def score(a, b):
        return (apply_rope(q, angles[a][None]) * apply_rope(k, angles[b][None])).sum().item()

    assert score((0, 0, 0), (1, 2, 3)) == pytest.approx(score((2, 1, 1), (3, 3, 4)), abs=1e-4)
    # each axis is encoded: moving one token along t, h or w alone changes the score
    base = score((1, 1, 1), (1, 1, 1))
    for moved in [(2, 1, 1), (1, 2, 1), (1, 1, 2)]:
        assert abs(score((1, 1, 1), moved) - base) > 1e-3


def test_loss_falls_on_moving_digits():
    torch.manual_seed(0)
    data = MovingDigits(split="train", clips=64, frames=4, size=12, digit=8)
    x0 = torch.stack([data[i]["video"] for i in range(8)]) * 2 - 1
    labels = torch.tensor([data[i]["label"] for i in range(8)])
    den = EDMPrecond(VideoDiT(dim=32, depth=1, heads=2, patch=(2, 4, 4)), sigma_data=0.5)
    loss_fn = DenoisingLoss(LogNormalLaw(), sigma_data=0.5)
    opt = torch.optim.Adam(den.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)

    def eval_loss():
        g2 = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return sum(loss_fn(den, x0, {"class": labels}, generator=g2).loss.item() for _ in range(4)) / 4

    before = eval_loss()
    for _ in range(40):
        out = loss_fn(den, x0, {"class": labels}, generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.7 * before, (before, after)

"""The EMA against its formula: shadow <- d_t shadow + (1 - d_t) w after optimizer step t (0-based),
with d_t = min(decay, (1 + t) / (10 + t)) under warm-up and d_t = decay without."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffsuite.core.training.ema import EMA


def _expected(start: float, values: list[float], decay: float, warmup: bool) -> float:
    shadow = start
    for t, w in enumerate(values):
        d = min(decay, (1 + t) / (10 + t)) if warmup else decay
        shadow = d * shadow + (1 - d) * w
    return shadow


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_follows_its_formula_step_by_step(warmup):
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    decays = [0.9, 0.999]
    ema = EMA(model, decays, warmup=warmup)
    values = [float(v) for v in torch.linspace(-3, 5, 40)]
    for t, v in enumerate(values):
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model, t)
        for decay, shadow in zip(decays, ema.shadows):
            want = _expected(1.0, values[: t + 1], decay, warmup)
            got = shadow["weight"].item()
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), f"decay {decay}, step {t}: {got} != {want}"


def test_warmup_decay_values():
    ema = EMA(nn.Linear(1, 1), [0.999], warmup=True)
    assert [ema.decay_at(0.999, t) for t in (0, 1, 10, 100_000)] == pytest.approx([0.1, 2 / 11, 0.55, 0.999])
    assert EMA(nn.Linear(1, 1), [0.999], warmup=False).decay_at(0.999, 0) == 0.999


def test_frozen_parameters_are_not_averaged_and_buffers_come_from_the_model():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model[0].bias.requires_grad_(False)
    ema = EMA(model, [0.5])
    assert "0.bias" not in ema.shadows[0] and "0.weight" in ema.shadows[0]
    with torch.no_grad():
        model[1].running_mean.fill_(7.0)
    full = ema.full_weights(model, 0)
    assert torch.equal(full["1.running_mean"], torch.full((2,), 7.0))

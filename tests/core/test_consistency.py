import math

import pytest
import torch
from torch import nn

from diffsuite.core.consistency import ConsistencyLoss, consistency_sigmas
from diffsuite.core.samplers import EVALUATIONS, SAMPLERS


class Recorder(nn.Module):
    """A denoiser with dropout that records what each call saw: its input, sigma, dropout mask
    and whether gradients were on. Its output is the input times a learnable scale."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.p = p
        self.calls = []

    def forward(self, x, sigma, cond=None):
        mask = nn.functional.dropout(torch.ones_like(x), self.p, training=self.training)
        self.calls.append({"x": x.detach().clone(), "sigma": sigma.detach().clone(), "mask": mask,
                           "grad": torch.is_grad_enabled()})
        return x * self.scale * mask


def test_r_follows_the_ect_mapping_and_moves_towards_t_stage_by_stage():
    loss = ConsistencyLoss(q=4.0, k=8.0, b=1.0, stage_every=100)
    t = torch.tensor([0.01, 0.5, 2.0, 10.0, 80.0])
    r0 = loss.r_of(t, step=0)
    want = (t * (1 - 0.25 * (1 + 8 * torch.sigmoid(-t)))).clamp_min(0)
    assert torch.allclose(r0, want)
    assert r0[0] == 0 and r0[1] == 0  # small t at stage 0: the target is x0 itself
    gaps = [(t - loss.r_of(t, step=s)) / t for s in (0, 100, 200, 300)]  # stages 0..3
    for a, b in zip(gaps, gaps[1:]):
        assert (b <= a).all() and (b[2:] < a[2:]).all()
    assert ((t - loss.r_of(t, 300)) / t)[-1] < 4.0**-4 * 1.01  # large t: gap q^-(stage+1)
    assert loss.stage(99) == 0 and loss.stage(100) == 1
    assert ConsistencyLoss(stage_every=0).stage(10**6) == 0


def test_both_passes_share_the_noise_and_the_dropout_mask_and_only_t_carries_gradient():
    torch.manual_seed(0)
    net = Recorder().train()
    loss = ConsistencyLoss(q=4.0, stage_every=1)
    x0 = torch.randn(64, 3)
    g = torch.Generator().manual_seed(1)
    out = loss(net, x0, None, None, generator=g, step=5)  # stage 5: r > 0 for every t
    r_call, t_call = net.calls
    assert not r_call["grad"] and t_call["grad"]
    t, r = t_call["sigma"], r_call["sigma"]
    assert (r < t).all() and (r > 0).all() and torch.equal(t, out.sigma)
    eps_t = (t_call["x"] - x0) / t[:, None]
    eps_r = (r_call["x"] - x0) / r[:, None]
    assert torch.allclose(eps_t, eps_r, atol=2e-3)  # one noise draw at both levels (float32 rounding at large t)
    assert torch.equal(t_call["mask"], r_call["mask"])  # one dropout mask
    assert not torch.equal(t_call["mask"], torch.ones_like(t_call["mask"]))  # dropout was on
    out.loss.backward()
    assert net.scale.grad is not None and math.isfinite(net.scale.grad.item())
    net.calls.clear()
    loss(net, x0, None, None, generator=torch.Generator().manual_seed(2), step=5)
    assert not torch.equal(net.calls[0]["mask"], r_call["mask"])  # the RNG moves on between steps


def test_where_r_is_zero_the_target_is_the_clean_sample_and_one_pass_is_made():
    net = Recorder(p=0.0).train()
    loss = ConsistencyLoss(k=100.0, b=1e-9, c=0.0)  # sigmoid(-b t) = 1/2: the mapping is negative, r = 0
    x0 = torch.randn(32, 4)
    out = loss(net, x0, None, None, generator=torch.Generator().manual_seed(3))
    assert len(net.calls) == 1
    t = out.sigma
    x_t = net.calls[0]["x"]
    mse = ((x_t * 0.5 - x0) ** 2).mean(1)
    want = mse.sqrt() * (t**2 + 0.25) / (t * 0.5) ** 2
    assert torch.allclose(out.per_sample, want, rtol=1e-5)


def test_the_mask_keeps_padding_out_of_the_loss():
    net = Recorder(p=0.0).train()
    loss = ConsistencyLoss(stage_every=1)
    x0 = torch.randn(8, 6)
    mask = torch.ones(8, 6)
    mask[:, 4:] = 0
    a = loss(net, x0, None, mask, generator=torch.Generator().manual_seed(4), step=3)
    x0b = x0.clone()
    x0b[:, 4:] = 1e3  # padding values must not matter
    b = loss(net, x0b, None, mask, generator=torch.Generator().manual_seed(4), step=3)
    assert torch.allclose(a.per_sample, b.per_sample)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="q > 1"):
        ConsistencyLoss(q=1.0)
    with pytest.raises(ValueError, match="stage_every"):
        ConsistencyLoss(stage_every=-1)
    with pytest.raises(ValueError, match="n >= 1"):
        consistency_sigmas(0)
    with pytest.raises(ValueError, match="sigma_last"):
        consistency_sigmas(2, sigma_last=100.0)


def test_consistency_grid():
    assert consistency_sigmas(1).tolist() == [80.0, 0.0]
    assert torch.allclose(consistency_sigmas(2), torch.tensor([80.0, 0.8, 0.0], dtype=torch.float64))
    s = consistency_sigmas(6)
    assert len(s) == 7 and (s[:-1] > s[1:]).all() and s[-1] == 0


def test_multistep_consistency_sampling_is_exact_with_an_exact_consistency_function():
    # Data N(0, sd^2): the probability-flow ODE scales x, so the exact consistency function is
    # f(x, s) = x sd / sqrt(sd^2 + s^2). With it every step count gives exact samples; the
    # diffusion denoiser (posterior mean) gives the collapsed mean in one step instead.
    sd, n = 0.5, 20000
    f = lambda x, s, c=None: x * sd / (sd**2 + s[:, None] ** 2).sqrt()  # noqa: E731
    posterior_mean = lambda x, s, c=None: x * sd**2 / (sd**2 + s[:, None] ** 2)  # noqa: E731
    z = torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for steps in (1, 2, 4):
        calls = []
        g = torch.Generator().manual_seed(steps)

        def noise(x):
            calls.append(1)
            return torch.randn(x.shape, generator=g, dtype=x.dtype)

        sig = consistency_sigmas(steps)
        out = SAMPLERS["consistency"](f, 80.0 * z, sig, noise=noise)
        assert abs(out.std().item() - sd) < 0.02, steps
        assert len(calls) == steps - 1 and EVALUATIONS["consistency"](steps) == steps
    blur = SAMPLERS["consistency"](posterior_mean, 80.0 * z, consistency_sigmas(1))
    assert blur.std().item() < 0.01


def _toy_export(path, preset="tiny", seed=0):
    from diffsuite.core.precond import EDMPrecond
    from diffsuite.core.toy import ToyDomain
    from diffsuite.core.training.export import export_weights

    torch.manual_seed(seed)
    domain = ToyDomain(preset=preset)
    model = EDMPrecond(domain.network())
    precond = {"_target_": "diffsuite.core.precond.EDMPrecond", "_partial_": True, "sigma_data": 0.5}
    export_weights(path, model.state_dict(), {"domain": domain.config(), "model": {"precond": precond}, "step": 7})
    return model.state_dict()


def _ect_run(tmp_path, init, *extra):
    from diffsuite.core.training import fit
    from tests.training.run_trainer import compose_train

    return fit(compose_train(["domain=toy", "domain.preset=tiny", "model=ect", f"init={init}", "trainer=debug",
                              "trainer.steps=2", "trainer.checkpoint_every=0", "trainer.progress=false",
                              f"run_dir={tmp_path / 'ect'}", *extra]))


def test_init_starts_training_from_the_exported_weights(tmp_path):
    from diffsuite.core.training.export import load_exported

    want = _toy_export(tmp_path / "base.safetensors", seed=123)
    result = _ect_run(tmp_path, tmp_path / "base.safetensors", "trainer.lr=1e-12", "model.loss.stage_every=1")
    got, config = load_exported(result.export)  # lr ~0: the tuned export is the init itself
    assert set(got) == set(want) and all(torch.allclose(got[k], want[k], atol=1e-9) for k in want)
    assert config["model"]["loss"]["_target_"] == "diffsuite.core.consistency.ConsistencyLoss"
    fresh = _ect_run(tmp_path / "other", tmp_path / "base.safetensors", "trainer.lr=1e-12", "init=null")
    assert not all(torch.allclose(load_exported(fresh.export)[0][k], want[k], atol=1e-3) for k in want)  # seed 0's


def test_init_that_does_not_fit_names_the_file(tmp_path):
    _toy_export(tmp_path / "small.safetensors", preset="S")
    with pytest.raises(ValueError, match=r"small\.safetensors does not fit"):
        _ect_run(tmp_path, tmp_path / "small.safetensors")
    with pytest.raises(Exception, match=r"missing\.safetensors"):
        _ect_run(tmp_path, tmp_path / "missing.safetensors")

"""Compose the real configs and instantiate every group on CPU, so a YAML typo fails here, not at
a user's first run."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from diffsuite.core.samplers import SAMPLERS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def options(group):
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def hydra_configs():
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        yield


@pytest.mark.parametrize("domain", options("domain"))
def test_every_domain_builds_a_network_that_denoises_its_sampling_batch(domain):
    cfg = compose("train", [f"domain={domain}"])
    d = instantiate(cfg.domain)
    assert d.name == domain
    D = instantiate(cfg.model.precond)(d.network()).eval()
    batch = d.sampling_batch(2, **{k: cfg[k] for k in cfg.sample_options})
    x = torch.randn_like(batch.x)
    with torch.no_grad():
        out = D(x, torch.full((2,), 1.0), batch.cond)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("model", options("model"))
def test_every_model_group_builds_precond_and_loss(model):
    cfg = compose("train", ["domain=toy", f"model={model}", "domain.preset=tiny"])
    d = instantiate(cfg.domain)
    D = instantiate(cfg.model.precond)(d.network())
    loss = instantiate(cfg.model.loss)
    batch = d.collate([d.dataset("train")[i] for i in range(8)])
    out = loss(D, batch.x, batch.cond)
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("schedule", options("schedule"))
def test_every_schedule_group_makes_a_valid_grid(schedule):
    from diffsuite.core.schedules import check_sigmas

    cfg = compose("sample", [f"schedule={schedule}"])
    check_sigmas(instantiate(cfg.schedule)(12))


@pytest.mark.parametrize("sampler", options("sampler"))
def test_every_sampler_group_names_a_registered_sampler_with_valid_options(sampler, gm):
    from diffsuite.core.schedules import karras_sigmas

    cfg = compose("sample", [f"sampler={sampler}"])
    out = SAMPLERS[cfg.sampler.name](lambda x, s, c: gm.denoise(x, s), 80 * torch.randn(4, 2),
                                     karras_sigmas(4), **cfg.sampler.options)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer_group_composes(trainer):
    cfg = compose("train", [f"trainer={trainer}"])
    assert cfg.trainer.steps > 0 and cfg.trainer.batch_size > 0


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment):
    cfg = compose("train", [f"experiment={experiment}"])
    instantiate(cfg.domain)
    assert cfg.trainer.steps > 0


def test_demo_config_names_every_domain_and_evaluate_needs_samples():
    cfg = compose("demo")
    assert set(cfg.domains) == set(options("domain")) - {"toy"}
    with pytest.raises(Exception, match="samples"):
        compose("evaluate")["samples"]  # noqa: B018 (??? is a required value)


def test_sampling_guidance_defaults_to_the_domains_and_an_override_wins():
    from diffsuite.core.api import compose_config, sample_settings

    assert sample_settings(compose_config("sample", ["domain=video"]))["guidance"] == 2.0  # default_guidance
    assert sample_settings(compose_config("sample", ["domain=audio"]))["guidance"] == 1.5
    assert sample_settings(compose_config("sample", ["domain=toy"]))["guidance"] == 1.0  # none set: off
    assert sample_settings(compose_config("sample", ["domain=video", "guidance=1.0"]))["guidance"] == 1.0


def test_sampler_and_steps_default_to_the_domains_and_a_choice_wins():
    from diffsuite.core.api import compose_config, sample_settings

    s = sample_settings(compose_config("sample", ["domain=molecules"]))  # default_sampler, default_steps
    assert (s["sampler"], s["sampler_options"], s["steps"]) == ("dpmpp_3m_sde", {"eta": 1.0}, 99)
    s = sample_settings(compose_config("sample", ["domain=audio"]))  # none set: Heun, 32 steps
    assert (s["sampler"], s["steps"]) == ("heun", 32)
    s = sample_settings(compose_config("sample", ["domain=molecules", "sampler=heun", "steps=10"]))
    assert (s["sampler"], s["steps"]) == ("heun", 10) and s["sampler_options"]["churn"] == 0.0


def test_the_api_samples_molecules_with_the_domains_default_sampler(monkeypatch):
    import diffsuite
    from diffsuite.core import generate as gen

    seen = {}
    real = gen.generate

    def spy(*args, **kw):
        seen.update(sampler=kw["sampler"], steps=kw["steps"])
        kw["steps"] = 2  # only the choice is under test
        return real(*args, **kw)

    monkeypatch.setattr(gen, "generate", spy)  # Model.sample imports it at call time
    diffsuite.load("molecules").sample(2, progress=False)
    assert seen == {"sampler": "dpmpp_3m_sde", "steps": 99}


def test_a_default_guidance_with_nothing_to_guide_samples_unguided_but_an_asked_one_is_refused():
    import diffsuite
    from diffsuite.core.api import compose_config, sample_settings
    from diffsuite.core.errors import UserError

    assert sample_settings(compose_config("sample", ["domain=video"]))["guidance_optional"]
    assert not sample_settings(compose_config("sample", ["domain=video", "guidance=2"]))["guidance_optional"]
    model = diffsuite.load("video")
    assert len(model.sample(1, steps=1, given=4, progress=False)) == 1  # default 2.0, no class: unguided
    with pytest.raises(UserError, match="changes nothing"):
        model.sample(1, steps=1, given=4, guidance=2.0, progress=False)

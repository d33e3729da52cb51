"""What an export stores about its domain comes from one source, the domain's constructor, and is
load-checked when it is written (issue 10, item 6)."""

from __future__ import annotations

import inspect
import json

import pytest
from hydra.utils import instantiate

from diffsuite.core.domain import ConfigFromInit
from diffsuite.core.toy import ToyDomain
from diffsuite.core.training.export import check_export, export_weights
from diffsuite.core.training.trainer import fit
from diffsuite.domains.audio import AudioDomain
from diffsuite.domains.molecules import MoleculesDomain
from diffsuite.domains.video import VideoDomain
from tests.training.run_trainer import compose_train

# Each domain built with arguments away from their defaults, so a config that drops or freezes
# one of them shows.
BUILDS = {
    "toy": lambda: ToyDomain(preset="tiny", train_size=300, seed=4),
    "audio": lambda: AudioDomain(n_mels=32, seconds=0.512, preset="XS", dropout=0.1, synthetic_per_class=(4, 2, 2),
                                 griffin_lim_iters=8, label_map={"a": "b"}),
    "video": lambda: VideoDomain(preset="tiny", frames=4, size=16, patch=[2, 4, 4], context_p=0.3, rollout_context=1),
    "molecules": lambda: MoleculesDomain(preset="XS", network="graph_egnn", bonds=True, vocabulary="qm9_charged",
                                         max_molecules=8, bond_scale=0.7, loss_weights=[1.0, 2.0, 3.0, 4.0]),
}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_config_is_the_constructor_arguments_and_rebuilds_the_domain(name):
    domain = BUILDS[name]()
    config = domain.config()
    params = set(inspect.signature(type(domain).__init__).parameters) - {"self"}
    assert set(config) - {"_target_"} == params  # every argument, nothing else
    stored = json.loads(json.dumps(config))  # what an export's metadata holds
    assert stored == config
    rebuilt = instantiate(stored)
    assert type(rebuilt) is type(domain) and rebuilt.config() == config


def test_changed_arguments_travel_and_machine_paths_do_not(tmp_path):
    video = VideoDomain(preset="tiny", frames=4, size=16, cache_dir=str(tmp_path))
    assert video.config()["frames"] == 4 and video.config()["cache_dir"] is None
    audio = AudioDomain(n_mels=32, preset="XS", synthetic_per_class=(4, 2, 2), cache_dir=str(tmp_path))
    config = audio.config()
    assert config["n_mels"] == 32 and config["cache_dir"] is None
    assert config["classes"] == list(audio.classes) and len(config["classes"]) == audio.num_classes  # settled, not null


def test_the_outermost_constructor_records_and_overrides_name_arguments():
    class Base(ConfigFromInit):
        def __init__(self, *, a: int = 1, b: int = 2):
            self.a, self.b = a, b

    class Child(Base):
        def __init__(self, *, a: int = 5, c: tuple = (1, 2)):
            super().__init__(a=a, b=9)
            self.c = c

    assert Child(c=(3,)).config() == {"_target_": f"{__name__}.Child", "a": 5, "c": [3]}

    class Wrong(Base):
        def settled_config(self):
            return {"z": 1}

    with pytest.raises(TypeError, match=r"names \['z'\]"):
        Wrong().config()
    class Forwarding(Base):  # **kw handed on: the parent's arguments (and defaults) are recorded too
        def __init__(self, *, d: int = 0, **kw):
            super().__init__(**kw)

    config = Forwarding(d=1, a=3).config()
    assert config == {"_target_": f"{__name__}.Forwarding", "d": 1, "a": 3, "b": 2}
    assert instantiate({**config, "_target_": "builtins.dict"}) == {"d": 1, "a": 3, "b": 2}
    with pytest.raises(TypeError, match=r"\*args"):
        class Loose(ConfigFromInit):  # noqa: F841
            def __init__(self, *args):
                pass


def test_an_export_whose_config_does_not_rebuild_its_network_fails_at_export(tmp_path, monkeypatch):
    # a drifted config (it stores preset=S while the network is tiny) is caught when the trainer
    # writes the export, not when a user loads it
    monkeypatch.setattr(ToyDomain, "settled_config", lambda self: {"preset": "S"})
    with pytest.raises(Exception, match="does not fit the network"):
        fit(compose_train(["domain=toy", "domain.preset=tiny", "trainer=debug", "trainer.steps=2",
                           f"run_dir={tmp_path / 'run'}"]))


def test_check_export_names_the_keys_that_do_not_rebuild(tmp_path, monkeypatch):
    domain = ToyDomain(preset="tiny")
    from diffsuite.core.precond import EDMPrecond

    net = EDMPrecond(domain.network(), sigma_data=0.5)
    config = {"domain": domain.config(), "model": {"precond": {"_target_": "diffsuite.core.precond.EDMPrecond",
                                                               "_partial_": True, "sigma_data": 0.5}}}
    path = export_weights(tmp_path / "w.safetensors", net.state_dict(), config)
    check_export(path)  # a faithful config passes
    monkeypatch.setattr(ToyDomain, "settled_config", lambda self: {"seed": self.seed + 1})
    with pytest.raises(RuntimeError, match=r"keys \['seed'\] differ"):
        check_export(path)

"""The shipped hydra config composes, builds the domain, and its sample options reach sampling_batch."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_config_composes_and_options_work():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="sample", overrides=["domain=molecules", "domain.preset=XS", "num_atoms=7"])
    domain = instantiate(cfg.domain)
    assert domain.name == "molecules"
    opts = {k: cfg[k] for k in cfg.sample_options}
    batch = domain.sampling_batch(3, **opts)
    assert batch.x.shape == (3, 29, 8) and batch.mask.sum() == 21  # padded to QM9's 29 atoms
    assert set(cfg.evaluate_options) <= set(cfg)
    rebuilt = instantiate(domain.config())
    assert rebuilt.config() == domain.config()


def test_joint_experiment_composes_and_rebuilds():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=molecules_joint", "domain.preset=XS"])
    assert cfg.trainer.checkpoint_every > 0 and cfg.trainer.eval_every > 0 and cfg.trainer.precision == "auto"
    domain = instantiate(cfg.domain)
    assert domain.bonds and domain.network_kind == "graph_egnn"
    batch = domain.sampling_batch(2, num_atoms=7)
    assert batch.x.shape == (2, 29, 3 + 5 + 3 + 29 * 4)  # positions, elements, charges, bond rows
    rebuilt = instantiate(domain.config())
    assert rebuilt.config() == domain.config() and rebuilt.bonds

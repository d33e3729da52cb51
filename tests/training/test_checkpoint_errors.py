"""A checkpoint that does not fit the run is refused by name, with the keys or shapes that differ;
a changed trainer.ema resumes with a warning, keeping the decays both runs have."""

from __future__ import annotations

import pytest
import torch

from diffsuite.core.training import fit
from diffsuite.core.training.checkpoint import CheckpointError
from tests.training.run_trainer import compose_train

BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=300", "trainer.progress=false",
        "trainer.batch_size=8", "trainer.lr=3e-3", "trainer.checkpoint_every=0", "trainer.tensorboard=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckerr") / "run"
    fit(compose_train([*BASE, "trainer.steps=3", "trainer.ema=[0.9,0.99]", f"run_dir={d}"]))
    return d


def test_another_preset_is_refused_naming_checkpoint_and_shapes(run_dir, tmp_path):
    ckpt = run_dir / "checkpoints" / "step_00000003"
    with pytest.raises(CheckpointError) as e:
        fit(compose_train([*BASE, "domain.preset=S", "trainer.steps=5", "trainer.ema=[0.9,0.99]",
                           f"run_dir={tmp_path / 'other'}", f"resume={ckpt}"]))
    msg = str(e.value)
    assert str(ckpt) in msg and "shape" in msg and "model.net." in msg and "(32" in msg and "(128" in msg, msg


def test_changed_ema_resumes_with_a_warning_and_keeps_the_common_decay(run_dir, tmp_path, caplog):
    ckpt = run_dir / "checkpoints" / "step_00000003"
    first = fit(compose_train([*BASE, "trainer.steps=3", "trainer.ema=[0.9,0.99]", f"run_dir={tmp_path / 'a'}",
                               f"resume={ckpt}"]))
    caplog.set_level("WARNING", logger="diffsuite.train")
    r = fit(compose_train([*BASE, "trainer.steps=3", "trainer.ema=[0.99,0.5]", f"run_dir={tmp_path / 'b'}",
                           f"resume={ckpt}"]))
    assert "trainer.ema changed on resume" in caplog.text and "step_00000003" in caplog.text
    for k, v in first.ema.shadows[1].items():  # 0.99 came from the checkpoint
        assert torch.equal(r.ema.shadows[0][k], v), k
    for k, v in r.model.state_dict().items():  # 0.5 is new: it starts from the resumed weights
        if k in r.ema.shadows[1]:
            assert torch.equal(r.ema.shadows[1][k], v), k


def test_dcp_errors_that_are_not_exceptions_are_named(run_dir, monkeypatch):
    """DCP raises CheckpointException, a BaseException: it must still come out as a CheckpointError
    that names the checkpoint."""
    from torch.distributed.checkpoint.api import CheckpointException

    from diffsuite.core.training import checkpoint as ck

    def broken(*a, **k):
        raise CheckpointException("load failed", {0: (RuntimeError("bad shard"), None)})

    monkeypatch.setattr(ck.dcp, "load", broken)
    monkeypatch.setattr(ck, "mismatch", lambda path, state: [])
    ckpt = run_dir / "checkpoints" / "step_00000003"
    with pytest.raises(CheckpointError, match=rf"cannot load checkpoint {ckpt}: CheckpointException"):
        ck.load_checkpoint(ckpt, {"model": {}})

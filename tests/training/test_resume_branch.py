"""Resuming an older checkpoint of a run that went further starts a new branch: the later
checkpoints and the export are moved aside (not deleted), and what train() returns is this
branch's own export, equal to an uninterrupted run of the same length."""

from __future__ import annotations

import torch

from diffsuite.core.training import fit, train
from diffsuite.core.training.checkpoint import list_checkpoints
from diffsuite.core.training.export import load_exported
from tests.training.run_trainer import compose_train

BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=300", "trainer.progress=false",
        "trainer.batch_size=8", "trainer.lr=3e-3", "trainer.checkpoint_every=4", "trainer.keep_checkpoints=5",
        "trainer.tensorboard=false"]


def test_resuming_an_older_step_returns_fresh_weights_and_keeps_the_later_files(tmp_path, caplog):
    run_dir = tmp_path / "run"
    fit(compose_train([*BASE, "trainer.steps=12", f"run_dir={run_dir}"]))
    caplog.set_level("INFO", logger="diffsuite.train")
    ckpts = run_dir / "checkpoints"
    out = train(compose_train([*BASE, "trainer.steps=8", f"run_dir={run_dir}", f"resume={ckpts / 'step_00000004'}"]))
    state, config = load_exported(out)
    assert config["step"] == 8, f"train() returned the export of step {config['step']}"
    straight = fit(compose_train([*BASE, "trainer.steps=8", f"run_dir={tmp_path / 'straight'}"]))
    want = load_exported(straight.export)[0]
    for k in want:
        assert torch.equal(state[k], want[k]), k
    # the later branch is set aside, whole
    aside = run_dir / "superseded" / "from_step_00000004"
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == ["step_00000008", "step_00000012"]
    assert load_exported(aside / "export" / "weights.safetensors")[1]["step"] == 12
    assert [c.name for c in list_checkpoints(ckpts)] == ["step_00000004", "step_00000008"]
    assert "moved to" in caplog.text and str(aside) in caplog.text
    assert f"wrote checkpoint {ckpts / 'step_00000008'}" in caplog.text


def test_resuming_the_last_step_moves_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = train(compose_train([*BASE, "trainer.steps=4", f"run_dir={run_dir}"]))
    again = train(compose_train([*BASE, "trainer.steps=4", f"run_dir={run_dir}"]))
    assert again == first and not (run_dir / "superseded").exists()

"""`init=<a checkpoint folder>` warm-starts a new run from another run's checkpoint: the first EMA
shadow of that checkpoint, checked against this run's domain and network like an export."""

from __future__ import annotations

import pytest
import torch

from diffsuite.core.training.checkpoint import CheckpointError, checkpoint_weights
from diffsuite.core.training.export import load_exported
from diffsuite.core.training.trainer import fit
from tests.training.run_trainer import compose_train

BASE = ["domain=toy", "domain.preset=tiny", "trainer=debug", "trainer.progress=false"]


def test_a_new_run_starts_from_the_checkpoints_ema(tmp_path):
    first = fit(compose_train([*BASE, "trainer.steps=6", "trainer.checkpoint_every=3", "trainer.ema=[0.5]",
                               f"run_dir={tmp_path / 'a'}"]))
    ckpt = first.run_dir / "checkpoints" / "step_00000006"
    weights, config = checkpoint_weights(ckpt)
    ema = first.ema.state_dict()["ema_0p5"]
    raw = first.model.state_dict()
    assert config["step"] == 6 and set(weights) == set(raw)
    assert all(torch.equal(weights[k], ema[k]) for k in ema)
    assert not all(torch.equal(weights[k], raw[k]) for k in raw)  # the EMA, not the raw weights
    second = fit(compose_train([*BASE, "trainer.steps=1", "trainer.lr=1e-12", "trainer.ema=[]",
                                f"init={ckpt}", f"run_dir={tmp_path / 'b'}"]))
    got, _ = load_exported(second.export)  # lr ~0 and no EMA: the export is the init itself
    assert all(torch.allclose(got[k], ema[k], atol=1e-9) for k in ema)


def test_a_checkpoint_of_another_network_or_without_its_run_is_named(tmp_path):
    fit(compose_train([*BASE, "trainer.steps=2", "trainer.checkpoint_every=2", f"run_dir={tmp_path / 'a'}"]))
    ckpt = tmp_path / "a" / "checkpoints" / "step_00000002"
    with pytest.raises(ValueError, match=r"step_00000002 does not fit"):
        fit(compose_train(["domain=toy", "domain.preset=S", "trainer=debug", "trainer.steps=1", f"init={ckpt}",
                           f"run_dir={tmp_path / 'b'}"]))
    (tmp_path / "a" / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match=r"config\.yaml is missing"):
        checkpoint_weights(ckpt)


def test_a_checkpoint_exports_its_ema_and_loads_like_a_final_export(tmp_path):
    import subprocess
    import sys

    from diffsuite.core.training.export import build_from_export, export_checkpoint

    run = fit(compose_train([*BASE, "trainer.steps=4", "trainer.checkpoint_every=2", "trainer.ema=[0.5]",
                             f"run_dir={tmp_path / 'a'}"]))
    ckpt = run.run_dir / "checkpoints" / "step_00000004"
    path = export_checkpoint(ckpt, tmp_path / "mid.safetensors")
    domain, denoiser, config = build_from_export(path)
    ema = run.ema.state_dict()["ema_0p5"]
    assert config["step"] == 4 and config["domain"] == load_exported(run.export)[1]["domain"]
    assert all(torch.equal(denoiser.state_dict()[k], ema[k]) for k in ema)
    cli = [sys.executable, "-m", "diffsuite.core.training.export", str(ckpt), str(path)]
    done = subprocess.run(cli, capture_output=True, text=True)
    assert done.returncode != 0 and "mid.safetensors exists" in done.stderr and "Traceback" not in done.stderr

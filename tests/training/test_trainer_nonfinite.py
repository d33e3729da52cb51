"""A non-finite loss never reaches the weights: the step is skipped and logged, and a run that
keeps producing them stops with a message that says what happened."""

from __future__ import annotations

import csv

import pytest
import torch

from diffsuite.core.training import fit
from tests.training.run_trainer import compose_train

NAN = "tests.training.training_domains.NaNToyDomain"
BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=500", "trainer.progress=false",
        "trainer.batch_size=16", f"domain._target_={NAN}"]


def test_one_bad_step_is_skipped_and_training_goes_on(tmp_path, caplog):
    caplog.set_level("WARNING", logger="diffsuite.train")
    r = fit(compose_train([*BASE, "+domain.bad_calls=[3]", "trainer.steps=12", f"run_dir={tmp_path}"]))
    assert r.step == 12
    assert all(torch.isfinite(v).all() for v in r.model.state_dict().values())
    assert all(torch.isfinite(v).all() for v in r.ema.shadows[0].values())
    with open(tmp_path / "log.csv") as f:
        skipped = {int(row["step"]): int(row["skipped"]) for row in csv.DictReader(f)}
    assert skipped[4] == 1 and sum(skipped.values()) == 1  # the 4th step (index 3) only
    assert "step 4: non-finite loss" in caplog.text and "sigma [" in caplog.text


def test_a_network_that_returns_nan_stops_the_run_with_a_message(tmp_path):
    cfg = compose_train([*BASE, "+domain.bad_calls=null", "trainer.steps=50", "trainer.max_nonfinite=3",
                         "trainer.checkpoint_every=0", f"run_dir={tmp_path}"])
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r"stopped at step 3: 3 steps in a row had a non-finite loss") as e:
        fit(cfg)
    assert "sigma [" in str(e.value) and "trainer.max_nonfinite=3" in str(e.value)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "export").exists()

"""Two real processes (torchrun, gloo) train the toy denoiser; their checkpoint resumes in one."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from diffsuite.core.training import fit
from tests.training.run_trainer import compose_train

SCRIPT = Path(__file__).with_name("run_trainer.py")
RECORDING = "tests.training.training_domains.NoiseRecordingToyDomain"
BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=2000", "trainer.progress=false",
        "trainer.batch_size=32", "trainer.lr=3e-3", "trainer.warmup=5"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    noise_dir = run_dir.parent / "noise"
    noise_dir.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), *BASE,
           "trainer.steps=80", "trainer.log_every=10", "trainer.checkpoint_every=40", f"run_dir={run_dir}",
           f"domain._target_={RECORDING}", "+domain.record_calls=4", "trainer.grad_accum=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIFFSUITE_TEST_NOISE_DIR": str(noise_dir)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return run_dir


def test_two_processes_train_and_hold_identical_weights(ddp_run):
    with open(ddp_run / "log.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.8 * losses[0], f"loss did not fall: {losses}"
    r0, r1 = (load_file(ddp_run / "ranks" / f"rank{r}.safetensors") for r in (0, 1))
    assert r0.keys() == r1.keys() and any(k.startswith("ema0.") for k in r0)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
    with safe_open(str(ddp_run / "ranks" / "rank0.safetensors"), "pt") as f:
        assert f.metadata()["step"] == "80"
    assert (ddp_run / "export" / "weights.safetensors").is_file()


def test_each_rank_and_micro_step_draws_different_noise(ddp_run):
    """Two ranks x two accumulation micro-steps x two steps: eight draws, no two alike (the same
    noise on every rank would make the second rank's gradient a copy of the first's)."""
    draws = {(r, c): torch.load(ddp_run.parent / "noise" / f"rank{r}_{c}.pt") for r in (0, 1) for c in range(4)}
    keys = list(draws)
    assert all(d.shape == draws[keys[0]].shape for d in draws.values())
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert not torch.allclose(draws[a], draws[b]), f"{a} and {b} drew the same noise"


def test_checkpoint_of_two_processes_resumes_in_one(ddp_run, tmp_path):
    ckpt = ddp_run / "checkpoints" / "step_00000080"
    ranks = load_file(ddp_run / "ranks" / "rank0.safetensors")
    # same step count: nothing to train, so the model is exactly what the two ranks held
    r = fit(compose_train([*BASE, "trainer.steps=80", f"run_dir={tmp_path / 'one'}", f"resume={ckpt}"]))
    assert r.resumed_from == ckpt and r.step == 80
    for k, v in r.model.state_dict().items():
        assert torch.equal(v, ranks[f"raw.{k}"]), k
    for k, v in r.ema.shadows[0].items():
        assert torch.equal(v, ranks[f"ema0.{k}"]), k
    # and it goes on training, alone, from there
    r = fit(compose_train([*BASE, "trainer.steps=90", f"run_dir={tmp_path / 'two'}", f"resume={ckpt}"]))
    assert r.step == 90 and r.export is not None
    assert all(torch.isfinite(v).all() for v in r.model.state_dict().values())
    assert not torch.equal(r.model.state_dict()["net.out.1.weight"], ranks["raw.net.out.1.weight"])

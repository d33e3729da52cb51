"""Resumable checkpoints: a hard kill, a polite SIGTERM, and damaged checkpoints."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from diffsuite.core.training import fit
from diffsuite.core.training.checkpoint import CheckpointError, choose_checkpoint, list_checkpoints, verify_checkpoint
from diffsuite.core.training.distributed import DistInfo
from tests.training.run_trainer import compose_train

SCRIPT = Path(__file__).with_name("run_trainer.py")
SLOW = "tests.training.training_domains.SlowToyDomain"
BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=1000", "trainer.progress=false",
        "trainer.batch_size=16", "trainer.lr=3e-3", "trainer.warmup=5", "trainer.decay=cosine",
        f"domain._target_={SLOW}"]
FAST, SLOWLY = "+domain.delay=0", "+domain.delay=0.003"  # same data; the subprocesses read it slowly


def _start(overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), *overrides], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: rc={proc.returncode}\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _logged_step(run_dir: Path) -> int:
    try:
        with open(run_dir / "log.csv") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["step"]) if rows else 0
    except (OSError, ValueError, KeyError):
        return 0


def _assert_same_weights(a, b):
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), f"weights differ in {ka}"
    for sa, sb in zip(a.ema.shadows, b.ema.shadows):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"EMA differs in {k}"


def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    run = [*BASE, "trainer.steps=100", "trainer.checkpoint_every=20", "trainer.ema=[0.9,0.99]"]
    killed = tmp_path / "killed"
    proc = _start([*run, SLOWLY, f"run_dir={killed}"])
    _wait_for(proc, lambda: (killed / "checkpoints" / "step_00000040").exists(), "the step-40 checkpoint")
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(30)
    assert not (killed / "export").exists(), "the run finished before it was killed"
    assert _logged_step(killed) < 100
    resumed = fit(compose_train([*run, FAST, f"run_dir={killed}"]))  # resume=auto
    assert resumed.resumed_from is not None and resumed.resumed_from.name >= "step_00000040"
    straight = fit(compose_train([*run, FAST, f"run_dir={tmp_path / 'straight'}"]))
    assert resumed.step == straight.step == 100
    _assert_same_weights(resumed, straight)


def test_sigterm_leaves_a_resumable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start([*BASE, "trainer.steps=2000", "trainer.checkpoint_every=0", "trainer.log_every=5",
                   SLOWLY, f"run_dir={run_dir}"])
    _wait_for(proc, lambda: _logged_step(run_dir) >= 10, "step 10")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM" in err
    (ckpt,) = list_checkpoints(run_dir / "checkpoints")
    stopped_at = verify_checkpoint(ckpt)["step"]
    assert 10 <= stopped_at < 2000
    with safe_open(str(run_dir / "ranks" / "rank0.safetensors"), "pt") as f:
        assert f.metadata() == {"step": str(stopped_at), "stopped_by": "SIGTERM"}
    r = fit(compose_train([*BASE, FAST, f"trainer.steps={stopped_at + 5}", f"run_dir={run_dir}"]))
    assert r.resumed_from == ckpt and r.step == stopped_at + 5 and r.export is not None


def test_sigterm_to_the_process_group_with_data_workers_still_checkpoints(tmp_path):
    # a scheduler, `kill -- -PGID` or Ctrl-C signals every process, data workers included; a worker
    # that died of it used to make the trainer's last checkpoint fail with a traceback
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *BASE, "trainer.steps=2000", "trainer.checkpoint_every=0",
                             "trainer.log_every=5", "trainer.num_workers=1", SLOWLY, f"run_dir={run_dir}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(proc, lambda: _logged_step(run_dir) >= 10, "step 10")
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert "stopped by SIGTERM" in err
    (ckpt,) = list_checkpoints(run_dir / "checkpoints")
    assert 10 <= verify_checkpoint(ckpt)["step"] < 2000


def test_damaged_checkpoints_are_refused_and_the_previous_good_one_used(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run = [*BASE, FAST, "trainer.checkpoint_every=10", "trainer.keep_checkpoints=3", f"run_dir={run_dir}"]
    fit(compose_train([*run, "trainer.steps=30"]))
    c10, c20, c30 = list_checkpoints(run_dir / "checkpoints")
    alone = DistInfo(0, 1, 0, torch.device("cpu"), False)

    shard = next(c30.glob("*.distcp"))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CheckpointError, match=rf"{c30}.*truncated.*previous good checkpoint is {c20}"):
        choose_checkpoint(str(c30), run_dir, alone)

    flipped = bytearray((next(c20.glob("*.distcp"))).read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # same size, one byte changed
    (next(c20.glob("*.distcp"))).write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=rf"{c20} is corrupted: the sha256"):
        verify_checkpoint(c20)

    caplog.set_level("WARNING", logger="diffsuite.train")
    r = fit(compose_train([*run, "trainer.steps=35"]))  # resume=auto skips both damaged ones
    assert r.resumed_from == c10 and r.step == 35
    assert str(c30) in caplog.text and str(c20) in caplog.text
    verify_checkpoint(c20)  # the resumed run wrote steps 20 and 30 again rather than keeping the damaged ones
    verify_checkpoint(c30)

    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        fit(compose_train([*run, "trainer.steps=40", "resume=null"]))

"""Periodic evaluation in the trainer: figures in evals.csv and TensorBoard (read back), media in
TensorBoard, a summary line, no effect on training, a failing evaluation that only warns, resume,
and rank 0 alone under two processes."""

from __future__ import annotations

import csv
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from diffsuite.core.training import fit
from diffsuite.core.training.options import TrainerOptions
from diffsuite.core.training.periodic_eval import main_metric
from tests.training.eval_domains import CLIP_RATE
from tests.training.run_trainer import compose_train

BASE = ["trainer=debug", "domain.preset=tiny", "domain.train_size=2000", "trainer.progress=false", "trainer.steps=20",
        "trainer.log_every=5", "trainer.eval_n=8", "trainer.eval_steps=4"]  # heun, 4 steps: 7 network evaluations
MEDIA = "domain._target_=tests.training.eval_domains.MediaToyDomain"
FAILING = "domain._target_=tests.training.eval_domains.FailingEvalToyDomain"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A debug-size toy run evaluated every 10 steps, with TensorBoard on; and its log lines."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("diffsuite.train").addHandler(handler)
    try:
        result = fit(compose_train([*BASE, MEDIA, "trainer.eval_every=10", "trainer.tensorboard=true",
                                    f"run_dir={run_dir}"]))
    finally:
        logging.getLogger("diffsuite.train").removeHandler(handler)
    return result, [r.getMessage() for r in records]


def test_run_writes_periodic_figures_to_csv_and_tensorboard(evaluated):
    result, _ = evaluated
    run_dir = result.run_dir
    rows = read_csv(run_dir / "evals.csv")
    assert [int(r["step"]) for r in rows] == [10, 20]
    losses = {int(r["step"]): float(r["loss"]) for r in read_csv(run_dir / "log.csv")}
    walls = {int(r["step"]): float(r["wall_s"]) for r in read_csv(run_dir / "log.csv")}
    for r in rows:
        step = int(r["step"])
        assert float(r["loss"]) == pytest.approx(losses[step])  # the loss beside the figures
        assert int(r["nfe"]) == 7 and int(r["n"]) == 8
        assert float(r["wall_s"]) >= walls[step] + float(r["eval_s"]) * 0.99  # logged after the evaluation ran
        assert math.isfinite(float(r["sliced_wasserstein"])) and math.isfinite(float(r["log_likelihood"]))
        assert (run_dir / "evals" / f"step_{step:08d}" / "samples.npz").is_file()
    # the two evaluations scored different weights (step 10 vs 20), with the same seed
    assert rows[0]["sliced_wasserstein"] != rows[1]["sliced_wasserstein"]

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0, "audio": 0}).Reload()
    tags = acc.Tags()
    for name in ("sliced_wasserstein", "log_likelihood", "nfe", "eval_s"):
        assert f"eval/{name}" in tags["scalars"], tags["scalars"]
    sw = acc.Scalars("eval/sliced_wasserstein")
    assert [e.step for e in sw] == [10, 20]
    assert [e.value for e in sw] == pytest.approx([float(r["sliced_wasserstein"]) for r in rows], rel=1e-6)
    assert "train/loss" in tags["scalars"]


def test_run_logs_samples_as_tensorboard_media(evaluated):
    result, _ = evaluated
    acc = EventAccumulator(str(result.run_dir / "tb"), size_guidance={"images": 0, "audio": 0}).Reload()
    tags = acc.Tags()
    assert {"samples/samples.png", "samples/anim.gif"} <= set(tags["images"]), tags["images"]
    scatter = acc.Images("samples/samples.png")
    assert [e.step for e in scatter] == [10, 20]
    assert scatter[0].encoded_image_string.startswith(b"\x89PNG") and scatter[0].width > 100
    gif = acc.Images("samples/anim.gif")  # animated, as TensorBoard's video summaries are
    assert gif[-1].encoded_image_string.startswith(b"GIF8") and (gif[-1].width, gif[-1].height) == (24, 16)
    assert gif[-1].encoded_image_string == (result.run_dir / "evals" / "step_00000020" / "anim.gif").read_bytes()
    clip = acc.Audio("samples/clip.wav")
    assert [e.step for e in clip] == [10, 20]
    assert clip[0].sample_rate == CLIP_RATE and clip[0].encoded_audio_string.startswith(b"RIFF")


def test_each_evaluation_prints_one_summary_line(evaluated):
    result, messages = evaluated
    lines = [m for m in messages if m.startswith("eval step")]
    assert len(lines) == 2 and all("\n" not in m for m in lines)
    rows = read_csv(result.run_dir / "evals.csv")
    assert lines[1].startswith("eval step 20/20 | loss ")
    assert f"sliced_wasserstein {float(rows[1]['sliced_wasserstein']):.4g}" in lines[1]
    assert "8 samples, 7 NFE" in lines[1]


def test_evaluation_leaves_training_unchanged(evaluated, tmp_path):
    result, _ = evaluated
    plain = fit(compose_train([*BASE, MEDIA, f"run_dir={tmp_path / 'plain'}"]))
    assert not (plain.run_dir / "evals.csv").exists()
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, result.model.state_dict()[k]), k
    for k, v in plain.ema.shadows[0].items():
        assert torch.equal(v, result.ema.shadows[0][k]), k


def test_failing_evaluation_warns_and_training_continues(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="diffsuite.train"):
        result = fit(compose_train([*BASE, FAILING, "trainer.eval_every=10", f"run_dir={tmp_path / 'run'}"]))
    assert result.step == 20 and result.export is not None and result.export.is_file()
    warned = [r.getMessage() for r in caplog.records if "evaluation at step" in r.getMessage()]
    assert len(warned) == 2
    assert "evaluation at step 10 failed (RuntimeError: reference statistics unavailable); training continues" in warned[0]
    assert not (tmp_path / "run" / "evals.csv").exists()
    assert (tmp_path / "run" / "evals" / "step_00000010" / "samples.npz").is_file()  # the samples stay to look at


def test_resumed_run_replaces_later_rows_and_keeps_earlier_files(tmp_path):
    run_dir = tmp_path / "run"
    fit(compose_train([*BASE, "trainer.eval_every=10", f"run_dir={run_dir}"]))
    first = read_csv(run_dir / "evals.csv")
    # go back to the checkpoint at step 10 and train to 20 again
    fit(compose_train([*BASE, "trainer.eval_every=10", f"run_dir={run_dir}",
                       f"resume={run_dir / 'checkpoints' / 'step_00000010'}"]))
    again = read_csv(run_dir / "evals.csv")
    assert [r["step"] for r in again] == ["10", "20"]  # step 20 once, not twice
    assert again[0] == first[0]
    assert again[1]["sliced_wasserstein"] == first[1]["sliced_wasserstein"]  # resumed exactly: same weights
    assert float(again[1]["wall_s"]) > float(again[0]["wall_s"])
    log = {int(r["step"]): float(r["wall_s"]) for r in read_csv(run_dir / "log.csv")}
    assert sorted(log) == list(range(5, 21, 5)) and log[15] > float(again[0]["wall_s"])  # wall time never runs back
    assert (run_dir / "evals" / "step_00000020" / "samples.npz").is_file()
    assert (run_dir / "evals" / "step_00000020.2" / "samples.npz").is_file()


def test_two_processes_evaluate_on_rank_zero_only(tmp_path):
    run_dir = tmp_path / "ddp"
    script = Path(__file__).with_name("run_trainer.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), *BASE,
           "trainer.batch_size=16", "trainer.eval_every=10", f"run_dir={run_dir}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = read_csv(run_dir / "evals.csv")
    assert [r["step"] for r in rows] == ["10", "20"]  # one row each: only rank 0 wrote
    assert sorted(p.name for p in (run_dir / "evals").iterdir()) == ["step_00000010", "step_00000020"]
    assert proc.stderr.count("eval step 20/20") == 1


def test_main_metric_and_options():
    figures = {"n": 16.0, "real_fd": 2.0, "fd": 9.0, "accuracy": 0.5}
    assert main_metric(figures) == "fd"
    assert main_metric(figures, preferred="accuracy") == "accuracy"
    video = {"samples": 4.0, "generated_samples": 4.0, "classifier_frechet_distance": 1484.6,
             "classifier_frechet_distance_real_heldout": 1053.5}
    assert main_metric(video) == "classifier_frechet_distance"
    assert main_metric({"sliced_wasserstein_real": 0.1, "sliced_wasserstein": 0.2}) == "sliced_wasserstein"

    class Declares:
        main_metric = "accuracy"

    assert main_metric(figures, Declares()) == "accuracy"
    with pytest.raises(ValueError, match="trainer.eval_every must be >= 0"):
        TrainerOptions.from_config({"eval_every": -1})
    with pytest.raises(ValueError, match="trainer.eval_options"):
        TrainerOptions.from_config({"eval_options": [1, 2]})

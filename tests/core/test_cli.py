"""The command line as a user runs it: train the toy, sample it, evaluate the samples."""

import json
import subprocess
import sys

import pytest


def diffsuite(*args, cwd):
    return subprocess.run([sys.executable, "-m", "diffsuite.core.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    run = diffsuite("train", "domain=toy", "domain.preset=tiny", "trainer=debug", "trainer.steps=30",
                    f"run_dir={tmp / 'run'}", cwd=tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    weights = tmp / "run" / "export" / "weights.safetensors"
    assert weights.is_file()
    return tmp, weights


def test_train_sample_evaluate_round_trip(trained):
    tmp, weights = trained
    run = diffsuite("sample", "domain=toy", f"checkpoint={weights}", "n=200", "steps=8", "sampler=dpmpp_2m",
                    f"out={tmp / 'samples'}", cwd=tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp / "samples" / "samples.npz").is_file() and (tmp / "samples" / "samples.png").is_file()
    assert "samples.png" in run.stdout
    run = diffsuite("evaluate", "domain=toy", f"samples={tmp / 'samples'}", f"out={tmp / 'figures.json'}", cwd=tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads((tmp / "figures.json").read_text())
    assert {"sliced_wasserstein", "sliced_wasserstein_real"} <= set(figures)
    assert "sliced_wasserstein" in run.stdout


def test_outputs_are_never_overwritten(trained):
    tmp, weights = trained
    out = tmp / "twice"
    first = diffsuite("sample", "domain=toy", f"checkpoint={weights}", "n=8", "steps=4", f"out={out}", cwd=tmp)
    assert first.returncode == 0, first.stderr[-2000:]
    before = (out / "samples.npz").read_bytes()
    second = diffsuite("sample", "domain=toy", f"checkpoint={weights}", "n=8", "steps=4", "seed=1", f"out={out}", cwd=tmp)
    assert second.returncode == 0, second.stderr[-2000:]  # the next free name, as in every domain (core.naming)
    assert (out / "samples.npz").read_bytes() == before
    assert (out / "samples_1.npz").is_file() and (out / "samples_1.png").is_file()


def test_bad_requests_get_clear_errors(trained, tmp_path):
    tmp, weights = trained
    r = diffsuite("sample", "domain=toy", "n=4", f"out={tmp_path / 'a'}", cwd=tmp)
    assert r.returncode != 0 and "ships no pretrained weights" in r.stderr
    r = diffsuite("sample", "domain=toy", f"checkpoint={weights}", "sampler=ddpm", cwd=tmp)
    assert r.returncode != 0 and "ddpm" in r.stderr
    r = diffsuite("sample", "domain=toy", f"checkpoint={weights}", "class=11", f"out={tmp_path / 'b'}", cwd=tmp)
    assert r.returncode == 2 and "class=11 is outside this model's 8 classes" in r.stderr
    r = diffsuite("sample", "domain=audio", f"checkpoint={weights}", f"out={tmp_path / 'c'}", cwd=tmp)
    assert r.returncode != 0 and "'toy' model, not a 'audio' one" in r.stderr
    r = diffsuite("frobnicate", cwd=tmp)
    assert r.returncode != 0 and "unknown command" in r.stderr


def test_help_lists_commands_and_groups(tmp_path):
    r = diffsuite("--help", cwd=tmp_path)
    assert all(c in r.stdout for c in ("train", "sample", "evaluate", "demo"))
    r = diffsuite("sample", "--help", cwd=tmp_path)
    assert "sampler: " in r.stdout and "domain: " in r.stdout and "unipc" in r.stdout

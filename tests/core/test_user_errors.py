"""Every bad input gets one line naming it and exit status 2, through the real entry point
(`python -m diffsuite.core.cli` in a subprocess, or `main([...])` as the console script calls it,
in-process, which is quicker); nothing is written or lost. A bug in the project keeps its traceback."""

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from diffsuite.core import cli
from diffsuite.core.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
AUDIO_CLASSIFIER = ROOT / "domains" / "audio" / "pretrained" / "audio_classifier.safetensors"


def diffsuite(*args, cwd, env=None):
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "diffsuite.core.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


class Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """`diffsuite ARGS` in-process, in tmp_path: main(argv) with its SystemExit caught."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def call(*args):
        capsys.readouterr()
        try:
            cli.main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code
        return Result(code, capsys.readouterr().err)

    return call


def one_line_error(r, *needles):
    """Exit status 2, no traceback, and a last stderr line `diffsuite: ...` holding every needle."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.splitlines()[-1]
    assert last.startswith("diffsuite: "), r.stderr[-2000:]
    for n in needles:
        assert n in last, (n, last)
    return last


def nothing_written(cwd, *outs):
    assert not (Path(cwd) / "runs").exists(), list(Path(cwd).rglob("*"))
    for o in outs:
        assert not Path(o).exists(), o


def test_unknown_key_group_option_and_command(tmp_path):
    r = diffsuite("sample", "domain=toy", "stpes=3", cwd=tmp_path)
    one_line_error(r, "unknown option 'stpes'", "steps")  # the keys that exist are listed
    r = diffsuite("sample", "domain=toy", "domain.prest=S", cwd=tmp_path)
    one_line_error(r, "unknown option 'domain.prest'", "preset")
    r = diffsuite("sample", "domain=audoi", cwd=tmp_path)
    one_line_error(r, "domain=audoi: no such domain; expected one of audio, molecules, toy, video")
    r = diffsuite("sampel", cwd=tmp_path)
    one_line_error(r, "unknown command 'sampel'")
    nothing_written(tmp_path)


def test_guidance_values(tmp_path, run):
    out = tmp_path / "out"
    r = run("sample", "domain=audio", "guidance=-3", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "guidance=-3 must be >= 0")
    # the shipped molecules model has no condition: guidance would double the cost and change nothing
    r = run("sample", "domain=molecules", "guidance=3", "num_atoms=9", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "guidance=3 changes nothing", "guidance=1")
    # a conditional model asked for no class: the same
    r = run("sample", "domain=audio", "guidance=3", "class=-1", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "guidance=3 changes nothing")
    nothing_written(tmp_path, out)


def test_audio_seconds_inf_and_classifier_as_checkpoint(tmp_path, run):
    out = tmp_path / "out"
    r = run("sample", "domain=audio", "seconds=inf", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "seconds=inf must be a finite number")
    before = AUDIO_CLASSIFIER.read_bytes()
    r = run("sample", "domain=audio", f"checkpoint={AUDIO_CLASSIFIER}", "n=1", "steps=1", f"out={out}")
    one_line_error(r, str(AUDIO_CLASSIFIER), "an audio classifier", "not denoiser weights", "checkpoint= expects")
    assert AUDIO_CLASSIFIER.read_bytes() == before
    nothing_written(tmp_path, out)


def test_video_frames_zero_and_given_start(tmp_path, run):
    out = tmp_path / "out"
    r = run("sample", "domain=video", "frames=0", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "frames=0 must be >= 1")
    clip = tmp_path / "clip.mp4"
    frames = np.stack([np.roll(np.eye(32, dtype=np.uint8) * 255, t, axis=1) for t in range(20)])
    iio.imwrite(clip, np.repeat(frames[..., None], 3, -1), plugin="pyav", codec="libx264", fps=8,
                out_pixel_format="yuv420p")
    before = clip.read_bytes()
    # given_start is a key of configs/domain/video.yaml now (it was dropped), and it is checked
    r = run("sample", "domain=video", "given=4", f"given_from={clip}", "given_start=19", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "clip.mp4: has 20 frames", "from frame 19 needs")
    r = run("sample", "domain=video", "given_start=2", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "given_start=2 needs given=")
    assert clip.read_bytes() == before
    nothing_written(tmp_path, out)


def test_molecules_bad_fragment_files(tmp_path, run):
    out = tmp_path / "out"
    empty = tmp_path / "frag.sdf"
    empty.write_text("")
    r = run("sample", "domain=molecules", f"fragment={empty}", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "frag.sdf: the SDF file is empty")
    r = run("sample", "domain=molecules", f"fragment={tmp_path / 'nope.sdf'}", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "no SDF file at", "nope.sdf")
    binary = tmp_path / "frag.xyz"
    binary.write_bytes(bytes(range(256)))
    r = run("sample", "domain=molecules", f"fragment={binary}", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "frag.xyz: not a text XYZ file")
    assert empty.read_text() == "" and binary.read_bytes() == bytes(range(256))
    nothing_written(tmp_path, out)


def test_evaluate_missing_samples_and_existing_figures(tmp_path, run):
    r = run("evaluate", "domain=toy")
    one_line_error(r, "samples has no value", "samples=")
    figures = tmp_path / "figures.json"
    figures.write_text("{}\n")
    r = run("evaluate", "domain=toy", f"samples={tmp_path / 'none'}", f"out={figures}")
    one_line_error(r, "none")
    assert figures.read_text() == "{}\n"
    nothing_written(tmp_path)


def test_full_error_shows_the_traceback_and_still_exits_2(tmp_path):
    r = diffsuite("sample", "domain=audio", "guidance=-3", "n=1", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert r.returncode == 2 and "Traceback" in r.stderr and "UserError" in r.stderr
    assert r.stderr.splitlines()[-1] == "diffsuite: guidance=-3 must be >= 0"


def test_a_bug_keeps_its_traceback_in_process(tmp_path, monkeypatch, capsys):
    """main([...]) as the console script calls it: a user error is SystemExit(2) and one line; an
    exception that is not a user error is a bug, and hydra prints its traceback (exit 1)."""
    monkeypatch.chdir(tmp_path)

    def user_error(cfg):
        raise UserError("evaluate_options=bad is not an option")

    def bug(cfg):
        return 1 / 0

    monkeypatch.setitem(cli.RUNNERS, "evaluate", user_error)
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "domain=toy", "samples=x"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "diffsuite: evaluate_options=bad is not an option"
    assert not (tmp_path / "runs").exists()  # hydra's run folder, made for this run, is gone
    monkeypatch.setitem(cli.RUNNERS, "evaluate", bug)
    with pytest.raises(SystemExit) as e:
        cli.main(["evaluate", "domain=toy", "samples=x"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "Traceback" in err and "diffsuite: " not in err


def test_bad_device_is_one_line(tmp_path, run):
    out = tmp_path / "out"
    r = run("sample", "domain=audio", "device=tpu", "n=1", "steps=1", f"out={out}")
    one_line_error(r, "device='tpu' is not a device; expected auto, cpu, cuda")
    nothing_written(tmp_path, out)
    # the removed run folder's log file is closed too: a handler left on it broke every later log record
    import logging

    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    left = [h.baseFilename for lg in loggers for h in lg.handlers
            if isinstance(h, logging.FileHandler) and str(tmp_path) in h.baseFilename]
    assert not left, left


def test_user_error_from_a_dataloader_worker_is_still_one_line():
    import torch.utils.data as tud

    from diffsuite.core.errors import user_error_in, user_message

    class Bad(tud.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise UserError("clip.wav: 128 samples is shorter than one frame")

    with pytest.raises(UserError) as e:
        list(tud.DataLoader(Bad(), num_workers=1))
    assert user_message(user_error_in(e.value)) == "clip.wav: 128 samples is shorter than one frame"

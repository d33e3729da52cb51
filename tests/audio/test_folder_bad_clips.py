"""Bad clips in a folder of good ones: each is named and skipped, and the load goes on."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsuite.core.errors import UserError
from diffsuite.domains.audio import AudioDomain
from diffsuite.domains.audio.features import FeatureSpec
from diffsuite.domains.audio.folder import clip_features, load_folder_features, min_samples, scan_folder


def _tone(n, sr=8000, f=440.0):
    return (0.4 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "clips"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(3):
        sf.write(root / "a" / f"good_{i}.wav", _tone(4000, f=300 + 50 * i), 8000)
        sf.write(root / "b" / f"good_{i}.wav", _tone(4000, f=1200 + 50 * i), 8000)
    sf.write(root / "a" / "one_hop.wav", _tone(128), 8000)  # exactly one 128-sample hop at 8 kHz
    sf.write(root / "b" / "one_hop_16k.wav", _tone(256, sr=16000), 16000)  # one hop after resampling
    (root / "b" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio")
    return root


def test_one_hop_clip_is_refused_by_name():
    spec = FeatureSpec()
    assert min_samples(spec) == 129  # reflect padding of the 256-point STFT needs more than 128 samples
    d = AudioDomain(pretrained=None, classifier=None)
    with pytest.raises(UserError, match=r"x\.wav: 128 samples at 8000 Hz is shorter than one frame.*at least 129"):
        clip_features(torch.from_numpy(_tone(128)), d._logmel, "x.wav")
    assert clip_features(torch.from_numpy(_tone(129)), d._logmel, "ok.wav").shape == (64, 1)


def test_folder_load_skips_bad_clips_by_name_and_goes_on(folder, tmp_path, caplog):
    entries = [(p, 0 if y == "a" else 1) for p, y in scan_folder(folder)]
    before = {p: p.read_bytes() for p, _ in entries}
    with caplog.at_level(logging.WARNING):
        clips = load_folder_features(entries, FeatureSpec(), tmp_path / "cache")
    assert sorted(n.split("/")[-1] for n in clips.names) == ["good_0.wav", "good_0.wav", "good_1.wav", "good_1.wav",
                                                             "good_2.wav", "good_2.wav"]
    for bad in ("one_hop.wav", "one_hop_16k.wav", "corrupt.wav"):
        assert bad in caplog.text
    assert "3 of 9 audio files were unreadable" in caplog.text
    assert all(p.read_bytes() == b for p, b in before.items())  # the user's files are untouched


def test_a_folder_of_only_bad_clips_is_one_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    sf.write(root / "one_hop.wav", _tone(128), 8000)
    with pytest.raises(UserError, match="none of the 1 audio files could be read"):
        load_folder_features([(root / "one_hop.wav", 0)], FeatureSpec(), tmp_path / "cache")


def test_label_csv_bad_row_names_the_line(folder, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na/good_0.wav,x\nb/good_1.wav\n")
    with pytest.raises(UserError, match=r"labels\.csv, line 3: expected 'path,label'"):
        scan_folder(folder, labels="csv", csv_path=csv)

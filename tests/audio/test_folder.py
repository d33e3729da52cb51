import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsuite.domains.audio import AudioDomain
from diffsuite.domains.audio.features import FeatureSpec
from diffsuite.domains.audio.folder import load_folder_features, read_audio, scan_folder


def _tone(freq, seconds, sr, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.fixture
def clip_folder(tmp_path):
    root = tmp_path / "clips"
    (root / "low").mkdir(parents=True)
    (root / "high").mkdir()
    for i in range(6):
        sf.write(root / "low" / f"low_{i}.wav", _tone(200 + 5 * i, 0.6, 16000), 16000)
        sf.write(root / "high" / f"high_{i}.flac", _tone(1500 + 5 * i, 0.5, 22050, channels=2), 22050)
    sf.write(root / "high" / "high_ogg.ogg", _tone(1600, 0.5, 8000), 8000, format="OGG", subtype="VORBIS")
    (root / "low" / "broken.wav").write_bytes(b"RIFF\x00\x01garbage that is no wave file")
    sf.write(root / "low" / "empty.wav", np.zeros(0), 8000)
    return root


def test_read_audio_resamples_and_mixes_to_mono(tmp_path):
    p = tmp_path / "stereo.wav"
    sf.write(p, _tone(440, 1.0, 16000, channels=2), 16000)
    w = read_audio(p, 8000)
    assert w.ndim == 1 and abs(len(w) - 8000) <= 1
    peak_hz = np.fft.rfftfreq(len(w), 1 / 8000)[np.abs(np.fft.rfft(w.numpy())).argmax()]
    assert abs(peak_hz - 440) < 2


def test_bad_files_named_in_errors(clip_folder, tmp_path):
    with pytest.raises(ValueError, match="broken.wav"):
        read_audio(clip_folder / "low" / "broken.wav", 8000)
    with pytest.raises(ValueError, match="empty.wav.*no samples"):
        read_audio(clip_folder / "low" / "empty.wav", 8000)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(50), 8000)
    d = AudioDomain(pretrained=None, classifier=None)
    with pytest.raises(ValueError, match="short.wav.*shorter than one frame"):
        d.clip_features(short)


def test_labels_from_subfolders_regex_and_csv(clip_folder, tmp_path):
    sub = scan_folder(clip_folder, labels="subfolder")
    assert {y for _, y in sub} == {"low", "high"} and len(sub) == 15
    rx = scan_folder(clip_folder, labels="regex", pattern=r"^(low|high)_\d")
    assert {y for _, y in rx} == {"low", "high"} and len(rx) == 12  # high_ogg, broken, empty do not match
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\nlow/low_0.wav,a\nhigh/high_1.flac,b\nmissing.wav,c\n")
    rows = scan_folder(clip_folder, labels="csv", csv_path=csv)
    assert [(p.name, y) for p, y in rows] == [("low_0.wav", "a"), ("high_1.flac", "b")]


def test_corrupt_files_skipped_and_features_cached(clip_folder, tmp_path, caplog):
    spec = FeatureSpec()
    entries = [(p, 0 if y == "low" else 1) for p, y in scan_folder(clip_folder)]
    with caplog.at_level(logging.WARNING):
        clips = load_folder_features(entries, spec, tmp_path / "cache")
    assert len(clips.features) == 13  # 15 files, broken and empty skipped
    assert "broken.wav" in caplog.text and "empty.wav" in caplog.text
    assert all(f.shape[0] == spec.n_mels for f in clips.features)
    cached = list((tmp_path / "cache").glob("audio_features_*.pt"))
    assert len(cached) == 1
    again = load_folder_features(entries, spec, tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(clips.features, again.features))


def test_folder_domain_pads_short_clips_with_silence_that_is_learned(clip_folder, tmp_path):
    d = AudioDomain(data=str(clip_folder), preset="XS", seconds=0.55, test_fraction=0.0, val_fraction=0.0,
                    cache_dir=str(tmp_path / "cache"), pretrained=None, classifier=None)
    assert d.classes == ["high", "low"]
    ds = d.dataset("train")
    batch = d.collate([ds[i] for i in range(len(ds))])
    T = d.frames
    assert T % d._stride() == 0 and batch.x.shape[1:] == (1, 64, T)
    # the 0.5 s clips end before the 0.55 s window: the rest is the silence level, and it is a training
    # target (no loss mask), so that a model learns where a clip ends
    padded = (batch.x[:, 0, :, -1] == d._logmel.silence).all(-1)
    assert padded.any()
    assert batch.mask is None
    with pytest.raises(ValueError, match="'val' split is empty"):
        d.dataset("val")

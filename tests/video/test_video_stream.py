"""Video files are decoded as a stream: bounded memory, frames rescaled by their bit depth, and a
clip read from a file stops decoding at its last frame."""

import tracemalloc

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from diffsuite.core.errors import UserError
from diffsuite.domains.video import video_files
from diffsuite.domains.video.video_files import VideoFolder, clip_from_file, read_clip, read_video


def _gradient_frames(n, h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(x + 4 * t) % 256, (y + 2 * t) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
                     for t in range(n)])


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "long.mp4"
    iio.imwrite(path, _gradient_frames(64, 240, 320), plugin="pyav", codec="libx264", fps=24, out_pixel_format="yuv420p")
    return path


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_long_file_is_decoded_in_bounded_memory(long_video):
    whole_file = 64 * 240 * 320 * 3  # bytes of every frame at full size as uint8 (float32: 4x)
    arr, peak_all = _peak_bytes(lambda: read_clip(long_video, (32, 32), 1))
    assert arr.shape == (1, 64, 32, 32) and arr.dtype == np.uint8
    _, peak_few = _peak_bytes(lambda: read_clip(long_video, (32, 32), 1, frames=12))
    assert peak_all < whole_file / 2, f"peak {peak_all / 1e6:.1f} MB for a {whole_file / 1e6:.0f} MB file"
    # memory does not grow with the length: 64 frames need about what 12 need (small frames aside)
    assert peak_all < peak_few + 64 * 32 * 32 * 4 + 500_000, (peak_all, peak_few)


def test_streamed_frames_match_resizing_the_whole_file(long_video):
    whole = video_files.resize_crop(read_video(long_video)[:10], (24, 32), 3)  # (3, 10, 24, 32)
    streamed = read_clip(long_video, (24, 32), 3, frames=10)
    assert streamed.shape == whole.shape
    assert np.abs(streamed.astype(int) - whole.astype(int)).max() <= 1


def test_clip_from_file_stops_decoding_after_its_frames(long_video, monkeypatch):
    decoded = []
    real = video_files.to_unit_rgb

    def counting(frame, where):
        decoded.append(where)
        return real(frame, where)

    monkeypatch.setattr(video_files, "to_unit_rgb", counting)
    clip = clip_from_file(long_video, frames=8, size=(16, 16), channels=1, start=5)
    assert clip.shape == (1, 8, 16, 16)
    assert len(decoded) == 13  # frames 0..12: the 5 skipped and the 8 kept, none after
    with pytest.raises(UserError, match=r"long\.mp4: has 64 frames; a clip of 8 from frame 60 needs 68"):
        clip_from_file(long_video, frames=8, size=(16, 16), channels=1, start=60)


def test_16_bit_png_frames_are_rescaled_not_clipped(tmp_path):
    folder = tmp_path / "deep"
    folder.mkdir()
    levels = [0, 16384, 32768, 65535]  # 0, 1/4, 1/2, full brightness
    for t, v in enumerate(levels):
        Image.fromarray(np.full((8, 8), v, dtype=np.uint16)).save(folder / f"{t}.png")
    assert iio.imread(folder / "1.png").dtype == np.uint16  # a real 16-bit PNG
    frames = read_video(folder)
    assert frames.dtype == np.uint8
    np.testing.assert_allclose(frames[:, 0, 0, 0], [0, 64, 128, 255], atol=1)  # not 99.6% white
    clip = read_clip(folder, (8, 8), 1)
    np.testing.assert_allclose(clip[0, :, 4, 4], [0, 64, 128, 255], atol=1)


def test_a_corrupt_video_in_a_folder_is_named_and_skipped(tmp_path, caplog, long_video):
    root = tmp_path / "videos" / "cls"
    root.mkdir(parents=True)
    iio.imwrite(root / "good.mp4", _gradient_frames(12, 32, 32), plugin="pyav", codec="libx264", fps=8,
                out_pixel_format="yuv420p")
    (root / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    ds = VideoFolder(root=tmp_path / "videos", frames=8, stride=4, size=(16, 16), channels=1, split="all",
                     cache_dir=tmp_path / "cache")
    with caplog.at_level("WARNING"):
        assert len(ds) == 2  # good.mp4: starts 0 and 4
    assert "bad.mp4" in caplog.text
    assert (root / "bad.mp4").read_bytes() == b"\x00\x00\x00\x18ftypmp42 truncated"

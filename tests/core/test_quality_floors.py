"""Quality floors for shipped checkpoints: a small seeded batch, few sampler steps, a cheap
figure, and a floor that the shipped weights clear and a broken model (all weights zero) does not.

Floors sit well below the figures measured when they were set (see FLOORS), so a better checkpoint
never trips them, and above what the zeroed model reaches, which the test measures each time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffsuite.core.generate import generate
from diffsuite.core.training.distributed import derive_seed
from diffsuite.core.training.export import build_from_export

ROOT = Path(__file__).resolve().parents[2]
SEED = 0


def _audio(domain, D, *, seconds: float = 0.512, sampler: str = "heun", steps: int = 6, **kw) -> float:
    """Accuracy of the domain's own classifier on one class-conditioned clip per class."""
    from diffsuite.domains.audio.classifier import load_classifier

    n = domain.num_classes
    options = {"seconds": seconds}
    labels = domain.sampling_batch(n, generator=torch.Generator().manual_seed(derive_seed(SEED)), **options).cond["class"]
    _, x = generate(domain, D, n, sampler=sampler, steps=steps, seed=SEED, **options, **kw)
    net, _ = load_classifier(domain.classifier_path, num_classes=n, n_mels=domain.spec.n_mels,
                             feature_spec=domain.spec.as_dict())
    with torch.no_grad():
        pred = net.head(net.embedding(x)).argmax(-1)
    return (pred == labels).float().mean().item()


def _audio_speech(domain, D) -> float:
    return _audio(domain, D, seconds=domain.seconds, sampler="dpmpp_2m", steps=10)


def _audio_consistency(domain, D) -> float:  # the few-step checkpoint at its own sampler, 2 evaluations
    from diffsuite.core.consistency import consistency_sigmas

    return _audio(domain, D, seconds=domain.seconds, sampler="consistency", steps=2, grid=consistency_sigmas)


def _video(domain, D) -> float:
    """PSNR (dB) of the point prediction (one evaluation from pure noise: the posterior mean) of the
    last 4 frames of 16 held-out clips from their first 4. Black frames score about 14 dB and
    copying the last given frame about 13.6 dB, so a floor above both needs a model that tracks
    the digit; a zeroed network predicts mid-grey (about 6 dB)."""
    from diffsuite.domains.video.evaluation import prediction_figures

    samples, _ = generate(domain, D, 16, sampler="euler", steps=1, seed=SEED, given=4)
    return prediction_figures(samples)["prediction_psnr"]


def _molecules(domain, D) -> float:
    """MiDi's atom stability (each atom's valence, from the model's own bonds and charges where it
    makes them, else from distances, is one the lenient table allows) of 32 sampled molecules."""
    from diffsuite.domains.molecules.metrics import evaluate_molecules

    mols, _ = generate(domain, D, 32, sampler="heun", steps=12, seed=SEED)
    return evaluate_molecules(mols)["midi_atom_stability"]


# checkpoint: (scorer, floor, the figure measured when the floor was set, 2-core CPU)
FLOORS = {
    "domains/audio/pretrained/audio_default.safetensors": (_audio, 0.4, 0.8),  # zeroed: 0.0
    "domains/audio/pretrained/audio_fsdd.safetensors": (_audio_speech, 0.6, 0.8),  # zeroed: 0.0
    "domains/audio/pretrained/audio_fsdd_ect.safetensors": (_audio_consistency, 0.6, 1.0),  # zeroed: 0.1
    "domains/molecules/pretrained/qm9_egnn_s.safetensors": (_molecules, 0.4, 0.598),  # zeroed: 0.223
    "domains/molecules/pretrained/qm9_joint_s.safetensors": (_molecules, 0.7, 0.929),  # zeroed: 0.0
    "domains/video/pretrained/video_moving_digits.safetensors": (_video, 15.0, 16.56),  # zeroed: 6.3 dB; black frames 14.0
    "domains/video/pretrained/video_moving_digits_ect.safetensors": (_video, 12.0, 14.97),  # zeroed: 6.3 dB
}


def _zeroed(D):
    with torch.no_grad():
        for p in D.parameters():
            p.zero_()
    return D


@pytest.mark.parametrize("path", sorted(FLOORS), ids=[Path(p).stem for p in sorted(FLOORS)])
def test_shipped_checkpoint_clears_its_floor_and_a_broken_one_does_not(path):
    scorer, floor, _ = FLOORS[path]
    torch.manual_seed(0)
    domain, D, _ = build_from_export(ROOT / path)
    shipped = scorer(domain, D)
    broken = scorer(domain, _zeroed(D))
    print(f"{Path(path).name}: shipped {shipped:.3f}, zeroed {broken:.3f}, floor {floor}")
    assert shipped >= floor, f"{path}: figure {shipped:.3f} is under its floor {floor}"
    assert broken < floor, f"{path}: a zeroed model reaches {broken:.3f}, the floor {floor} separates nothing"


def test_every_shipped_denoiser_has_a_floor():
    import json

    from safetensors import safe_open

    from diffsuite.core.training.export import weights_kind

    shipped = []
    for path in sorted((ROOT / "domains").glob("*/pretrained/*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if weights_kind(meta) == "denoiser":
            shipped.append(str(path.relative_to(ROOT)))
    assert shipped and json.dumps(sorted(set(shipped) - set(FLOORS))) == "[]", "shipped denoisers without a floor"

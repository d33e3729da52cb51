import numpy as np
import pytest
import torch

from diffsuite.domains.audio.features import FeatureSpec, LogMel
from diffsuite.domains.audio.synthetic import SYNTH_CLASSES, synth_clip, synth_split


def test_clips_are_deterministic_and_differ_by_index():
    a = synth_clip(3, "train", 7)
    assert np.array_equal(a, synth_clip(3, "train", 7))
    assert not np.array_equal(a, synth_clip(3, "train", 8))
    assert not np.array_equal(a, synth_clip(3, "test", 7))
    assert a.dtype == np.float32 and np.abs(a).max() <= 1


def test_at_least_eight_classes_told_apart_by_nearest_centroid():
    """Classes differ enough that a nearest-centroid rule on log-mel separates held-out clips."""
    assert len(SYNTH_CLASSES) >= 8
    logmel = LogMel(FeatureSpec())
    xtr, ytr = synth_split("train", 6)
    xte, yte = synth_split("test", 3)
    ftr = logmel(torch.from_numpy(xtr)).mean(-1)  # (N, M): average spectrum per clip
    fte = logmel(torch.from_numpy(xte)).mean(-1)
    centroids = torch.stack([ftr[torch.from_numpy(ytr == k)].mean(0) for k in range(len(SYNTH_CLASSES))])
    pred = torch.cdist(fte, centroids).argmin(1).numpy()
    assert (pred == yte).mean() >= 0.8


def test_unknown_class_or_split_refused():
    with pytest.raises(ValueError, match="class 99"):
        synth_clip(99, "train", 0)
    with pytest.raises(ValueError, match="split"):
        synth_clip(0, "holdout", 0)

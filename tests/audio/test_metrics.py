import numpy as np
import torch

from diffsuite.domains.audio.metrics import frechet_distance, inception_score, mfcc_stats


def test_frechet_distance_zero_for_same_set_and_grows_with_shift():
    g = np.random.default_rng(0)
    a = g.standard_normal((500, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    near = frechet_distance(a, g.standard_normal((500, 8)))
    far = frechet_distance(a, g.standard_normal((500, 8)) + 2.0)
    assert near < 0.5 and abs(far - 32) < 4  # ||mu||^2 = 8 * 2^2


def test_inception_score_bounds():
    confident = torch.eye(5).repeat(4, 1) * 50  # every class, each predicted with certainty
    assert abs(inception_score(confident) - 5) < 1e-3
    assert abs(inception_score(torch.zeros(20, 5)) - 1) < 1e-6  # uninformative predictions


def test_mfcc_stats_shape_and_constant_clip():
    x = torch.randn(3, 64, 40)
    s = mfcc_stats(x, n_mfcc=13)
    assert s.shape == (3, 26)
    flat = mfcc_stats(torch.ones(1, 64, 40))
    assert torch.allclose(flat[0, 20:], torch.zeros(20), atol=1e-5)  # no change over time: zero std


def test_balanced_subset_takes_each_class_in_turn():
    from diffsuite.domains.audio.evaluation import balanced_subset

    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])  # grouped, as sorted file names are
    pick = balanced_subset(labels, 6)
    assert labels[pick].tolist() == [0, 1, 2, 0, 1, 2]
    assert len(set(balanced_subset(labels, 9).tolist())) == 9


def test_matching_subset_follows_the_sample_labels():
    from diffsuite.domains.audio.evaluation import matching_subset

    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    pick = matching_subset(labels, [1, 1, 0])
    assert labels[pick].tolist() == [1, 1, 0] and len(set(pick.tolist())) == 3
    assert matching_subset(labels, [2, 2]) is None  # only one held-out clip of class 2

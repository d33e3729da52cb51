"""Batches grouped by item size (core/training/data.py group_by_size): every example once an epoch,
similar sizes within a global batch, batches in random order, exact resume on any world size,
and the trainer's option checked by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from diffsuite.core.errors import UserError
from diffsuite.core.training.data import POOL_GROUPS, DataPosition, DataStream, ResumableDistributedSampler, group_by_size
from diffsuite.core.training.distributed import DistInfo
from diffsuite.core.training.options import TrainerOptions
from diffsuite.core.training.trainer import _size_group


class Sized(Dataset):
    def __init__(self, sizes):
        self.sizes = np.asarray(sizes)

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, i):
        return int(i)


def _info(rank=0, world=1):
    return DistInfo(rank=rank, world_size=world, local_rank=0, device=torch.device("cpu"), owns_group=False)


def _spread(order, sizes, group):
    return np.mean([np.ptp(sizes[order[k:k + group]]) for k in range(0, len(order) - group + 1, group)])


def test_grouped_order_is_a_permutation_with_alike_sizes_in_each_batch_in_random_order():
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 30, size=5000)
    perm = torch.randperm(5000, generator=torch.Generator().manual_seed(1)).tolist()
    order = group_by_size(perm, sizes, 32, torch.Generator().manual_seed(2))
    assert sorted(order) == list(range(5000))
    assert _spread(order, sizes, 32) <= 1.0 < _spread(perm, sizes, 32) / 10  # random batches span ~20 atoms
    means = [sizes[order[k:k + 32]].mean() for k in range(0, 32 * 100, 32)]
    assert not (np.all(np.diff(means) >= 0) or np.all(np.diff(means) <= 0))  # not a curriculum by size
    assert np.corrcoef(np.arange(100), means)[0, 1] ** 2 < 0.2


def test_group_by_size_off_is_the_plain_permutation_and_on_draws_from_seed_and_epoch():
    ds = Sized(np.arange(300) % 17)
    plain = ResumableDistributedSampler(ds, num_replicas=1, rank=0, seed=7, micro_batch=1)
    grouped = ResumableDistributedSampler(ds, num_replicas=1, rank=0, seed=7, micro_batch=1, sizes=ds.sizes, group=8)
    assert plain.permutation() != grouped.permutation() and sorted(grouped.permutation()) == list(range(300))
    again = ResumableDistributedSampler(ds, num_replicas=1, rank=0, seed=7, micro_batch=1, sizes=ds.sizes, group=8)
    assert again.permutation() == grouped.permutation()
    again.set_epoch(1)
    assert again.permutation() != grouped.permutation()


@pytest.mark.parametrize("world,micro,new_world,new_micro", [(1, 8, 2, 4), (2, 4, 1, 8)])
def test_grouped_stream_resumes_exactly_on_another_world_size(world, micro, new_world, new_micro):
    sizes = np.random.default_rng(3).integers(3, 30, size=8 * POOL_GROUPS + 40)
    ds, group = Sized(sizes), 8
    from diffsuite.core.domain import Batch

    def make(rank, w, m, pos=None):
        return DataStream(ds, lambda it: Batch(x=torch.tensor(it)), dist=_info(rank, w), micro_batch=m, seed=5,
                          position=pos, group=group)

    def steps(streams, k):  # k global steps: what all ranks read
        return [sorted(int(i) for s in streams for i in next(s).x) for _ in range(k)]

    first = [make(r, world, micro) for r in range(world)]
    head = steps(first, 10)
    for b in head:
        assert np.ptp(sizes[b]) <= 2  # each global batch: alike sizes
    pos = first[0].position()
    assert pos.group == group and pos.consumed == 10 * group
    resumed = [make(r, new_world, new_micro, DataPosition(**vars(pos))) for r in range(new_world)]
    uninterrupted = [make(r, world, micro) for r in range(world)]
    assert steps(uninterrupted, 25)[10:] == steps(resumed, 15)


def test_a_dataset_without_sizes_or_a_bad_group_is_refused_by_name():
    class Plain(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            return i

    with pytest.raises(ValueError, match="group_by_size needs a dataset with sizes"):
        DataStream(Plain(), lambda it: it, dist=_info(), micro_batch=8, seed=0, group=8)
    with pytest.raises(ValueError, match="multiple of 8 x 1"):
        DataStream(Sized(np.arange(64)), lambda it: it, dist=_info(), micro_batch=8, seed=0, group=12)
    bad = Plain()
    bad.sizes = np.arange(10)  # not one per item
    with pytest.raises(ValueError, match=r"Plain.sizes must hold one finite number per item \(64\)"):
        DataStream(bad, lambda it: it, dist=_info(), micro_batch=8, seed=0, group=8)
    opts = TrainerOptions.from_config({"group_by_size": True, "batch_size": 8})
    with pytest.raises(UserError, match="trainer.group_by_size=true, but the training set \\(Plain\\) has no"):
        _size_group(Plain(), opts)
    assert _size_group(Plain(), TrainerOptions.from_config({"batch_size": 8})) == 0  # auto: nothing to group
    assert _size_group(Sized(np.arange(64)), TrainerOptions.from_config({"batch_size": 8})) == 8
    assert _size_group(Sized(np.arange(64)), TrainerOptions.from_config({"batch_size": 8, "group_by_size": False})) == 0
    with pytest.raises(UserError, match="trainer.group_by_size must be auto, true or false, got 'yes'"):
        TrainerOptions.from_config({"group_by_size": "yes"})

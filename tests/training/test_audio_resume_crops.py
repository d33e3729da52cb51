"""Audio's random crops follow (epoch, clip index): a data stream resumed at a position reads
exactly the batches an uninterrupted one reads there, whatever the global random state."""

from __future__ import annotations

import torch

from diffsuite.core.domain import Batch
from diffsuite.core.training.data import DataStream
from diffsuite.core.training.distributed import DistInfo
from diffsuite.domains.audio.domain import ClipDataset

ALONE = DistInfo(0, 1, 0, torch.device("cpu"), False)


def _collate(items):
    return Batch(torch.stack([it["x"] for it in items]))


def test_resumed_audio_stream_reads_the_same_crops():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(4, 20 + 3 * i, generator=g) for i in range(40)]  # clips longer than the crop
    ds = ClipDataset(feats, [0] * 40, frames=8, silence=-1.0, random_crop=True)
    steps = 40 // 4 + 4  # over an epoch boundary
    straight = DataStream(ds, _collate, dist=ALONE, micro_batch=4, seed=3)
    xs = []
    for k in range(steps):
        torch.manual_seed(1000 + k)  # the trainer reseeds the global generator every step
        xs.append(next(straight).x)
    for at in (3, steps - 3):
        probe = DataStream(ds, _collate, dist=ALONE, micro_batch=4, seed=3)
        for _ in range(at):
            next(probe)
        resumed = DataStream(ds, _collate, dist=ALONE, micro_batch=4, seed=3, position=probe.position())
        torch.manual_seed(12345)  # another global state than the straight run had here
        for k in range(at, steps):
            assert torch.equal(next(resumed).x, xs[k]), f"micro-batch {k} differs after a resume at {at}"


def test_crops_are_random_across_epochs_and_clips():
    feats = [torch.arange(40.0).expand(2, 40) for _ in range(6)]
    ds = ClipDataset(feats, [0] * 6, frames=8, silence=-1.0, random_crop=True)
    starts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        starts |= {int(ds[i]["x"][0, 0, 0]) for i in range(6)}
    assert len(starts) > 8, starts

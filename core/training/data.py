"""Data for the trainer: a resumable distributed sampler, sharding of streaming datasets, and a
stream of model-space Batches that knows its position (epoch, examples consumed) so a
checkpoint can resume exactly where the run stopped, on any number of processes.

Map-style datasets: each epoch is one permutation of the dataset drawn from (seed, epoch).
Rank r takes every world_size-th index of what is left (as DistributedSampler does), so after
k micro-batches on every rank the examples consumed are exactly the first k * micro * world of
the permutation, whatever the world size; a resume skips that prefix and shards the rest over
the new world size.

Grouping by size: a map-style dataset whose items differ in cost (molecules of 3 to 29 atoms,
padded to the largest of their batch) may say so with a ``sizes`` attribute, one number per item.
The epoch's permutation is then reordered so that each run of ``group`` consecutive examples (one
global batch) holds items of similar size: pools of ``POOL_GROUPS`` groups are sorted by size, cut
into groups, and the groups of the whole epoch shuffled (the "sortish" batching of fastai and of
SemlaFlow's size buckets). Each batch is still a random draw within its size range, every example
is seen once an epoch, and less padding is computed. The order depends only on (seed, epoch,
group), so resuming on another world size stays exact.

Streaming (IterableDataset): items are dealt round-robin over (rank, worker) unless the dataset
says it shards itself (``shards_itself = True``); the position is the number of micro-batches
this rank consumed in the epoch, replayed by skipping on resume (exact on the same world size).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, get_worker_info

from ..domain import Batch
from .distributed import DistInfo, all_reduce_sum, derive_seed

log = logging.getLogger("diffsuite.train")

POOL_GROUPS = 64  # groups sorted together: larger pools, more alike sizes in a batch


def dataset_sizes(dataset: Dataset) -> np.ndarray | None:
    """The dataset's per-item sizes (its ``sizes`` attribute), checked; None when it has none."""
    sizes = getattr(dataset, "sizes", None)
    if sizes is None or isinstance(dataset, IterableDataset):
        return None
    sizes = np.asarray(sizes)
    if sizes.shape != (len(dataset),) or not np.issubdtype(sizes.dtype, np.number) or not np.isfinite(sizes).all():
        raise ValueError(f"{type(dataset).__name__}.sizes must hold one finite number per item ({len(dataset)}), "
                         f"got shape {sizes.shape} of {sizes.dtype}")
    return sizes


def group_by_size(perm: Sequence[int], sizes: np.ndarray, group: int, generator: torch.Generator) -> list[int]:
    """`perm` reordered so that every run of `group` consecutive entries (from the start) holds
    items of similar size; a permutation of the same indices. Pools of POOL_GROUPS groups are
    sorted by size (stably: equal sizes keep their random order), cut into groups, and the groups
    shuffled; a last, shorter group stays at the end (drop_last drops it)."""
    perm = np.asarray(perm, dtype=np.int64)
    pool = group * POOL_GROUPS
    parts = [chunk[np.argsort(sizes[chunk], kind="stable")] for chunk in np.split(perm, range(pool, len(perm), pool))]
    ordered = np.concatenate(parts) if parts else perm
    whole = len(ordered) // group
    groups = ordered[: whole * group].reshape(whole, group)
    order = torch.randperm(whole, generator=generator).numpy()
    return np.concatenate([groups[order].reshape(-1), ordered[whole * group:]]).tolist()


class ResumableDistributedSampler(DistributedSampler):
    """DistributedSampler that starts an epoch after `start` examples of its permutation and
    yields only whole micro-batches, the same number on every rank."""

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, micro_batch: int,
                 sizes: np.ndarray | None = None, group: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.micro_batch = micro_batch
        self.sizes, self.group = sizes, group  # group > 0: batches of similar sizes (group_by_size)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def permutation(self) -> list[int]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, 0xDA7A, self.epoch))
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        return group_by_size(perm, self.sizes, self.group, g) if self.group else perm

    def per_rank(self) -> int:
        left = len(self.dataset) - self.start
        return (left // (self.num_replicas * self.micro_batch)) * self.micro_batch

    def __iter__(self) -> Iterator[int]:
        rest = self.permutation()[self.start:]
        return iter(rest[self.rank::self.num_replicas][: self.per_rank()])

    def __len__(self) -> int:
        return self.per_rank()


class ShardedIterable(IterableDataset):
    """Deals a streaming dataset's items round-robin over (rank, worker)."""

    def __init__(self, base: IterableDataset, *, rank: int, world_size: int):
        self.base, self.rank, self.world_size = base, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self):
        info = get_worker_info()
        workers, wid = (1, 0) if info is None else (info.num_workers, info.id)
        shards, mine = self.world_size * workers, self.rank * workers + wid
        for i, item in enumerate(self.base):
            if i % shards == mine:
                yield item


class _Pinnable:
    """A collated Batch the DataLoader's pin-memory thread knows how to pin."""

    def __init__(self, batch: Batch):
        self.batch = batch

    def pin_memory(self) -> "_Pinnable":
        b = self.batch
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        cond = None if b.cond is None else {k: pin(v) for k, v in b.cond.items()}
        b.x, b.cond, b.mask, b.known, b.known_mask = pin(b.x), cond, pin(b.mask), pin(b.known), pin(b.known_mask)
        return self


class _Collate:
    def __init__(self, collate: Callable[[list[Any]], Batch]):
        self.collate = collate

    def __call__(self, items: list[Any]) -> _Pinnable:
        batch = self.collate(items)
        if not isinstance(batch, Batch):
            raise TypeError(f"domain.collate returned {type(batch).__name__}, expected core.domain.Batch")
        return _Pinnable(batch)


@dataclass
class DataPosition:
    epoch: int = 0
    consumed: int = 0  # map-style: examples of the epoch's permutation consumed by all ranks;
    # streaming: micro-batches this rank consumed in the epoch
    world_size: int = 1
    micro_batch: int = 1
    group: int = 0  # map-style: the size-grouping the epoch's order was drawn with (0: none)


def _ignore_stop_signals(worker_id: int) -> None:
    """In a data worker: leave SIGTERM and SIGINT to the trainer. A scheduler, `kill` of the process
    group or Ctrl-C signals every process; a worker that died of it made the trainer's last
    checkpoint fail (the DataLoader raises in the main process when a worker dies), where the
    trainer itself would have stopped after the step, checkpointed and shut the workers down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DataStream:
    """An endless iterator of Batches over epochs, with a position to checkpoint."""

    def __init__(self, dataset: Dataset, collate: Callable[[list[Any]], Batch], *, dist: DistInfo, micro_batch: int,
                 seed: int, num_workers: int = 0, pin_memory: bool = False, position: DataPosition | None = None,
                 group: int = 0):
        """group: order each epoch so that every `group` consecutive examples (a global batch: a
        multiple of micro_batch x world size) have similar ``dataset.sizes``; 0 leaves it random."""
        self.dist, self.micro_batch, self.seed, self.group = dist, micro_batch, seed, group
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.collate = _Collate(collate)
        self.streaming = isinstance(dataset, IterableDataset)
        if self.streaming:
            if group:
                raise ValueError(f"group_by_size needs a map-style dataset; {type(dataset).__name__} streams")
            self.dataset = dataset if getattr(dataset, "shards_itself", False) else \
                ShardedIterable(dataset, rank=dist.rank, world_size=dist.world_size)
            self.sampler = None
        else:
            n = len(dataset)
            if n < micro_batch * dist.world_size:
                raise ValueError(f"the training set holds {n} examples, fewer than one step needs "
                                 f"({micro_batch} per micro-step x {dist.world_size} ranks); lower trainer.batch_size")
            sizes = dataset_sizes(dataset) if group else None
            if group and (sizes is None or group % (micro_batch * dist.world_size)):
                raise ValueError(f"group_by_size needs a dataset with sizes and a group that is a multiple of "
                                 f"{micro_batch} x {dist.world_size}; got {type(dataset).__name__}, group {group}")
            self.dataset = dataset
            self.sampler = ResumableDistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank,
                                                       seed=seed, micro_batch=micro_batch, sizes=sizes, group=group)
        self.epoch, self.consumed, self.skip = 0, 0, 0
        if position is not None:
            self._restore(position)
        self._it: Iterator | None = None

    def _restore(self, p: DataPosition) -> None:
        self.epoch = p.epoch
        if not self.streaming:
            self.consumed = p.consumed
            if p.group != self.group:
                log.warning("the checkpoint's data order was drawn with group_by_size=%d, this run's with %d: the rest "
                            "of epoch %d follows the new order, so some of its examples repeat and others are skipped",
                            p.group, self.group, self.epoch)
            return
        if p.world_size == self.dist.world_size and p.micro_batch == self.micro_batch:
            self.skip = p.consumed
        else:  # not exact: the stream is dealt differently on another world size
            self.skip = p.consumed * p.micro_batch * p.world_size // (self.micro_batch * self.dist.world_size)
            log.warning("streaming dataset resumed on %d ranks (was %d): skipping about %d micro-batches per rank; "
                        "the examples seen will not match an uninterrupted run exactly",
                        self.dist.world_size, p.world_size, self.skip)

    def position(self) -> DataPosition:
        return DataPosition(self.epoch, self.consumed, self.dist.world_size, self.micro_batch,
                            0 if self.streaming else self.group)

    def _loader(self) -> DataLoader:
        g = torch.Generator().manual_seed(derive_seed(self.seed, 0x10AD, self.epoch, self.dist.rank, self.consumed))
        if self.sampler is not None:
            self.sampler.set_position(self.epoch, self.consumed)
        if hasattr(self.dataset, "set_epoch"):  # e.g. random crops that follow (epoch, index), so resume is exact
            self.dataset.set_epoch(self.epoch)
        return DataLoader(self.dataset, batch_size=self.micro_batch, sampler=self.sampler, drop_last=True,
                          collate_fn=self.collate, num_workers=self.num_workers, pin_memory=self.pin_memory,
                          generator=g, persistent_workers=False,
                          worker_init_fn=_ignore_stop_signals if self.num_workers else None)

    def _next_epoch(self) -> None:
        self.epoch += 1
        self.consumed = 0
        self._it = None

    def _fetch(self) -> Batch | None:
        if self._it is None:
            self._it = iter(self._loader())
            for _ in range(self.skip):  # streaming resume: replay the epoch's head
                if next(self._it, None) is None:
                    break
            if self.streaming:
                self.consumed, self.skip = self.skip, 0
        item = next(self._it, None)
        return None if item is None else item.batch

    def __iter__(self) -> "DataStream":
        return self

    def __next__(self) -> Batch:
        for _ in range(3):  # a fresh epoch that yields nothing twice means an empty dataset
            batch = self._fetch()
            if self.streaming and self.dist.distributed:  # every rank must step: end the epoch together
                have = torch.tensor([0.0 if batch is None else 1.0])
                if all_reduce_sum(have, self.dist).item() < self.dist.world_size:
                    batch = None
            if batch is not None:
                self.consumed += 1 if self.streaming else self.micro_batch * self.dist.world_size
                return batch
            self._next_epoch()
        raise RuntimeError("the training set yields no complete micro-batch; is it empty?")

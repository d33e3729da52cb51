"""Toy-domain variants for the trainer's tests: slow data (to stop a run mid-way), a network that
returns NaN, a streaming (IterableDataset) training set, and one that records its training noise."""

from __future__ import annotations

import os
import time

import torch

from torch import nn
from torch.utils.data import Dataset, IterableDataset

from diffsuite.core.toy import ToyDomain


class _Slow(Dataset):
    def __init__(self, base: Dataset, delay: float):
        self.base, self.delay = base, delay

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.base[i]


class SlowToyDomain(ToyDomain):
    """The toy with `delay` seconds per example read: same data, same model, slower steps."""

    def __init__(self, *, delay: float = 0.0, **kw):
        super().__init__(**kw)
        self.delay = delay

    def dataset(self, split):
        return _Slow(super().dataset(split), self.delay)


class _NaNAt(nn.Module):
    """Wraps the toy network; its output is NaN on the forward calls listed in `bad` (0-based),
    or on every call when `bad` is None."""

    def __init__(self, net: nn.Module, bad: list[int] | None):
        super().__init__()
        self.net, self.bad, self.calls = net, bad, 0

    def forward(self, x, c_noise, cond=None):
        out = self.net(x, c_noise, cond)
        hit = self.bad is None or self.calls in self.bad
        self.calls += 1
        return out * float("nan") if hit else out


class NaNToyDomain(ToyDomain):
    def __init__(self, *, bad_calls: list[int] | None = None, **kw):
        super().__init__(**kw)
        self.bad_calls = None if bad_calls is None else list(bad_calls)

    def network(self):
        return _NaNAt(super().network(), self.bad_calls)


class _Stream(IterableDataset):
    def __init__(self, base: Dataset):
        self.base = base

    def __iter__(self):
        for i in range(len(self.base)):
            yield self.base[i]


class StreamingToyDomain(ToyDomain):
    """The toy's training set as a stream (no len, no random access)."""

    def dataset(self, split):
        return _Stream(super().dataset(split))


class NoiseRecordingToyDomain(ToyDomain):
    """The toy, saving the training noise it hands out (first `record_calls` draws of this process) to
    $DIFFSUITE_TEST_NOISE_DIR/rank<R>_<call>.pt, so a test can compare what the ranks drew."""

    def __init__(self, *, record_calls: int = 4, **kw):
        super().__init__(**kw)
        self.record_calls, self.calls = record_calls, 0

    def noise_fn(self, batch, generator=None):
        inner = super().noise_fn(batch, generator)

        def noise(x):
            eps = inner(x)
            folder = os.environ.get("DIFFSUITE_TEST_NOISE_DIR")
            if folder and self.calls < self.record_calls:
                torch.save(eps.detach().cpu(), f"{folder}/rank{os.environ.get('RANK', '0')}_{self.calls}.pt")
            self.calls += 1
            return eps

        return noise

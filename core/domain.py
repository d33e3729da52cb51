"""The contract between the domain-agnostic core and a domain package.

A domain gives the core what it cannot know: data, the raw network, the noise its space needs,
how to set up a sampling batch, and how samples become files and figures. The core never imports
``domains``; hydra instantiates a domain from ``configs/domain/<name>.yaml`` (``_target_``).

Conventions shared by every domain
----------------------------------
* Model space is variance exploding: ``x = x0 + sigma * eps``; data is scaled so its standard
  deviation is about ``sigma_data`` (0.5 unless the domain says otherwise).
* A raw network is called ``net(x_in, c_noise, cond)`` and returns a tensor shaped like ``x_in``;
  preconditioning (``core.precond``) turns it into a denoiser ``D(x, sigma, cond) -> x0_hat``.
* ``cond`` is a ``dict[str, Tensor]`` (or ``None``). Reserved keys:
    - ``"drop"``: ``BoolTensor[B]``; where True the network must ignore its guidance conditions
      (class, property, ...) and use its learned null condition. Classifier-free guidance and
      condition dropout in training work only through this key, so they work for every domain.
    - ``"mask"``: ``Tensor`` of 1 on real elements and 0 on padding, for variable-size data.
* ``Batch.mask`` broadcasts against ``Batch.x`` and weights the loss; padding never counts.
* Constructors are cheap: data is loaded (and cached) lazily by ``dataset()``, so the command
  line can build a domain just to find its pretrained weights or its sampling options.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

Cond = dict[str, Tensor]
NoiseFn = Callable[[Tensor], Tensor]


@dataclass
class Batch:
    """Model-space tensors for a batch, as the trainer and the samplers consume them."""

    x: Tensor  # (B, ...) clean data in model space; for sampling, a template of the shape
    cond: Cond | None = None  # network conditions, see the module docstring
    mask: Tensor | None = None  # broadcastable to x: 1 real, 0 padding
    known: Tensor | None = None  # known-region conditioning: values in model space
    known_mask: Tensor | None = None  # 1 where `known` is given
    meta: dict[str, Any] = field(default_factory=dict)  # anything decode() needs (lengths, names)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        cond = None if self.cond is None else {k: move(v) for k, v in self.cond.items()}
        return replace(self, x=move(self.x), cond=cond, mask=move(self.mask),
                       known=move(self.known), known_mask=move(self.known_mask))

    def __len__(self) -> int:
        return self.x.shape[0]


@runtime_checkable
class Domain(Protocol):
    """What a domain package implements. See ``domains/*/domain.py`` for three of them."""

    name: str
    sigma_data: float
    pretrained: "Path | None"  # shipped exported weights (safetensors), used when checkpoint= is not given

    def dataset(self, split: str) -> Dataset:
        """Examples of a split ("train", "val", "test"); items are whatever `collate` takes."""

    def collate(self, items: list[Any]) -> Batch:
        """Stack dataset items into a model-space Batch."""

    def network(self) -> nn.Module:
        """The raw network ``net(x_in, c_noise, cond)`` at the configured size preset."""

    def noise_fn(self, batch: Batch, generator: torch.Generator | None = None) -> NoiseFn:
        """The noise hook for this batch: ``eps = noise(x)``. Gaussian for grids; structured
        spaces draw in their subspace (molecules: zero centre of mass, zero on padding)."""

    def sampling_batch(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> Batch:
        """A batch to sample: shape template, conditions, mask and known region, from the
        user's options (``class=3 seconds=1.0``, ``frames=16``, a fragment, ...). Any random
        choice it makes (atom counts, property targets) is drawn from `generator`, which
        ``core.generate`` seeds from the sampling seed, so `seed=` decides the whole sample."""

    def decode(self, x: Tensor, batch: Batch) -> list[Any]:
        """Model-space samples back to raw examples (waveforms, frames, molecules)."""

    def write(self, samples: list[Any], out_dir: Path) -> list[Path]:
        """Files a person opens; never overwrites an existing file."""

    def evaluate(self, samples: Path, **options: Any) -> dict[str, float]:
        """Offline quality figures for sample files, beside the held-out reference."""

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this domain (stored beside exported weights);
        ``ConfigFromInit`` derives it from the constructor itself."""


def _plain(value: Any) -> Any:
    """A constructor argument as JSON-ready data: hydra containers, tuples and paths become lists,
    dicts and strings."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _import_path(cls: type) -> str:
    """The shortest ``_target_`` that imports `cls`: its package's name when the package exports it
    (``diffsuite.domains.audio.AudioDomain``), else its module's."""
    package = cls.__module__.rpartition(".")[0]
    if package and getattr(importlib.import_module(package), cls.__name__, None) is cls:
        return f"{package}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__name__}"


class ConfigFromInit:
    """A domain whose ``config()`` is derived from one source, its constructor: the arguments each
    instance was built with (defaults filled in) are recorded as it is built, so a new constructor
    argument is stored in every export without anyone editing a hand-written list. What the
    instance settled after construction (class names found in a data folder, a machine's cache
    folder that must not travel) is the one override, ``settled_config()``, and may only name
    constructor arguments. ``instantiate(domain.config())`` rebuilds an equal domain; the trainer
    checks that on every export."""

    _init_recording: dict[str, Any]  # {"args": the recorded arguments, "open": whether a parent may add its own}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__dict__["__init__"]
        signature = inspect.signature(init)
        kinds = {p.kind for p in signature.parameters.values()}
        if inspect.Parameter.VAR_POSITIONAL in kinds:
            raise TypeError(f"{cls.__name__}.__init__ takes *args: a config derived from the constructor needs "
                            "every argument named")
        forwards = inspect.Parameter.VAR_KEYWORD in kinds  # **kw handed on to the parent's constructor

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            # The outermost constructor records its arguments; a parent's are added (without
            # overriding) only when the level above forwards **kw to it.
            state = self.__dict__.setdefault("_init_recording", {"args": {}, "open": True})
            if state["open"]:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                for name, value in list(bound.arguments.items())[1:]:  # [0] is self
                    if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                        for k, v in value.items():
                            state["args"].setdefault(k, _plain(v))
                    else:
                        state["args"].setdefault(name, _plain(value))
                state["open"] = forwards
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def settled_config(self) -> dict[str, Any]:
        """Constructor arguments whose value the instance settled after construction (override)."""
        return {}

    def config(self) -> dict[str, Any]:
        args = dict(self._init_recording["args"])
        settled = self.settled_config()
        unknown = sorted(set(settled) - set(args))
        if unknown:
            raise TypeError(f"{type(self).__name__}.settled_config() names {unknown}, which are not constructor arguments")
        args.update({k: _plain(v) for k, v in settled.items()})
        return {"_target_": _import_path(type(self)), **args}


def config_options(cfg: Any, key: str = "sample_options") -> dict[str, Any]:
    """The top-level options a domain config lists under `key` (``sample_options: [class, seconds]``),
    as plain values: what ``diffsuite sample``, the trainer's previews and exports pass on."""
    from omegaconf import OmegaConf

    def plain(v: Any) -> Any:
        return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v

    return {k: plain(cfg[k]) for k in (cfg.get(key) or []) if k in cfg}


def gaussian_noise_fn(generator: torch.Generator | None = None) -> NoiseFn:
    """The default noise hook: i.i.d. standard normal of the shape of `x`."""

    def noise(x: Tensor) -> Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    return noise

"""The Python API behind ``import diffsuite``: load a model, sample it, save or show the samples,
evaluate them.

    model = diffsuite.load("audio")                 # a domain's shipped weights, or a path
    samples = model.sample(n=4, class_=3, seconds=1.0)
    samples.save("clips")                           # the domain's own files, never overwriting
    diffsuite.evaluate("audio", "clips")            # or diffsuite.evaluate("audio", samples)

``diffsuite sample`` and ``diffsuite evaluate`` are thin layers over this module: both take their
options and defaults from the same composed configs (``configs/sample.yaml`` or
``configs/evaluate.yaml`` with the domain's ``configs/domain/NAME.yaml``) and run the same
functions (``Model.from_config``, ``Model.sample_from_config``, ``evaluate_from_config``), so the
command line and the API cannot drift apart.

The core stays domain-agnostic: domains are built from their hydra ``_target_``; samples are saved
by the domain's own ``write`` and shown in Jupyter from the files that ``write`` makes (a sound
file becomes an audio player, a GIF an animation, a PNG an image).
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Iterator

from .cli import CONFIG_DIR, resolve_device
from .errors import MissingFileError, UserError
from .options import whole

# keys of configs/sample.yaml that Model.sample() takes as keyword arguments
SAMPLE_KEYS = ("n", "steps", "guidance", "guidance_rescale", "guidance_interval", "seed", "batch_size")
# keys of configs/sample.yaml that belong elsewhere in the API: load(path, device=...), Samples.save(out)
NOT_SAMPLE_KEYS = ("checkpoint", "device", "out")
SHOWN_AT_MOST = 16  # samples written for a notebook display (the rest are counted, not drawn)
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
        ".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
        ".svg": "image/svg+xml", ".mp4": "video/mp4", ".webm": "video/webm"}


# --- configs ------------------------------------------------------------------------------------
def config_choices(group: str) -> list[str]:
    """The options of a config group: the YAML files in ``configs/<group>/``."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def compose_config(name: str, overrides: Sequence[str] = ()):
    """``configs/<name>.yaml`` composed with hydra's compose API, exactly as the command line
    composes it from the same overrides. Works inside a running hydra app (the CLI, the demo) too:
    that app's global state is set aside while ours is used, and put back afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved = Singleton._instances.pop(GlobalHydra, None)  # hydra's own initialize() keeps its backup here too
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides))
    finally:
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved


def _choice(group: str, value: str) -> str:
    choices = config_choices(group)
    if value not in choices:
        raise UserError(f"unknown {group} {value!r}; choose one of {', '.join(choices)}")
    return value


def _plain(v: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v


def sample_settings(cfg) -> dict[str, Any]:
    """What a composed sample config asks of ``generate``: the one reading of ``configs/sample.yaml``
    that ``diffsuite sample`` and ``Model.sample`` share."""
    from hydra.utils import instantiate

    from omegaconf import OmegaConf

    from .domain import config_options

    return {"n": cfg.n, "steps": cfg.steps, "sampler": str(cfg.sampler.name),
            "sampler_options": dict(_plain(cfg.sampler.options) or {}), "schedule": instantiate(cfg.schedule),
            "guidance": cfg.guidance, "guidance_optional": OmegaConf.is_interpolation(cfg, "guidance"),  # a default
            "guidance_rescale": cfg.guidance_rescale,
            "guidance_interval": _plain(cfg.guidance_interval), "seed": cfg.seed, "batch_size": cfg.batch_size,
            "options": config_options(cfg), "option_names": list(cfg.get("sample_options") or [])}


def _check_settings(s: dict[str, Any]) -> None:
    """What ``generate`` does not check itself (it checks n, steps and guidance): one-line errors
    naming the option, before any work is done."""
    s["seed"] = whole(s["seed"], "seed", low=0)
    if s["batch_size"] is not None:
        s["batch_size"] = whole(s["batch_size"], "batch_size", low=1)


# --- loading ------------------------------------------------------------------------------------
def load(model: "str | Path", *, device: str = "auto") -> "Model":
    """A model to sample: a domain's shipped weights by name (``load("audio")``), or exported
    weights by path (``load("runs/audio/exp1/export/weights.safetensors")``; a training run's
    folder works too). ``device``: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"``."""
    domains = config_choices("domain")
    if isinstance(model, str) and model in domains:
        return Model.from_config(compose_config("sample", [f"domain={model}"]), device=device)
    path = Path(model).expanduser()
    if path.is_dir() and (path / "export" / "weights.safetensors").is_file():
        path = path / "export" / "weights.safetensors"  # a training run's folder
    if not path.is_file():
        raise MissingFileError(f"{model!r} is neither a domain ({', '.join(domains)}) nor an exported weights file")
    return Model.from_export(path, device=device)


def _shipped_weights(domain) -> Path:
    if domain.pretrained is None or not Path(domain.pretrained).is_file():
        raise UserError(f"domain {domain.name!r} ships no pretrained weights; give exported weights, checkpoint=PATH "
                        f"(or diffsuite.load(PATH)): an export/weights.safetensors written by "
                        f"`diffsuite train domain={domain.name}`")
    return Path(domain.pretrained)


class Model:
    """A denoiser with its domain, ready to sample. Made by ``load``; ``sample`` draws samples."""

    def __init__(self, domain, denoiser, config: dict[str, Any], *, path: Path, device: str):
        self.domain, self.denoiser, self.config = domain, denoiser, config
        self.path, self.device = Path(path), device

    @property
    def name(self) -> str:
        """The domain's name (``"audio"``, ...)."""
        return self.domain.name

    @classmethod
    def from_export(cls, path: "str | Path", *, device: str = "auto", expect_domain: str | None = None) -> "Model":
        from .training.export import build_from_export

        device = resolve_device(device)
        domain, denoiser, config = build_from_export(path, device, expect_domain=expect_domain)
        return cls(domain, denoiser, config, path=Path(path), device=device)

    @classmethod
    def from_config(cls, cfg, *, device: str | None = None) -> "Model":
        """The model a composed sample config names: ``checkpoint=``, else the domain's shipped
        weights (what ``diffsuite sample`` loads)."""
        from hydra.utils import instantiate

        domain = instantiate(cfg.domain)  # cheap: data loads lazily
        path = Path(cfg.checkpoint) if cfg.get("checkpoint") else _shipped_weights(domain)
        return cls.from_export(path, device=device or cfg.device, expect_domain=domain.name)

    def defaults(self, *, sampler: str | None = None, schedule: str | None = None):
        """``configs/sample.yaml`` composed for this model's domain (and a sampler or schedule)."""
        overrides = [f"sampler={_choice('sampler', sampler)}"] if sampler else []
        overrides += [f"schedule={_choice('schedule', schedule)}"] if schedule else []
        if self.name in config_choices("domain"):
            overrides.append(f"domain={self.name}")
        else:  # a domain with no configs/domain/NAME.yaml: its options go straight to sampling_batch
            overrides.append("~domain")
        return compose_config("sample", overrides)

    def sample(self, n: int | None = None, *, seed: int | None = None, steps: int | None = None,
               sampler: str | None = None, schedule: "str | Callable | None" = None, guidance: float | None = None,
               guidance_rescale: float | None = None, guidance_interval: "tuple[float, float] | None" = None,
               batch_size: int | None = None, sampler_options: dict[str, Any] | None = None, progress: bool = True,
               **options: Any) -> "Samples":
        """Draw samples with the options and defaults of ``diffsuite sample`` (``configs/sample.yaml``):
        an argument left at None takes the config's default. ``sampler`` and ``schedule`` name a
        config (``"dpmpp_2m"``, ``"exponential"``); ``schedule`` may also be a function
        ``steps -> sigmas``, and ``sampler_options`` update the sampler config's options.
        ``options`` are the domain's (its ``sample_options``: audio ``class_``/``seconds``/``clip``...,
        video ``class_``/``frames``/``given``..., molecules ``num_atoms``/``fragment``...); ``class``
        is spelled ``class_`` in Python, or passed as ``**{"class": 3}``."""
        cfg = self.defaults(sampler=sampler, schedule=schedule if isinstance(schedule, str) else None)
        s = sample_settings(cfg)
        if schedule is not None and not isinstance(schedule, str):
            if not callable(schedule):
                raise UserError(f"schedule must be a config name or a function steps -> sigmas, got {schedule!r}")
            s["schedule"] = schedule
        given = {"n": n, "seed": seed, "steps": steps, "guidance": guidance, "guidance_rescale": guidance_rescale,
                 "guidance_interval": guidance_interval, "batch_size": batch_size}
        s.update({k: v for k, v in given.items() if v is not None})
        if guidance is not None:
            s["guidance_optional"] = False  # the caller's own scale: refused where it changes nothing
        s["sampler_options"].update(sampler_options or {})
        for key, value in options.items():
            name = key[:-1] if key.endswith("_") and key[:-1] in s["option_names"] else key  # class_ -> class
            if s["option_names"] and name not in s["option_names"]:
                raise UserError(f"unknown {self.name} sampling option {key!r}; this domain takes "
                                 f"{', '.join(o + '_' if o == 'class' else o for o in s['option_names'])}")
            s["options"][name] = str(value) if isinstance(value, Path) else value
        return self._draw(s, progress)

    def sample_from_config(self, cfg, *, progress: bool = True) -> "Samples":
        """Samples as a composed sample config asks (what ``diffsuite sample`` runs)."""
        return self._draw(sample_settings(cfg), progress)

    def _draw(self, s: dict[str, Any], progress: bool) -> "Samples":
        from .generate import generate

        _check_settings(s)
        values, x = generate(self.domain, self.denoiser, s["n"], sampler=s["sampler"], steps=s["steps"],
                             grid=s["schedule"], sampler_options=s["sampler_options"], guidance=s["guidance"],
                             guidance_rescale=s["guidance_rescale"], guidance_interval=s["guidance_interval"],
                             guidance_optional=s.get("guidance_optional", False),
                             seed=s["seed"], device=self.device, batch_size=s["batch_size"], progress=progress,
                             **s["options"])
        return Samples(self.domain, values, tensor=x)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, path={str(self.path)!r}, device={self.device!r})"


# --- samples ------------------------------------------------------------------------------------
def _rendered(domain, values: list[Any]) -> list[tuple[str, str, bytes]]:
    """(stem, suffix, bytes) of the files the domain writes for `values`, written to a temporary
    folder: what a notebook shows is exactly what ``save`` would write."""
    with tempfile.TemporaryDirectory(prefix="diffsuite-show-") as tmp:
        files = domain.write(list(values), Path(tmp))
        return [(Path(f).stem, Path(f).suffix.lower(), Path(f).read_bytes()) for f in files]


def _html(files: list[tuple[str, str, bytes]], title: str) -> str:
    """One figure per written stem: sound files as players, GIF/PNG as images, MP4 only where
    no GIF of the same stem shows the frames already."""
    stems: dict[str, list[tuple[str, bytes]]] = {}
    for stem, suffix, data in files:
        stems.setdefault(stem, []).append((suffix, data))
    figures = []
    for stem, parts in stems.items():
        has_gif = any(s == ".gif" for s, _ in parts)
        items = []
        for suffix, data in parts:
            mime = MIME.get(suffix)
            if mime is None or (mime.startswith("video/") and has_gif):
                continue  # data files (SDF, NPZ): saved by save(), not shown
            src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
            if mime.startswith("audio/"):
                items.append(f'<audio controls src="{src}"></audio>')
            elif mime.startswith("video/"):
                items.append(f'<video controls loop muted autoplay src="{src}" style="max-width:100%"></video>')
            else:
                items.append(f'<img src="{src}" alt="{html.escape(stem)}" style="max-width:100%">')
        if items:
            figures.append(f'<figure style="margin:4px">{"<br>".join(items)}'
                           f'<figcaption style="font-size:smaller">{html.escape(stem)}</figcaption></figure>')
    return (f'<div class="diffsuite-samples"><div>{html.escape(title)}</div>'
            f'<div style="display:flex;flex-wrap:wrap;align-items:flex-start">{"".join(figures)}</div></div>')


class _Showable:
    """Saving and notebook display, shared by one sample and a collection of them."""

    domain: Any

    def _values(self) -> list[Any]:
        raise NotImplementedError

    def save(self, folder: "str | Path") -> list[Path]:
        """Write the domain's files (audio WAV + spectrogram PNG; video MP4, GIF, frame grid PNG
        and a sidecar; molecules SDF + depiction PNG) into `folder`; existing files are never
        overwritten. Returns the paths written."""
        return list(self.domain.write(self._values(), Path(folder)))

    def _files(self) -> list[tuple[str, str, bytes]]:
        if getattr(self, "_files_cache", None) is None:  # Jupyter asks for HTML and PNG: write once
            self._files_cache = _rendered(self.domain, self._values()[:SHOWN_AT_MOST])
        return self._files_cache

    def _title(self) -> str:
        n = len(self._values())
        shown = f" (the first {SHOWN_AT_MOST} shown)" if n > SHOWN_AT_MOST else ""
        return f"{n} {self.domain.name} sample{'s' if n != 1 else ''}{shown}"

    def _repr_html_(self) -> str:
        return _html(self._files(), self._title())

    def _repr_png_(self) -> bytes | None:
        return next((data for _, suffix, data in self._files() if suffix == ".png"), None)


class Sample(_Showable):
    """One sample: ``value`` is the domain's decoded form (audio: a dict with ``wave`` and
    ``sample_rate``; video: frames (T, H, W, C) uint8 and what conditioned them; molecules:
    elements and 3D positions)."""

    def __init__(self, domain, value: Any, index: int = 0):
        self.domain, self.value, self.index = domain, value, index

    def _values(self) -> list[Any]:
        return [self.value]

    def __repr__(self) -> str:
        return f"<{self.domain.name} sample {self.index}: {type(self.value).__name__}>"


class Samples(_Showable, Sequence):
    """Samples as ``Model.sample`` returns them: a sequence of ``Sample`` that saves and shows
    itself as a whole. ``values``: the decoded samples; ``tensor``: the model-space result."""

    def __init__(self, domain, values: list[Any], *, tensor: Any = None, start: int = 0):
        self.domain, self.values, self.tensor, self._start = domain, list(values), tensor, start

    def _values(self) -> list[Any]:
        return self.values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i):
        if isinstance(i, slice):
            start = range(len(self.values))[i].start if len(self.values) else 0
            return Samples(self.domain, self.values[i], start=self._start + start)
        i = range(len(self.values))[i]  # IndexError for a bad index, negative ones counted from the end
        return Sample(self.domain, self.values[i], self._start + i)

    def __iter__(self) -> Iterator[Sample]:
        return (Sample(self.domain, v, self._start + i) for i, v in enumerate(self.values))

    def __repr__(self) -> str:
        return f"<{len(self)} {self.domain.name} samples>"


# --- evaluation ---------------------------------------------------------------------------------
def evaluate(domain: "str | Model", samples: "str | Path | Samples | Sample | list", **options: Any) -> dict[str, float]:
    """Quality figures for samples, as ``diffsuite evaluate`` prints them: `samples` is a file or
    folder written by ``save`` (or ``diffsuite sample``), or samples themselves (``Samples``, a
    ``Sample``, or a list of them). `domain` is a domain's name (its default data is the
    reference) or a loaded ``Model`` (its training data is). `options` are the domain's
    ``evaluate_options`` (molecules: ``novelty``, ``limit``)."""
    if isinstance(domain, Model):
        cfg = compose_config("evaluate", [f"domain={domain.name}"] if domain.name in config_choices("domain") else ["~domain"])
        dom = domain.domain
    else:
        cfg = compose_config("evaluate", [f"domain={_choice('domain', domain)}"])
        dom = None
    from .domain import config_options

    allowed = list(cfg.get("evaluate_options") or [])
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        name = domain.name if isinstance(domain, Model) else domain
        raise UserError(f"unknown {name} evaluate option(s) {unknown}; this domain takes {', '.join(allowed) or 'none'}")
    if dom is None:
        from hydra.utils import instantiate

        dom = instantiate(cfg.domain)
    return _evaluate(dom, samples, {**config_options(cfg, "evaluate_options"), **options})


def evaluate_from_config(cfg) -> tuple[str, dict[str, float]]:
    """(domain name, figures) for ``cfg.samples`` as a composed evaluate config asks (what
    ``diffsuite evaluate`` runs)."""
    from hydra.utils import instantiate

    from .domain import config_options

    domain = instantiate(cfg.domain)
    return domain.name, _evaluate(domain, cfg.samples, config_options(cfg, "evaluate_options"))


def _evaluate(domain, samples: Any, options: dict[str, Any]) -> dict[str, float]:
    if isinstance(samples, (str, Path)):
        path = Path(samples).expanduser()
        if not path.exists():
            raise MissingFileError(f"no samples at {path}")
        return domain.evaluate(path, **options)
    items = [samples] if isinstance(samples, Sample) else list(samples)
    if not items:
        raise UserError("no samples to evaluate: the list is empty")
    for item in items:
        made_by = getattr(item, "domain", None)
        if made_by is not None and made_by.name != domain.name:
            raise UserError(f"these are {made_by.name!r} samples; they cannot be evaluated as {domain.name!r}")
    values: list[Any] = []
    for item in items:
        values.extend(item._values() if isinstance(item, _Showable) else [item])
    with tempfile.TemporaryDirectory(prefix="diffsuite-evaluate-") as tmp:
        domain.write(values, Path(tmp))  # evaluated from the very files save() writes
        return domain.evaluate(Path(tmp), **options)

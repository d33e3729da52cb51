"""Classifier weights, saved and checked the same way in every domain.

A domain's evaluation classifier is one safetensors file whose metadata ``diffsuite_config``
(JSON) holds ``"kind": "<domain>_classifier"`` and the facts that decide whether it fits a
domain (classes, features, its constructor settings). It is written atomically and never over an
existing file (``core.training.export.export_weights``); at load, the kind is checked first (a
denoiser export or another domain's classifier is named as what it is) and then each fact the
domain expects, in a one-line ``UserError`` naming the file, the fact, the file's value and the
value needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import MissingFileError, UserError


def save_classifier(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write a classifier file; `meta` must name its ``kind`` (``"video_classifier"``)."""
    from .training.export import export_weights

    if not str(meta.get("kind", "")).endswith("_classifier"):
        raise ValueError(f"classifier metadata needs kind='<domain>_classifier', got {meta.get('kind')!r}")
    return export_weights(path, dict(tensors), dict(meta))


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file: {' '.join(str(e).split())}") from e


def read_classifier_meta(path: str | Path, kind: str, *, hint: str = "") -> dict[str, Any]:
    """The metadata of a `kind` classifier file; any other file is a UserError saying what it is.
    The video classifier's first format (``classifier_config`` + ``info``) reads as
    ``{"kind": "video_classifier", "config": ..., "info": ...}``."""
    from .training.export import weights_kind

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"no classifier weights at {path}{'; ' + hint if hint else ''}")
    raw = _metadata(path)
    if "classifier_config" in raw:
        meta = {"kind": "video_classifier", "config": json.loads(raw["classifier_config"]),
                "info": json.loads(raw.get("info", "{}"))}
    else:
        try:
            meta = json.loads(raw.get("diffsuite_config", "null"))
        except json.JSONDecodeError:
            meta = None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        what = weights_kind(raw)
        what = "denoiser weights (for checkpoint=)" if what == "denoiser" else what
        raise UserError(f"{path} holds {what}, not {'an' if kind[0] in 'aeiou' else 'a'} {kind.replace('_', ' ')}; "
                        "classifier= expects one")
    return meta


def check_classifier_meta(path: str | Path, meta: Mapping[str, Any], expect: Mapping[str, Any]) -> None:
    """Each expected fact must be stored with the same value: else one line naming it."""
    for key, want in expect.items():
        have = meta.get(key)
        if have != want:
            raise UserError(f"{path} is a classifier for {key}={have!r}; this domain needs {key}={want!r}")

"""diffsuite: diffusion models of audio, video and molecules on one domain-agnostic core.

The repository's ``core/`` and ``domains/`` folders install as ``diffsuite.core`` and
``diffsuite.domains``; this file (``api/`` in the repository) is the package's top, ``diffsuite``.

The Python API (``diffsuite.core.api``), with the options and defaults of the command line::

    import diffsuite
    model = diffsuite.load("audio")                 # shipped weights, or a path to exported weights
    samples = model.sample(n=4, class_=3)           # a notebook shows them (players, animations, depictions)
    samples.save("clips")                           # WAV / MP4+GIF / SDF, never overwriting
    diffsuite.evaluate("audio", "clips")            # or diffsuite.evaluate("audio", samples)

The names are imported on first use, so ``import diffsuite`` stays fast (no torch, no hydra).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load", "evaluate", "Model", "Samples", "Sample", "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names come from __getattr__
    from diffsuite.core.api import Model, Sample, Samples, evaluate, load


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(import_module("diffsuite.core.api"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'diffsuite' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

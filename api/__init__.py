"""diffsuite: diffusion models of audio, video and molecules on one domain-agnostic core.

The repository's ``core/`` and ``domains/`` folders install as ``diffsuite.core`` and
``diffsuite.domains``; this file (``api/`` in the repository) is the package's top, ``diffsuite``.
"""

__version__ = "0.1.0"

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

COMPILED = ("torchaudio", "rdkit.Chem", "e3nn.o3", "soundfile", "av", "imageio_ffmpeg")


def pytest_configure(config):
    """Stop before collection when a compiled extension does not load beside this torch, naming the
    pair (tests/core/test_extensions.py then checks that each one also computes)."""
    import importlib
    import importlib.metadata as md

    for name in COMPILED:
        try:
            importlib.import_module(name)
        except (ImportError, OSError) as e:
            dist = {"rdkit.Chem": "rdkit", "e3nn.o3": "e3nn", "imageio_ffmpeg": "imageio-ffmpeg"}.get(name, name)
            try:
                version = md.version(dist)
            except md.PackageNotFoundError:
                version = "(not installed)"
            pytest.exit(f"{dist} {version} does not load beside torch {torch.__version__}: {e}. "
                        f"Reinstall from the lock file: rm -rf .venv && make test", returncode=3)


@pytest.fixture
def gm():
    from diffsuite.core.toy import GaussianMixture

    return GaussianMixture.ring()

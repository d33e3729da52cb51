"""The float16 copy that the repository ships denoises like the float32 export it came from."""

import pytest
import torch

from diffsuite.core.errors import UserError
from diffsuite.core.training.export import build_from_export, export_half, export_weights, load_exported
from diffsuite.core.training.trainer import fit
from tests.training.run_trainer import compose_train


def test_half_copy_rebuilds_the_same_denoiser(tmp_path):
    r = fit(compose_train(["domain=toy", "trainer=debug", "trainer.steps=3", f"run_dir={tmp_path / 'run'}"]))
    half = export_half(r.export, tmp_path / "half.safetensors")
    state, config = load_exported(half)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert config == load_exported(r.export)[1]
    _, full_d, _ = build_from_export(r.export)
    _, half_d, _ = build_from_export(half)
    assert next(half_d.parameters()).dtype == torch.float32
    x, sigma = torch.randn(64, 2), torch.full((64,), 0.7)
    with torch.no_grad():
        torch.testing.assert_close(half_d(x, sigma), full_d(x, sigma), atol=2e-3, rtol=2e-3)
    with pytest.raises(FileExistsError):
        export_half(r.export, half)  # never overwritten


def test_weights_beyond_float16_are_refused(tmp_path):
    src = export_weights(tmp_path / "big.safetensors", {"w": torch.tensor([1e6])}, {"domain": {}, "model": {}})
    with pytest.raises(UserError, match="overflows float16"):
        export_half(src, tmp_path / "h.safetensors")
    assert not (tmp_path / "h.safetensors").exists()


def test_exports_are_readable_by_the_team_as_the_umask_allows(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = export_weights(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, {"domain": {}, "model": {}})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600

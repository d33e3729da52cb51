"""`diffsuite demo` goes on past a domain that fails, then exits non-zero naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from diffsuite.core import demo as demo_module
from diffsuite.core.demo import demo

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_a_failing_domain_makes_the_demo_exit_non_zero(tmp_path, monkeypatch):
    toy_ran = []
    monkeypatch.setattr(demo_module, "_toy", lambda *a: toy_ran.append(True))  # the toy's own stage is not under test
    broken = tmp_path / "broken.safetensors"
    broken.write_text("not weights")
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="demo", overrides=[
            f"out={tmp_path / 'out'}", "toy_steps=5", "device=cpu", "~domains.audio", "~domains.molecules",
            f"+domains.video.domain.pretrained={broken}", "domains.video.n=1", "domains.video.steps=1"])
        with pytest.raises(SystemExit) as e:
            demo(cfg)
    assert e.value.code not in (0, None) and "video failed" in str(e.value) and "broken.safetensors" in str(e.value)
    assert toy_ran  # the rest of the demo ran

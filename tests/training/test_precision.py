"""trainer.precision: auto picks bf16 only on a CPU that reports native bf16 units, and says so."""

from __future__ import annotations

import logging

import pytest
import torch

from diffsuite.core.training import precision
from diffsuite.core.training.precision import cpu_bf16_units, resolve_precision
from diffsuite.core.training.trainer import fit
from tests.training.run_trainer import compose_train

ZEN3 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n"


@pytest.mark.parametrize("text, unit", [(ZEN3, None), (ZEN4, "avx512_bf16"), (SAPPHIRE, "amx_bf16")])
def test_bf16_units_are_read_from_cpuinfo(tmp_path, text, unit):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert cpu_bf16_units(str(path)) == unit


@pytest.mark.parametrize("unit, expect", [(None, False), ("avx512_bf16", True)])
def test_auto_follows_the_cpu(monkeypatch, unit, expect):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: unit)
    use, why = resolve_precision("auto", torch.device("cpu"))
    assert use is expect and ("avx512_bf16" in why if expect else "fp32" in why)
    # explicit choices are obeyed whatever the processor
    assert resolve_precision("fp32", torch.device("cpu"))[0] is False
    assert resolve_precision("bf16", torch.device("cpu"))[0] is True
    assert resolve_precision("auto", torch.device("cuda"))[0] is True
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", torch.device("cpu"))


def test_the_trainer_runs_bf16_on_a_bf16_cpu_and_logs_it(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_bf16_units", lambda: "avx512_bf16")
    seen = []
    real = torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kw):
        seen.append((device_type, dtype, enabled))
        return real(device_type, dtype=dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    with caplog.at_level(logging.INFO, logger="diffsuite.train"):
        r = fit(compose_train(["domain=toy", "trainer=debug", "trainer.steps=2", "trainer.precision=auto",
                               f"run_dir={tmp_path}"]))
    assert r.step == 2
    assert ("cpu", torch.bfloat16, True) in seen
    assert any("precision: bf16 autocast (auto: this CPU has avx512_bf16)" in m for m in caplog.messages)
    # the weights, and so the optimizer and the EMA, stay float32
    assert all(p.dtype == torch.float32 for p in r.model.parameters())


def test_cpu_workers_never_oversubscribe_the_cores(monkeypatch):
    from diffsuite.core.training.precision import cpu_resources

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(precision, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert cpu_resources("auto", torch.device("cpu"))[0] == 0 and torch.get_num_threads() == 2
        workers, why = cpu_resources(1, torch.device("cpu"))
        assert workers == 1 and torch.get_num_threads() == 1 and "1 intra-op thread(s), 1 data worker(s)" in why
        torch.set_num_threads(1)  # a caller's choice of fewer threads is kept
        assert cpu_resources("auto", torch.device("cpu"))[0] == 0 and torch.get_num_threads() == 1
        assert cpu_resources("auto", torch.device("cuda"))[0] == 2
    finally:
        torch.set_num_threads(before)


def test_num_workers_option_is_checked():
    from diffsuite.core.training.options import TrainerOptions

    assert TrainerOptions.from_config({"num_workers": "auto"}).num_workers == "auto"
    assert TrainerOptions.from_config({"num_workers": 3}).num_workers == 3
    for bad in ("two", -1, 1.5):
        with pytest.raises(Exception, match="num_workers"):
            TrainerOptions.from_config({"num_workers": bad})

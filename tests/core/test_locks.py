"""The two lock files describe one tested stack: the benchmark venv is the tested environment plus
the reference libraries, never other versions of what the suite ran on."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)$")


def pins(path: Path) -> dict[str, str]:
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = PIN.match(line)
        assert m, f"{path.name}:{n}: {line!r} is not an exact pin (name==version)"
        out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_the_bench_lock_holds_the_tested_versions():
    tested, bench = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-bench.lock")
    missing = sorted(set(tested) - set(bench))
    differ = sorted(f"{k}: tested {v}, bench {bench[k]}" for k, v in tested.items() if k in bench and bench[k] != v)
    assert not missing, f"requirements-bench.lock lacks {missing}"
    assert not differ, f"requirements-bench.lock pins other versions than requirements.lock: {differ}"


def test_the_bench_lock_has_the_reference_libraries():
    bench = pins(ROOT / "requirements-bench.lock")
    assert {"diffusers", "k-diffusion", "dctorch"} <= set(bench)

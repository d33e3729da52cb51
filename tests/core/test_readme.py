"""The README's "Python API" examples run exactly as written, so the documentation cannot rot."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Python API"


def python_examples() -> list[str]:
    text = README.read_text()
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", body, flags=re.S | re.M)


def loaded_domain(code: str) -> str:
    m = re.search(r'diffsuite\.load\("(\w+)"\)', code)
    return m.group(1) if m else "example"


EXAMPLES = python_examples()


def test_every_domain_has_an_example():
    assert {loaded_domain(c) for c in EXAMPLES} >= {"audio", "video", "molecules"}


@pytest.mark.parametrize("code", EXAMPLES, ids=[loaded_domain(c) for c in EXAMPLES])
def test_readme_example_runs_as_written(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{README}:{SECTION}:{loaded_domain(code)}", "exec"), {"__name__": "__readme__"})
    for folder in re.findall(r'\.save\("([^"]+)"\)', code):  # what the example says it saves is there
        assert any((tmp_path / folder).iterdir()), folder
    printed = capsys.readouterr().out
    if "print(diffsuite.evaluate" in code:  # figures, and none of them NaN
        assert "{" in printed and "nan" not in printed.lower()

"""One installed namespace: core/, domains/ and api/ install as diffsuite.core, diffsuite.domains and
diffsuite, every package folder is listed in pyproject.toml, and nothing installs as a top-level
`core` or `domains`."""

import importlib
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"api": "diffsuite", "core": "diffsuite.core", "domains": "diffsuite.domains"}


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folders() -> dict[str, Path]:
    """Every folder with an __init__.py under core/, domains/ and api/, by its installed name."""
    found = {}
    for folder, name in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder).parts
            found[".".join((name, *rel))] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject():
    cfg = setuptools_config()
    assert cfg["package-dir"] == {name: folder for folder, name in FOLDERS.items()} | {"diffsuite.configs": "configs"}
    folders = package_folders()
    listed = set(cfg["packages"])
    missing = sorted(set(folders) - listed)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}: those folders would not install"
    stale = sorted(listed - set(folders) - {"diffsuite.configs"})  # configs/: YAML only, no __init__.py
    assert not stale, f"pyproject.toml lists packages with no folder: {stale}"
    assert all(p == "diffsuite" or p.startswith("diffsuite.") for p in listed)


def test_every_listed_package_imports_from_this_checkout():
    for name, folder in package_folders().items():
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().parent == folder.resolve(), name


def test_nothing_installs_as_top_level_core_or_domains(tmp_path):
    """What `pip show -f diffsuite` lists, and what Python finds outside the checkout."""
    show = subprocess.run([sys.executable, "-m", "pip", "show", "-f", "diffsuite"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    files = show.stdout.split("Files:", 1)[1].split()
    tops = {f.split("/", 1)[0] for f in files if not f.startswith("..")}
    assert not tops & {"core", "domains", "api"}, sorted(tops)
    code = ("import importlib.util as u, diffsuite.core, diffsuite.domains; "
            "print([m for m in ('core', 'domains', 'api') if u.find_spec(m) is not None])")
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and found.stdout.strip() == "[]", (found.stdout, found.stderr[-2000:])
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "diffsuite"}
    assert scripts == {"diffsuite": "diffsuite.core.cli:main"}


def test_a_regular_install_carries_the_configs_where_the_cli_looks():
    """A wheel (not editable) holds only what pyproject maps into diffsuite/: configs/ must go to
    diffsuite/configs, beside diffsuite/core, because core/cli.py reads core/../configs."""
    cfg = setuptools_config()
    assert cfg["package-dir"]["diffsuite.configs"] == "configs" and "diffsuite.configs" in cfg["packages"]
    from diffsuite.core.cli import CONFIG_DIR

    assert Path(CONFIG_DIR).resolve() == (ROOT / "core").resolve().parent / cfg["package-dir"]["diffsuite.configs"]
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["diffsuite.configs"]
    yamls = [p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml")]
    left_out = [str(p) for p in yamls if not any(p.match(pat) and len(p.parts) == len(Path(pat).parts) for pat in patterns)]
    assert yamls and not left_out, f"configs not installed by package-data {patterns}: {left_out}"

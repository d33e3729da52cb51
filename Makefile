# make demo: create .venv, install diffsuite, run the main job on embedded defaults (no download).
# make test: the whole test suite (what CI runs).   make bench: benchmark scripts -> benchmarks/RESULTS.md
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

# The stamp is remade when pyproject.toml changes. One resolve installs everything, so the pinned
# torch 2.11 stays beside torchaudio 2.11 (a second `pip install` of a torch dependent could swap
# in the CPU-only torch wheel, which breaks `import torchaudio`).
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -c "import torch, torchaudio, rdkit, e3nn; print('installed torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/diffsuite demo

test: $(VENV)/.installed
	$(PY) -m pytest

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/samplers.py
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf runs outputs multirun .pytest_cache

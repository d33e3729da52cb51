# make demo: create .venv, install diffsuite, run the main job on embedded defaults (no download).
# make test: the whole test suite (what CI runs).   make bench: benchmark scripts -> benchmarks/RESULTS.md
# make lock: re-resolve every dependency on purpose, rewrite requirements.lock, then run the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
PIP_VERSION := 26.3

.PHONY: demo test bench lock clean

# Every install goes through the lock file as pip constraints, so a new upstream release never
# changes what a fresh clone installs (a range pin once let torchaudio 2.11.1 in beside torch
# 2.11.0, and it does not load there). One resolve installs everything, so torch and torchaudio
# stay a matching pair. The stamp is remade when pyproject.toml or the lock changes.
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)
	$(PY) -m pip install --quiet -c $(LOCK) -e .
	$(PY) -c "import torch, torchaudio, rdkit, e3nn; print('installed torch', torch.__version__, 'torchaudio', torchaudio.__version__)"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/diffsuite demo

test: $(VENV)/.installed
	$(PY) -m pytest

# The benchmarks compare against k-diffusion, whose dctorch needs numpy<2: they get a venv of their
# own, from their own lock, so `make bench` never changes the environment the suite was tested in.
BENCH := .venv-bench
BENCH_LOCK := requirements-bench.lock

$(BENCH)/.installed: pyproject.toml $(BENCH_LOCK)
	test -x $(BENCH)/bin/python || $(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BENCH)/bin/python -m pip install --quiet -c $(BENCH_LOCK) -e '.[bench]'
	touch $@

bench: $(BENCH)/.installed
	$(BENCH)/bin/python benchmarks/samplers.py
	$(BENCH)/bin/python benchmarks/train_throughput.py

# Refresh the locks on purpose: resolve pyproject.toml afresh in scratch venvs (without and with
# the bench extra), freeze each, reinstall .venv from the new lock and run the whole suite.
# Commit the locks only when the suite passes.
lock:
	rm -rf .lock-venv .lock-venv-bench
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	.lock-venv/bin/python -m pip install --quiet -e .
	{ echo "# Every dependency of 'pip install -e .' at the version the suite was last tested with (Linux x86_64,"; \
	  echo "# Python 3.11). Used as pip constraints by make; regenerate on purpose with 'make lock', never by hand."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^diffsuite'; } > $(LOCK).new
	$(PYTHON) -m venv .lock-venv-bench
	.lock-venv-bench/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	.lock-venv-bench/bin/python -m pip install --quiet -e '.[bench]'
	{ echo "# The benchmark environment (.venv-bench). Regenerate with 'make lock'."; \
	  .lock-venv-bench/bin/python -m pip freeze --exclude-editable | grep -v '^diffsuite'; } > $(BENCH_LOCK).new
	mv $(LOCK).new $(LOCK)
	mv $(BENCH_LOCK).new $(BENCH_LOCK)
	rm -rf .lock-venv .lock-venv-bench $(VENV) $(BENCH)
	$(MAKE) test

clean:
	rm -rf runs outputs multirun .pytest_cache

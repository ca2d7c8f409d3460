# The two commands of the README: `make serve` and `make test`. Each sets up .venv first
# (once, and again whenever pyproject.toml changes), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on this project's machines it lies on disk. Override for a GPU box,
# e.g. `make test TORCH=torch==2.11.0`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test build captures smoke

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/python -m mkdocs serve --dev-addr 127.0.0.1:8000

test: $(STAMP)
	$(BIN)/python -m pytest

build: $(STAMP)
	$(BIN)/python -m mkdocs build --strict

# Every example at full size on a CUDA GPU, written into docs/captures/ (see docs/captures.md).
captures:
	PYTHONPATH=. $(PYTHON) -m examples

# Every example at smoke size on this machine's CPU, written to a scratch folder.
smoke: $(STAMP)
	$(BIN)/python -m examples --size smoke

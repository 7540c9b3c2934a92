# Two commands do everything: `make demo` and `make test`. Both create the virtual environment if it is missing.
# Installing again is fast: the environment is reused until pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS ?= all
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup test test-fast test-deepethogram demo lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/setup_venv.sh "$(VENV)" "$(EXTRAS)"
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Parity with DeepEthogram 0.5 itself: builds and trains a tiny project with the real package, installed in an
# environment of its own (never ours; see ../shared/peer/README.md): make test-deepethogram DEG_PEER_VENV=/path/to/venv
test-deepethogram: $(STAMP)
	DEG_PEER_VENV="$(DEG_PEER_VENV)" $(PY) -m pytest -q tests/deepethogram

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

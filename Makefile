# One task runner that developers, CI and the README all use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system test lint typecheck importlint kblint docs docs-check unit demo bench serve clean

install: $(STAMP) system

# Debian packages for PDF reports and browser tests (idempotent; a no-op when present).
system:
	@bash scripts/ensure_system_deps.sh

# Re-installs only when the dependency pins or the package metadata change.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

lint: install
	$(BIN)/ruff check src tests scripts

typecheck: install
	$(BIN)/mypy src tests scripts

importlint: install
	$(BIN)/lint-imports

kblint: install
	$(BIN)/python -m ketascreen.knowledge.check
	$(BIN)/python scripts/build_icd10cm.py --check

docs: install
	$(BIN)/python scripts/gen_docs.py

docs-check: install
	$(BIN)/python scripts/gen_docs.py --check

unit: install
	$(BIN)/python -m pytest -q

test: lint typecheck importlint kblint docs-check unit

demo: install
	$(BIN)/python scripts/demo.py

bench: install
	@for b in scripts/bench*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

serve: install
	$(BIN)/ketascreen serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

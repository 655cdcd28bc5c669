# One task runner that developers, CI and the README all use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck importlint kblint docs docs-check unit demo bench clean

install: $(STAMP)

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
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

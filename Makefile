# The two set-up commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint protos up clean

# Both distributions, editable: omnicdp-api (api/, the generated stubs) and omnicdp.
$(STAMP): pyproject.toml api/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./api -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cdp demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff, the architecture's import contracts (pyproject.toml), and buf lint + breaking.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	bash scripts/check_protos.sh

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

up: $(STAMP)
	$(BIN)/cdp up

clean:
	rm -rf .cdp .pytest_cache

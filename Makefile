# The two set-up commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Node tools of package.json: buf, and analytics.js with esbuild and playwright-core for
# tests/test_segment_browser.py (which also needs Debian's chromium: .ci/run installs it).
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint protos up clean floors

# Both distributions, editable: omnicdp-api (api/, the generated stubs) and omnicdp.
$(STAMP): pyproject.toml api/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./api -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/cdp demo

test: $(STAMP) $(NODE_STAMP)
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

# The dependency floors are true: the lowest version each floor admits, then the whole suite.
floors:
	$(PYTHON) -m venv .venv-floors-tool
	.venv-floors-tool/bin/python -m pip install --quiet uv
	.venv-floors-tool/bin/uv venv --quiet --python $(PYTHON) --seed .venv-floors
	VIRTUAL_ENV=$(CURDIR)/.venv-floors .venv-floors-tool/bin/uv pip install --quiet \
	  --resolution lowest-direct -e ./api -e '.[dev]'
	$(MAKE) $(NODE_STAMP)
	.venv-floors/bin/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf .cdp .pytest_cache .venv-floors .venv-floors-tool

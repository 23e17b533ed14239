# Two commands on a fresh machine with python3, pip and make:
#   make demo   - embedded broker + MLflow registry + baseline model + worker + simulator + dashboard
#   make test   - the whole test suite (unit tests first, then integration on a real broker and registry)
# Recipes are silent (@), so `make demo ARGS=... | jq` sees only the demo's JSON summary.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
DEV_STAMP := $(VENV)/.dev-stamp
BYTECODE_STAMP := $(VENV)/.bytecode-stamp
SOURCES := assetwatch agents features models schemas scoring tests
VENDOR := agents/local/dashboard_static/vendor
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
ARGS ?=
RUNTIME_REQ := -e '.[train,local]'
DEV_REQ := -e '.[train,local,dev]'

# Installs go through uv (PyPI's `uv`: parallel downloads and installs) when it can be had:
# a cold `make install` here took ~25 s with uv against ~120 s with pip. The venv is made
# without pip (ensurepip alone costs ~7 s on 2 cores) and the system pip puts uv into it.
# Where uv can't be installed, or fails (say, a mirror only pip.conf names), the venv gets
# pip and pip installs the same requirement. $(call install,REQUIREMENT)
define install
	if test -x $(BIN)/uv && $(BIN)/uv pip install --quiet --python $(BIN)/python $(1) >&2; then :; \
	else \
	  test ! -x $(BIN)/uv || echo "uv failed; installing with pip instead..." >&2; \
	  test -x $(BIN)/pip || $(BIN)/python -m ensurepip --default-pip >/dev/null; \
	  $(PIP) $(1) >&2; \
	fi
endef

.PHONY: install install-dev demo test lint bench vendor vendor-check clean

# What the demo needs: core (serving) + train (the baseline model, full MLflow's SQLite store)
# + local (the embedded broker); no test tools. README "Install" names the extras.
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing assetwatch[train,local] into $(VENV) (no test tools)..." >&2
	@$(call install,$(RUNTIME_REQ))
	@touch $@

# Everything: the demo's extras, then tests and linters on top.
$(DEV_STAMP): $(RUNTIME_STAMP) pyproject.toml
	@echo "installing the dev extra (pytest, mypy, ruff, ...)..." >&2
	@$(call install,$(DEV_REQ))
	@touch $@

# The venv, and uv in it when pip (any since 22.3, for --python) can fetch it; its output goes
# to $(VENV)/uv-bootstrap.log (named if it fails), so the first run prints no pip chatter.
$(BIN)/python:
	@$(PYTHON) -m venv --without-pip $(VENV)
	@$(PYTHON) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check uv \
		> $(VENV)/uv-bootstrap.log 2>&1 \
		|| echo "uv not installed (see $(VENV)/uv-bootstrap.log): installing with pip" >&2

# The test suite starts many Python processes (workers, their scoring helpers, CLI runs).
# uv installs no bytecode, and where PYTHONDONTWRITEBYTECODE is set (as on the CI image)
# none is written on import either, so each process compiled its imports afresh: importing
# mlflow's SQL store, faust, scikit-learn, pandas and onnxruntime took 14.4-15.6 s, 5.4-5.8 s
# once compiled. So the test venv is compiled once (~35 s on 2 cores); the project's own
# sources before each run (only what changed). The demo is left to compile on import: one
# start compiles only what it imports.
$(BYTECODE_STAMP): $(DEV_STAMP)
	@echo "compiling the venv's bytecode (once)..." >&2
	@$(BIN)/python -c 'import compileall, sys, sysconfig; \
	  sys.exit(not compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=1, workers=0))'
	@touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	@$(BIN)/assetwatch demo $(ARGS)

test: $(BYTECODE_STAMP)
	@$(BIN)/python -m compileall -q $(SOURCES) > /dev/null
	@$(BIN)/python -m pytest tests/unit
	@$(BIN)/python -m pytest tests/integration

lint: $(DEV_STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/mypy

bench: $(DEV_STAMP)
	@$(BIN)/python scripts/benchmark.py $(ARGS)

# The dashboard's chart library is committed under $(VENDOR) (the demo needs no npm);
# `make vendor` refreshes it from npm at the version web/package-lock.json pins, and
# `make vendor-check` (CI) proves the committed copy is that package's file, byte for byte.
vendor:
	@cd web && npm ci --no-audit --no-fund --silent
	@cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	@cp web/node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE

vendor-check:
	@cd web && npm ci --no-audit --no-fund --silent
	@cmp web/node_modules/uplot/dist/uPlot.iife.min.js $(VENDOR)/uPlot.iife.min.js
	@cmp web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/uPlot.min.css
	@cmp web/node_modules/uplot/LICENSE $(VENDOR)/uPlot.LICENSE
	@echo "vendored uPlot matches npm's uplot@$$(node -p 'require("./web/node_modules/uplot/package.json").version')"

clean:
	@rm -rf $(VENV) .assetwatch .pytest_cache .mypy_cache .ruff_cache web/node_modules test-artifacts

# The same commands for people and CI. A fresh machine needs only python3 (3.11+).
# uv is installed into .tools/ from PyPI; the virtualenv is .venv/, built from uv.lock.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench format clean screenshots

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

## demo: generate the demo company, load and resolve it, deliver it to the peer services, then serve the app on :8000
demo: $(VENV)/.synced
	$(VENV)/bin/accord demo demo-project

# The browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium \
		|| { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

## test: every test, on SQLite and PostgreSQL (127.0.0.1:5432, database test), and the browser tests in Chromium
test: $(VENV)/.synced $(CHROMIUM)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## screenshots: run the browser tests and keep their screenshots in docs/screenshots/
screenshots: $(VENV)/.synced $(CHROMIUM)
	ACCORD_SCREENSHOTS=docs/screenshots $(VENV)/bin/python -m pytest tests/browser -q

## lint: ruff and mypy (strict on src/)
lint: $(VENV)/.synced
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

## bench: reproducible benchmarks; results land in benchmarks/results/
bench: $(VENV)/.synced
	$(VENV)/bin/python benchmarks/pipeline.py
	$(VENV)/bin/python benchmarks/match_scale.py --customers 200000

format: $(VENV)/.synced
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache

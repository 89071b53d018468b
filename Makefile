# The README's commands. Everything runs in .venv, created on first use from requirements.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html
PORT   ?= 8000

.DEFAULT_GOAL := help

.PHONY: help book serve test lab check-lab export execute check-export lint reading-time unit notebooks notebooks-perturbed notebooks-both strict-book site bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## help: list these commands (a bare `make` prints this)
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## book: build the website from the chapters' stored outputs into _build/html
book: $(STAMP)
	$(BIN)/jupyter-book build .
	@echo
	@echo "The book is built. Open this file in a browser:"
	@echo "  $(CURDIR)/$(HTML)/index.html"

## serve: serve the built website on http://127.0.0.1:8000 (search and downloads work fully; Ctrl-C stops)
serve:
	@test -f $(HTML)/index.html || { echo "No website in $(HTML): run make book first."; exit 1; }
	@echo "Open http://127.0.0.1:$(PORT)/ in a browser; Ctrl-C stops the server."
	$(PYTHON) -m http.server $(PORT) --bind 127.0.0.1 --directory $(HTML)

## test: export check, lint, unit tests, strict nbval (twice: as is, and under perturbed numerics), strict book build, rendered-site check, chapters in JupyterLab; prints reading times
test: check-export lint reading-time unit notebooks-both strict-book site check-lab

check-export: $(STAMP)
	$(BIN)/python tools/export.py --check

## lint: ruff on the package, tools, tests, benchmarks and the chapters' code cells; formatting of all but the generated package
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check book tools tests bench _ext

reading-time:
	$(BIN)/python tools/reading_time.py book

unit: $(STAMP)
	$(BIN)/python -m pytest tests

# NOTEBOOKS=book/06_gradient_estimators.ipynb limits both notebook runs to one chapter.
NOTEBOOKS ?= book
# Other numerics for the second run: torch's scalar kernels instead of the vectorised ones, MKL's
# reproducible mode, one thread, and another allocation history (tools/perturbed/ipython).
# torch's compiler keys its on-disk cache without ATEN_CPU_CAPABILITY: the run gets its own
# cache, or it would load kernels compiled for the vector instructions it has turned off.
PERTURBED := MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 \
	IPYTHONDIR=$(CURDIR)/tools/perturbed/ipython \
	TORCHINDUCTOR_CACHE_DIR=$${TMPDIR:-/tmp}/ppl-inductor-perturbed

notebooks: $(STAMP)
	$(BIN)/python -m pytest $(NOTEBOOKS)

## notebooks-perturbed: strict nbval again under other numerics; every stored output must still match
notebooks-perturbed: $(STAMP)
	$(PERTURBED) $(BIN)/python -m pytest $(NOTEBOOKS)

# Both notebook runs at once, each output printed whole when it ends: on 2 cores 79 s instead of
# 109 s one after the other (the chapters' small tensors leave a core idle much of the time).
notebooks-both: $(STAMP)
	$(MAKE) -j2 --output-sync=target notebooks notebooks-perturbed

strict-book: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build --all -W -n --keep-going .

site: $(STAMP)
	$(BIN)/python tools/check_site.py $(HTML)

# Jupyter refuses to run as root unless told to (containers often run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

## lab: open the chapters in JupyterLab, MyST rendered (jupyterlab-myst), ppl importable
lab: $(STAMP)
	$(BIN)/jupyter lab $(ALLOW_ROOT) book

# A chapter opened in JupyterLab in headless Chromium: MyST rendered, math typeset, solutions collapsed.
check-lab: $(STAMP)
	$(BIN)/python tools/check_lab.py

## export: write src/ppl from the chapters' exported cells
export:
	$(PYTHON) tools/export.py

## execute: re-run every chapter in place to refresh its stored outputs
execute: $(STAMP)
	$(BIN)/python tools/execute.py

## bench: time an SVI step of ppl against hand-written torch and Pyro; print the table (a few minutes)
bench: $(STAMP)
	$(BIN)/python bench/run.py


clean:
	rm -rf _build api

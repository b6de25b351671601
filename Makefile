# Losses & Optimizers in PyTorch: the two commands a newcomer needs are `make lab` and `make test`.
#
#   make lab [HOST=127.0.0.1] [PORT=8888]   set up .venv if missing, then open the course in JupyterLab
#   make test                               set up .venv if missing, then run the whole test suite
#   make notebooks                          regenerate notebooks/ (student versions) from solutions/
#   make reset CHAPTER=03_sgd               restore one chapter's student notebook (yours is kept as a backup)
#   make bench                              print notebook times, grading speed, Validate times, widget redraw, optimizer state sizes, class report time

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8888
PYTEST_ARGS ?=
STAMP  := $(VENV)/.installed
# Jupyter refuses to run as root without --allow-root (containers, CI, Binder-like setups).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
CHAPTERS := $(notdir $(wildcard solutions/[0-9][0-9]_*))

# nbgrader shells out to alembic and jupyter: the venv's bin must come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

# The course's JupyterLab settings (jupyterlab/overrides.json): Markdown opens rendered, no news
# pop-up. jupyterlab/configure installs them; this target refreshes them when the file changes.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/lossopt-course.json
# Listings hide build artifacts too (jupyter_server's defaults plus *.egg-info).
HIDE_GLOBS := ['__pycache__', '*.pyc', '*.pyo', '.DS_Store', '*~', '*.egg-info']

.PHONY: setup lab test notebooks reset bench clean venv-moved

setup: $(STAMP) $(LAB_OVERRIDES)

# A venv holds absolute paths (its scripts' shebangs, the editable install's link to the
# checkout). One that came along when the course was copied or moved would still run, and grade
# with, the original checkout's code: such a venv is rebuilt here. Its activate script names the
# directory it was made for.
VENV_MADE_FOR := $(shell sed -n 's/^VIRTUAL_ENV="\(.*\)"$$/\1/p' $(VENV)/bin/activate 2>/dev/null)
VENV_MOVED := $(if $(VENV_MADE_FOR),$(filter-out $(realpath $(CURDIR))/$(VENV) $(CURDIR)/$(VENV),$(VENV_MADE_FOR)))

# Re-run the install only when the pins change (or the venv was made elsewhere); a second
# `make lab` reuses the environment.
$(STAMP): pyproject.toml constraints.txt $(if $(VENV_MOVED),venv-moved)
	@if [ -n "$(VENV_MOVED)" ]; then \
		echo "$(VENV) was made for $(VENV_MOVED), not for this copy of the course: rebuilding it"; \
		rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@# Validate, formgrader and the course's JupyterLab settings: the same script Binder and
	@# conda users run (jupyterlab/configure); PATH starts with $(BIN), so it configures .venv.
	bash jupyterlab/configure
	@touch $(STAMP)

$(LAB_OVERRIDES): jupyterlab/overrides.json $(STAMP)
	@mkdir -p $(dir $@)
	cp $< $@

# Opens README.md, rendered (Markdown Preview is the default viewer in jupyterlab/overrides.json).
lab: $(STAMP) $(LAB_OVERRIDES)
	@echo "Opening the course at http://$(HOST):$(PORT)/lab (the token is in the URL printed below)"
	$(BIN)/jupyter lab --no-browser --ServerApp.ip=$(HOST) --ServerApp.port=$(PORT) \
		--ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/README.md \
		--ContentsManager.hide_globs="$(HIDE_GLOBS)" $(ALLOW_ROOT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Student versions come from nbgrader, never from hand edits. A throwaway gradebook keeps the
# repository free of gradebook.db.
notebooks: $(STAMP)
	@tmp=$$(mktemp -d); \
	for ch in $(CHAPTERS); do \
		$(BIN)/nbgrader generate_assignment $$ch --force --log-level=WARN \
			--CourseDirectory.db_url=sqlite:///$$tmp/gradebook.db || exit 1; \
	done; rm -rf $$tmp

# A fresh student version of one chapter, from solutions/ as `make notebooks` makes it; the
# notebook it replaces is moved to backups/ first, never deleted.
reset: $(STAMP)
	@ch=$(notdir $(wildcard solutions/$(CHAPTER)*)); \
	if [ -z "$(CHAPTER)" ] || [ $$(echo $$ch | wc -w) -ne 1 ]; then \
		echo "usage: make reset CHAPTER=NN_topic (one of: $(CHAPTERS))"; exit 2; fi; \
	mkdir -p backups; \
	if [ -f notebooks/$$ch/$$ch.ipynb ]; then \
		backup=backups/$$ch-$$(date +%Y%m%d-%H%M%S).ipynb; \
		cp notebooks/$$ch/$$ch.ipynb $$backup && echo "your notebook is saved as $$backup"; fi; \
	tmp=$$(mktemp -d); \
	$(BIN)/nbgrader generate_assignment $$ch --force --log-level=WARN \
		--CourseDirectory.db_url=sqlite:///$$tmp/gradebook.db || exit 1; \
	rm -rf $$tmp; echo "notebooks/$$ch/$$ch.ipynb is the fresh student version"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_notebooks.py
	$(BIN)/python benchmarks/grading.py
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/widget_redraw.py
	$(BIN)/python benchmarks/optimizer_state.py
	$(BIN)/python benchmarks/class_report.py
	$(BIN)/python benchmarks/instructor_tools.py
	@# Chapter 7's GPU figures: exit 2 (nothing measured, nothing written) on a machine without CUDA.
	$(BIN)/python benchmarks/gpu.py || [ $$? -eq 2 ]

clean:
	rm -rf $(VENV) .pytest_cache .exchange gradebook.db autograded submitted feedback

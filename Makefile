# Losses & Optimizers in PyTorch: the two commands a newcomer needs are `make lab` and `make test`.
#
#   make lab [HOST=127.0.0.1] [PORT=8888]   set up .venv if missing, then open the course in JupyterLab
#   make test                               set up .venv if missing, then run the whole test suite
#   make notebooks                          regenerate notebooks/ (student versions) from solutions/
#   make bench                              print notebook times, grading speed, widget redraw, optimizer state sizes

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

.PHONY: setup lab test notebooks bench clean

setup: $(STAMP)

# Re-run the install only when the pins change; a second `make lab` reuses the environment.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/jupyter labextension enable @jupyter/nbgrader
	$(BIN)/jupyter server extension enable --sys-prefix nbgrader.server_extensions.validate_assignment
	$(BIN)/jupyter server extension enable --sys-prefix nbgrader.server_extensions.formgrader
	@touch $(STAMP)

lab: $(STAMP)
	@echo "Opening the course at http://$(HOST):$(PORT)/lab (the token is in the URL printed below)"
	$(BIN)/jupyter lab --no-browser --ServerApp.ip=$(HOST) --ServerApp.port=$(PORT) \
		--ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/README.md $(ALLOW_ROOT)

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

bench: $(STAMP)
	$(BIN)/python benchmarks/run_notebooks.py
	$(BIN)/python benchmarks/grading.py
	$(BIN)/python benchmarks/widget_redraw.py
	$(BIN)/python benchmarks/optimizer_state.py

clean:
	rm -rf $(VENV) .pytest_cache .exchange gradebook.db autograded submitted feedback

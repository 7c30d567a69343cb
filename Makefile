# weatherstream developer targets. Every target that needs the virtualenv creates it first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install stack-up stack-down stack-status test lint demo clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "weatherstream needs Python 3.10 or newer; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

stack-up: $(STAMP)
	$(BIN)/weatherstream stack up

stack-down: $(STAMP)
	$(BIN)/weatherstream stack down

stack-status: $(STAMP)
	$(BIN)/weatherstream stack status

test: $(STAMP)
	$(BIN)/weatherstream stack up
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/weatherstream stack up
	$(BIN)/weatherstream demo

lint: $(STAMP)
	$(BIN)/ruff check weatherstream agents models tests
	$(BIN)/ruff format --check weatherstream agents models tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

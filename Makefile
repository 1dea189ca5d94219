# loangate: two commands.
#   make run   set everything up, then serve the gateway on embedded defaults
#   make test  set everything up, then run the whole test suite (what CI runs)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean services

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,spark]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/loangate serve --demo

services:
	@bash scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check gateway adapters plugins tests bench
	$(BIN)/ruff format --check gateway adapters plugins tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gateway adapters plugins bench

test: $(STAMP) services lint typecheck
	$(BIN)/pytest -n 4 --dist loadgroup $(PYTEST_ARGS)

bench: $(STAMP)
	bash bench/run.sh all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis

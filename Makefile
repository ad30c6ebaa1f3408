# The two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup run test lint bench clean

$(BIN)/spendgate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/spendgate ## create .venv and install spendgate with its dev tools

run: setup ## run spendgate on SQLite with demo data (simulated upstream unless a provider key is set)
	$(BIN)/spendgate serve --demo

lint: setup ## ruff, formatting, mypy and the import layer rules
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint ## every check, then the whole test suite
	$(BIN)/pytest -q

bench: setup ## throughput and latency benchmarks (needs wrk); writes docs/benchmarks.md
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Each public target sets itself up from a fresh clone: a venv with the package and its dev extra,
# and the npm packages (Azurite) from the lock file.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: setup demo test lint bench clean browser

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is required (Node.js 18+): install node and npm" >&2; exit 2; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Runs the tutorial on the local target (Azurite + the Batch emulator, started in the background
# and left running; `.venv/bin/batchspec local down` stops them), then shows each input's top words.
demo: setup
	$(BIN)/batchspec apply specs/topn.yaml --auto-approve
	@for f in specs/out/*_OUTPUT.txt; do echo; echo "== $$f"; cat "$$f"; done

# The run report's browser test drives Debian's chromium (playwright launches that executable; its
# own browser download cannot reach the internet). Installed here where it can be (root, apt);
# elsewhere that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium could not be installed: the run report's browser test will be skipped"

# A pytest worker more than the cores, at most four (tests/conftest.py): each starts its own local
# services on free ports, and the tests mostly wait on them. `make test PYTEST_ARGS=-n0` runs in
# one process.
PYTEST_ARGS ?= -n auto --maxprocesses 4
test: setup browser
	$(BIN)/ruff check batchspec tests node benchmarks
	$(BIN)/ruff format --check batchspec tests node benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check batchspec tests node benchmarks
	$(BIN)/ruff format --check batchspec tests node benchmarks

# Every benchmarks/*.py except helper modules (_*.py); `make bench BENCH_ARGS=--quick` for a smoke
# run, `BENCH_ARGS=--check` to fail on a missed target. Figures go to benchmarks/results.json.
# `BENCH_TASKS="10000 100000"` runs tasks_10k.py at each size (100,000: over an hour).
BENCH_ARGS ?=
BENCH_TASKS ?=
bench: setup browser
	@for b in benchmarks/*.py; do case "$${b##*/}" in _*) continue;; esac; \
		if [ "$${b##*/}" = tasks_10k.py ] && [ -n "$(BENCH_TASKS)" ]; then \
			for n in $(BENCH_TASKS); do echo "== $$b --tasks $$n"; \
				$(BIN)/python $$b --tasks $$n $(BENCH_ARGS) || exit 1; done; continue; fi; \
		echo "== $$b"; $(BIN)/python $$b $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) node_modules .pytest_cache .batchspec out

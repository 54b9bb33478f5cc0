# Set-up and go: `make demo`, `make test`. Everything lives in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast test-durations lint docs models clean

install: $(STAMP)

# torch first, pinned to the local CPU wheel (2.13.0); where that exact version cannot be had,
# fall back to the default index with the package's own range.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 || $(BIN)/pip install --quiet "torch>=2.3,<3"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

# LeNet-5 on the MNIST bundled in data/mnist: one epoch, evaluated on the test set (~20 s on 2 cores)
demo: $(STAMP)
	$(BIN)/imgcls train --data mnist:data/mnist --model lenet5 --epochs 1

# the whole suite (what CI runs): one worker per core, each test file whole in one worker, the longest
# files first (tests/conftest.py orders them by tests/durations.json; xdist keeps that order); the 30
# slowest tests are listed at the end (where its minutes go)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=30

# the quick tier to run while working (tests/conftest.py: the quickest tests by tests/durations.json)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m fast

# the whole suite, recording each test's seconds into tests/durations.json (what picks the quick tier)
test-durations: $(STAMP)
	IMGCLS_RECORD_DURATIONS=tests/durations.json $(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=30

# ruff's lint rules and formatting (pyproject.toml), checked, not applied: `ruff format` applies them
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the documentation site (MkDocs + Material) into site/; strict: a broken link or reference fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache site

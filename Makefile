# The course's single entry point. `make setup` once, then `make lab` or `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# pytest exits 5 when it collected no test; that is not a failure here.
PYTEST = $(PY) -m pytest

.PHONY: setup build lint test test-unit test-integration test-notebooks lab progress sheets grade download benchmark zoo zoo-verify clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

build: setup
	rm -rf build/notebooks  # no stale notebook of a renamed or removed chapter
	$(PY) -m course_utils build

# Lint first, then the unit tests over JOBS processes (pytest-xdist). The unit tests execute every solution
# notebook in strict mode (tests/test_sheets.py, with the course's notebook runner), so `make test` does not
# run them a second time; `make test-notebooks` runs them alone with nbmake. `make test-integration` runs the
# course in other settings, end to end (every notebook on its hub model, a zoo retrain twice, the installed
# wheel: minutes more); CI runs both.
JOBS ?= 2

test: lint test-unit

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The suite over JOBS processes, a sheet's tests on one of them, the 15 slowest tests printed.
SUITE = $(PYTEST) -n $(JOBS) --dist loadgroup --durations=15

test-unit: setup
	$(SUITE) -m "not integration" tests || [ $$? -eq 5 ]

test-integration: setup
	$(SUITE) -m integration tests || [ $$? -eq 5 ]

test-notebooks: build
	COURSE_STRICT_CHECKS=1 $(PYTEST) -n $(JOBS) --nbmake --nbmake-timeout=600 build/notebooks/solutions || [ $$? -eq 5 ]

# Your own copy of the learner notebooks in workspace/, then JupyterLab there.
# ARGS passes options: make lab ARGS="--force", make progress ARGS="01 02", make sheets ARGS="--pdf",
# make grade ARGS="submissions/ --jobs 4".
lab: setup
	$(PY) -m course_utils workspace $(ARGS)

# Runs copies of your workspace notebooks headless and prints which checks pass.
progress: setup
	$(PY) -m course_utils progress $(ARGS)

# Exercise and solution sheets (offline HTML, printable) in build/sheets/.
sheets: setup
	$(PY) -m course_utils sheets $(ARGS)

# Runs a class's notebooks (one folder per student) and writes build/grades/: grades.csv and feedback pages.
grade: setup
	$(PY) -m course_utils grade $(ARGS)

# While online: hub models into the Hugging Face cache, so that load_model finds them offline later.
# make download ARGS="gpt2-small gpt2-medium hub:attn-only-2l hub:attn-only-1l"
download: setup
	$(PY) -m course_utils download $(ARGS)

benchmark: build
	$(PY) benchmarks/run_course.py
	$(PY) benchmarks/patching_sweep.py

zoo: setup
	$(PY) -m course_utils.zoo

# Retrains the zoo into a temporary folder and compares every file with the shipped one (sha256).
zoo-verify: setup
	$(PY) -m course_utils.zoo --verify $(ARGS)

clean:
	rm -rf build

# Course kit for EECS 545 HW4. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Tests and benchmarks use the shared data when it is there; the kit never needs it.
SHARED_DATA := $(abspath $(wildcard ../shared/data))

.PHONY: run test bench report venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(PY) -m course.run

test: $(STAMP)
	@# Two test workers, one BLAS/OpenMP thread each: oversubscribed BLAS threads spin and crawl.
	HWLIB_TEST_SHARED_DATA=$(SHARED_DATA) OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: $(STAMP)
	$(PY) -m bench

# The executed notebooks (from make run) as one report: HTML always, PDF when LaTeX is installed.
report: $(STAMP)
	$(PY) -m course.report
	$(PY) -m course.report --flavour report

clean:
	rm -rf build

# --- grading (grading/README.md) ---------------------------------------------------------------
# The student release: build/release/hw4/ and build/release/hw4.zip (checked for leaks).
.PHONY: release autograde
release: $(STAMP)
	$(PY) -m grading release

# Grade SUBMISSIONS (nbgrader's <student>/hw4/ folders or per-student zips) into build/course/.
# Without SUBMISSIONS it grades the generated sample submissions (written to build/samples first).
# AUTOGRADE_ARGS passes options (python -m grading autograde --help), e.g. "--notebooks 01_layers".
SUBMISSIONS ?= build/samples
AUTOGRADE_ARGS ?=
autograde: $(STAMP)
	@test -f build/course/gradebook.db -a -d build/course/release/hw4 || $(PY) -m grading release
	@test -e $(SUBMISSIONS) || $(PY) -m grading samples $(SUBMISSIONS)
	$(PY) -m grading autograde $(SUBMISSIONS) $(AUTOGRADE_ARGS)

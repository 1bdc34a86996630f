# Course kit for EECS 545 HW4. `make run` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Tests and benchmarks use the shared data when it is there; the kit never needs it.
SHARED_DATA := $(abspath $(wildcard ../shared/data))

.PHONY: run test test-ui lab bench bench-training report venv clean

venv: $(STAMP)

# PyTorch's build. Unset (the default): PyPI's wheels, which install everywhere (on Linux the CUDA
# build, about 4 GB of NVIDIA libraries). TORCH=cpu: the CPU-only wheels from PyTorch's own index (the
# same versions, +cpu), for machines without an NVIDIA GPU. .venv remembers the choice in its stamp;
# to switch, remove .venv. (grading/release/environments.py holds the same index for the release.)
TORCH_INSTALLED := $(strip $(shell cat $(STAMP) 2>/dev/null))
TORCH ?= $(TORCH_INSTALLED)
TORCH_INDEX_cpu := --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
ifneq ($(filter-out cpu,$(TORCH)),)
$(error TORCH=$(TORCH): use TORCH=cpu (PyTorch's CPU-only wheels) or leave TORCH unset (PyPI's wheels))
endif
ifneq ($(wildcard $(STAMP)),)
ifneq ($(TORCH),$(TORCH_INSTALLED))
$(error $(VENV) holds PyTorch $(if $(TORCH_INSTALLED),TORCH=$(TORCH_INSTALLED),from PyPI); remove $(VENV) to install $(if $(TORCH),TORCH=$(TORCH),PyPI's PyTorch))
endif
endif

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[instructor,dev]' $(TORCH_INDEX_$(TORCH))
ifeq ($(TORCH),cpu)
	@# pip falls back to PyPI's CUDA wheel when PyTorch's index cannot be reached: say so, loudly.
	@$(PY) -c "import importlib.metadata as m, sys; v = m.version('torch'); \
		sys.exit(0 if v.endswith('+cpu') else f'TORCH=cpu installed torch {v}, not the CPU-only build: is download.pytorch.org reachable? remove $(VENV) and retry')"
endif
	@echo '$(TORCH)' > $@

run: $(STAMP)
	$(PY) -m course.run

test: $(STAMP)
	$(PY) -m ruff check .
	@# Two test workers, one BLAS/OpenMP thread each: oversubscribed BLAS threads spin and crawl.
	HWLIB_TEST_SHARED_DATA=$(SHARED_DATA) OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PY) -m pytest -q -n 2 --dist loadfile tests

# The real-browser test alone (make test runs it too): JupyterLab with the course's settings in Debian's
# Chromium (`apt-get install chromium`), driven by Playwright; screenshots go to build/ui/.
test-ui: $(STAMP)
	HWLIB_TEST_SHARED_DATA=$(SHARED_DATA) OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(PY) -m pytest -q -p no:xdist tests/test_ui.py

# JupyterLab with the course's settings (jupyter/settings/overrides.json), README.md first.
lab: $(STAMP)
	$(PY) -m hwlib.lab

# Layers and models, each implementation in a fresh process (bench/__init__.py says how); about 8 min.
bench: $(STAMP)
	$(PY) -m bench

# Notebook 03's graded training (10 epochs of full MNIST) in hwlib and in PyTorch; about 4 min. Needs the
# full MNIST files: DATA_ROOT=DIR (default: ../shared/data where it exists, else the kit's data/).
DATA_ROOT ?= $(if $(SHARED_DATA),$(SHARED_DATA),data)
bench-training: $(STAMP)
	$(PY) -m bench --only training --data-root $(DATA_ROOT)

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

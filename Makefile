# sam2-triton: `make demo` and `make test` each set up everything they need from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= tiny

.PHONY: install demo test lint serve export lock clean

install: $(STAMP)

# torch 2.14.1 + torchvision 0.29.1: the pair that imports together on these machines (see
# docs/setup.md). sam2==1.1.0 is installed without its (CUDA-building) dependencies.
$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[export,dev,loadtest]'
	SAM2_BUILD_CUDA=0 $(PY) -m pip install --quiet --no-deps --no-build-isolation sam2==1.1.0
	$(PY) -m pip check
	touch $(STAMP)

demo: install
	$(VENV)/bin/sam2-triton demo --model $(MODEL)

test: install
	$(VENV)/bin/ruff check src tests client_examples benchmarks
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests client_examples benchmarks
	$(VENV)/bin/ruff format --check src tests client_examples benchmarks

export: install
	$(VENV)/bin/sam2-triton export --model $(MODEL) --random-weights

serve: install
	$(VENV)/bin/sam2-triton serve --model $(MODEL)

# Re-pin requirements/constraints.txt from the current .venv.
lock:
	{ head -2 requirements/constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^sam2=='; } > requirements/constraints.new
	mv requirements/constraints.new requirements/constraints.txt

clean:
	rm -rf build model_repository/sam2_* outputs

# sam2-triton: `make demo` and `make test` each set up everything they need from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL ?= tiny
# make loadtest: Locust users, users started per second, duration, HTTP and gRPC endpoints.
LOADTEST_USERS ?= 8
LOADTEST_SPAWN_RATE ?= 2
LOADTEST_RUN_TIME ?= 2m
LOADTEST_HOST ?= http://127.0.0.1:8000
LOADTEST_GRPC_HOST ?= 127.0.0.1:8001
LOADTEST_OUT ?= outputs/loadtest

.PHONY: help install demo test lint serve ui cluster export repository loadtest lock clean \
	perf-analyzer x-anylabeling label-studio

install: $(STAMP)

# torch 2.14.1 + torchvision 0.29.1: the pair that imports together on these machines (see
# docs/setup.md). sam2==1.1.0 is installed without its (CUDA-building) dependencies.
$(STAMP): pyproject.toml setup.py requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	@# the export code moved to export/: bytecode left in its old folder would shadow it
	@if [ -d src/sam2_triton/export ] && [ -z "$$(find src/sam2_triton/export -name '*.py')" ]; then \
		rm -rf src/sam2_triton/export; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -c requirements/constraints.txt -e '.[export,dev,loadtest,openvino]'
	SAM2_BUILD_CUDA=0 $(PY) -m pip install --quiet --no-compile --no-deps --no-build-isolation sam2==1.1.0
	@# sam3 pins tqdm<4.68 and typing_extensions<4.16, which its code does not need: it is left
	@# out of the check (its imports are pinned in pyproject.toml's export extra)
	$(PY) -m pip uninstall --quiet --yes sam3 2>/dev/null
	$(PY) -m pip check
	$(PY) -m pip install --quiet --no-compile --no-deps sam3==0.1.4
	touch $(STAMP)

demo: install
	$(VENV)/bin/sam2-triton demo --model $(MODEL)

# Triton's perf_analyzer (tritonclient 2.41.0's binary: newer ones need glibc 2.38), with the
# libraries it links from nvidia-pytriton (docs/benchmarks.md#perf_analyzer).
PERF_ANALYZER := build/perf_analyzer/perf_analyzer
$(PERF_ANALYZER): $(STAMP)
	$(PY) -m sam2_triton.bench.perf_analyzer install build/perf_analyzer

perf-analyzer: $(PERF_ANALYZER)

# X-AnyLabeling's own client in a venv of its own (PyQt6, its OpenCV): the gateway's tests
# drive it headless (tests/anylabeling_client.py, docs/integrations.md).
X_ANYLABELING := build/x-anylabeling/.installed
$(X_ANYLABELING): requirements/x-anylabeling.txt
	$(PYTHON) -m venv build/x-anylabeling
	build/x-anylabeling/bin/python -m pip install --quiet --no-compile \
		-c requirements/x-anylabeling.txt x-anylabeling-cvhub==4.2.1
	touch $(X_ANYLABELING)

x-anylabeling: $(X_ANYLABELING)

# Label Studio itself (and its SDK: label-studio-sdk needs numpy 2, so never in .venv), in a
# venv of its own: tests/test_e2e_label_studio.py starts it with SQLite on loopback, on a copy
# of the database migrated here (any command migrates it; the first start would, for ~15 s).
LABEL_STUDIO := build/label-studio/.installed
$(LABEL_STUDIO): requirements/label-studio.txt
	$(PYTHON) -m venv build/label-studio
	build/label-studio/bin/python -m pip install --quiet --no-compile \
		-c requirements/label-studio.txt label-studio==1.23.2
	rm -rf build/label-studio/data
	LABEL_STUDIO_BASE_DATA_DIR=$(CURDIR)/build/label-studio/data \
		build/label-studio/bin/label-studio version > /dev/null
	touch $(LABEL_STUDIO)

label-studio: $(LABEL_STUDIO)

test: install $(PERF_ANALYZER) $(X_ANYLABELING) $(LABEL_STUDIO)
	$(VENV)/bin/ruff check src export tests client_examples loadtest benchmarks
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src export tests client_examples loadtest benchmarks
	$(VENV)/bin/ruff format --check src export tests client_examples loadtest benchmarks

export: install
	$(VENV)/bin/sam2-triton export --model $(MODEL) --random-weights --video

# Regenerate the committed model_repository/ (GPU target, default options) from the plan: no
# torch, no export; tests/test_committed_repository.py fails when it differs.
repository: install
	$(VENV)/bin/sam2-triton build-repo --target gpu --configs-only

serve: install
	$(VENV)/bin/sam2-triton serve --model $(MODEL)

# The web app on http://127.0.0.1:7860/ with the embedded server it starts (docs/ui.md).
ui: install
	$(VENV)/bin/sam2-triton ui --serve --model $(MODEL)

# REPLICAS embedded servers behind nginx (:8000 HTTP, :8001 gRPC) and Prometheus (:9090); needs
# Debian's nginx and prometheus (docs/operations.md).
REPLICAS ?= 2
cluster: install
	$(VENV)/bin/sam2-triton cluster --model $(MODEL) --replicas $(REPLICAS)

# Needs a server already running (make serve in another shell); stops after LOADTEST_RUN_TIME,
# letting requests in flight finish (up to 60 s more). Exit code 1 if any request failed.
loadtest: install
	@echo "load test of the server at $(LOADTEST_HOST) and $(LOADTEST_GRPC_HOST) (start it first: make serve)"
	mkdir -p $(LOADTEST_OUT)
	$(VENV)/bin/locust -f loadtest/locustfile.py --headless \
		--host $(LOADTEST_HOST) --grpc-host $(LOADTEST_GRPC_HOST) \
		--users $(LOADTEST_USERS) --spawn-rate $(LOADTEST_SPAWN_RATE) \
		--run-time $(LOADTEST_RUN_TIME) --stop-timeout 60 \
		--csv $(LOADTEST_OUT)/sam2 --html $(LOADTEST_OUT)/report.html

help:
	@echo "make demo      set up, export tiny (random weights offline), serve, segment, stop"
	@echo "make test      set up, then ruff and pytest (unit, export parity, end-to-end)"
	@echo "make serve     serve MODEL=$(MODEL) on :8000 (HTTP), :8001 (gRPC), :8002 (metrics)"
	@echo "make ui        the web app on http://127.0.0.1:7860/ with an embedded MODEL=$(MODEL) server"
	@echo "make cluster   REPLICAS=$(REPLICAS) servers behind nginx on :8000/:8001, Prometheus :9090"
	@echo "make loadtest  Locust against an ALREADY RUNNING server (run 'make serve' in another"
	@echo "               shell first): LOADTEST_USERS=$(LOADTEST_USERS)" \
	      "LOADTEST_SPAWN_RATE=$(LOADTEST_SPAWN_RATE) LOADTEST_RUN_TIME=$(LOADTEST_RUN_TIME)"
	@echo "               LOADTEST_HOST=$(LOADTEST_HOST) LOADTEST_GRPC_HOST=$(LOADTEST_GRPC_HOST);"
	@echo "               CSV and HTML reports in $(LOADTEST_OUT)/ (see docs/loadtest.md)"
	@echo "make repository  regenerate the committed model_repository/ (GPU target configs)"
	@echo "make perf-analyzer  Triton's perf_analyzer in build/perf_analyzer/ (docs/benchmarks.md)"
	@echo "make lint | export | lock | clean"

# Re-pin requirements/constraints.txt from the current .venv.
lock:
	{ head -2 requirements/constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^sam[23]=='; } > requirements/constraints.new
	mv requirements/constraints.new requirements/constraints.txt

clean:
	rm -rf build outputs

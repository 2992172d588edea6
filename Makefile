# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
VENV  ?= .venv
PY    := $(VENV)/bin/python
# torch is installed first and pinned: a bare `torch` requirement would pull a newer multi-GB CUDA build.
TORCH ?= torch==2.14.1 torchvision==0.29.1
# CPU-only torch (no CUDA libraries): make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: install demo test lint benchmark

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml runtime/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q -e runtime  # the torch-free runtime (runtime/), tested by tests/test_runtime.py
	touch $@

demo: install
	$(VENV)/bin/lcnet-yolo demo

test: install
	$(PY) -m pytest -n 2 --dist loadfile  # test files spread over two worker processes

lint: install
	$(VENV)/bin/ruff check src tests runtime benchmarks && $(VENV)/bin/ruff format --check src tests runtime benchmarks

benchmark: install
	$(VENV)/bin/lcnet-yolo benchmark

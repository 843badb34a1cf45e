# The two quickstart commands: `make train` (the main job) and `make test`.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision: the CUDA wheels run on CPU too; 2.14.1/0.29.1 are the newest this
# workplace's pip serves. Any torch >= 2.2 with a matching torchvision works for users.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
TRAIN_ARGS ?=

.PHONY: venv train test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

train: venv
	$(BIN)/reslearn train $(TRAIN_ARGS)

lint: venv
	$(BIN)/ruff check src tests benchmarks hubconf.py

test: venv lint
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/reslearn bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info

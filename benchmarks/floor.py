"""The floor: what one PPO step must cost on this machine, from FLOPs and bytes, and what the machine does.

`probe_machine()` measures matmul rates (fp32, bf16) and memory bandwidth here; `step_work()` counts the
FLOPs (and, for decoding, the bytes) of each phase of one PPO step from the model config and the shapes
a run recorded; `floor_table()` divides the two and sets the floors beside measured phase times.

Counting rules (a floor, so optimistic): a forward pass costs 2 FLOPs per weight of every linear layer
per token, plus causal attention (QK^T and AV: 2 x 2 x q_dim x context / 2 per token per layer); the LM
head (vocab x hidden) only where logits are needed. The backward of frozen weights with LoRA costs one
forward (input gradients only), of trained full weights two. Decoding one token reads every weight once
and the KV cache; its floor is the larger of compute time and read time, step by step.
"""

from __future__ import annotations

import platform
import subprocess
import time

import torch

BYTES = {"fp32": 4, "bf16": 2}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def cpu_description() -> dict:
    """lscpu's model name, cores and flags of interest (or what Python knows when lscpu is missing)."""
    info = {"model": platform.processor() or platform.machine(), "cpus": torch.get_num_threads()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return info
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("Flags", "").split()
    info.update(model=fields.get("Model name", info["model"]), cpus=int(fields.get("CPU(s)", info["cpus"])),
                threads_per_core=fields.get("Thread(s) per core"), amx="amx_bf16" in flags,
                avx512_bf16="avx512_bf16" in flags)
    return info


def cpu_line(cpu: dict) -> str:
    """One line for a report: model, CPU count and the flags that decide whether bf16 is fast."""
    return (f"{cpu['model']}, {cpu['cpus']} CPUs (threads/core {cpu.get('threads_per_core')}, "
            f"AMX {cpu.get('amx')}, AVX512-BF16 {cpu.get('avx512_bf16')})")


def _timed_rate(fn, work: float, seconds: float) -> float:
    """work / seconds of one call of `fn`, best of repeated calls within a time budget (after one warm-up)."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < seconds or best == float("inf"):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
    return work / best


def matmul_flops(dtype: str, n: int, seconds: float) -> float:
    """FLOP/s of an n x n x n matmul in `dtype`."""
    a = torch.randn(n, n, dtype=TORCH_DTYPES[dtype])
    b = torch.randn(n, n, dtype=TORCH_DTYPES[dtype])
    return _timed_rate(lambda: a @ b, 2.0 * n ** 3, seconds)


def read_bandwidth(megabytes: int, seconds: float) -> float:
    """Bytes/s of summing a float32 tensor much larger than the caches."""
    x = torch.rand(megabytes * (1 << 20) // 4)
    return _timed_rate(lambda: x.sum(), x.numel() * 4.0, seconds)


def probe_machine(seconds: float = 2.0, matmul_n: int = 2048, megabytes: int = 512) -> dict:
    """The rates the floor divides by; `seconds` bounds each measurement."""
    return {"cpu": cpu_description(), "torch_threads": torch.get_num_threads(), "matmul_n": matmul_n,
            "matmul_flops": {d: matmul_flops(d, matmul_n, seconds) for d in TORCH_DTYPES},
            "read_bytes_per_s": read_bandwidth(megabytes, seconds)}


def model_sizes(config: dict) -> dict:
    """Weights per token of a Llama-style decoder config: trunk linears, LM head, and attention widths."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q_dim = config["num_attention_heads"] * head_dim
    kv_dim = config.get("num_key_value_heads", config["num_attention_heads"]) * head_dim
    per_layer = hidden * q_dim * 2 + hidden * kv_dim * 2 + 3 * hidden * config["intermediate_size"]
    return {"trunk": layers * per_layer, "head": hidden * config["vocab_size"], "layers": layers,
            "q_dim": q_dim, "kv_dim": kv_dim}


def forward_flops(sizes: dict, sequences: int, length: int, with_head: bool) -> float:
    """FLOPs of one forward pass over `sequences` x `length` tokens (causal attention over the sequence)."""
    tokens = sequences * length
    linear = 2.0 * tokens * (sizes["trunk"] + (sizes["head"] if with_head else 0))
    attention = 2.0 * sizes["layers"] * sizes["q_dim"] * sequences * length * length  # 4 x q_dim x L^2 / 2
    return linear + attention


def generation_floor(sizes: dict, batch: int, prompt: int, response: int, dtype: str, machine: dict) -> tuple:
    """(FLOPs, bytes read, floor seconds) of sampling `response` tokens after a `prompt`-token prefill."""
    rate, bandwidth = machine["matmul_flops"][dtype], machine["read_bytes_per_s"]
    prefill = forward_flops(sizes, batch, prompt, with_head=False) + 2.0 * batch * sizes["head"]
    flops, read, seconds = prefill, 0.0, prefill / rate
    weight_bytes = (sizes["trunk"] + sizes["head"]) * BYTES[dtype]
    for t in range(response):
        context = prompt + t
        attention = 4.0 * sizes["layers"] * sizes["q_dim"] * batch * context
        step_flops = 2.0 * batch * (sizes["trunk"] + sizes["head"]) + attention
        step_bytes = weight_bytes + 2.0 * sizes["layers"] * sizes["kv_dim"] * batch * context * BYTES[dtype]
        flops, read = flops + step_flops, read + step_bytes
        seconds += max(step_flops / rate, step_bytes / bandwidth)
    return flops, read, seconds


def step_work(sizes: dict, shapes: dict, batch: int, design: dict, micro_batch: int) -> dict[str, float]:
    """FLOPs per phase of one PPO step (generation is handled by generation_floor).

    shapes: prompt_width, response_width, reward_tokens as a run recorded them.
    design: policy_logprob_pass (a policy forward for the rollout log-probs instead of the sampling
    logits), value_full and policy_full (full weights trained: backward costs 2 forwards), recompute
    (gradient checkpointing: the backward phase reruns the trunk forwards), shared_critic (the value head
    reads the policy's trunk: no value pass of its own, one backward), kept_first_pass (the update's first
    micro-batch of `micro_batch` rows runs its training forward while the old statistics are taken, and that
    forward also gives those rows' old log-probs: the policy's rollout pass covers only the other rows; the
    kept forward is timed, and counted, as train_forward). A recorded `shared_prefix` (ours:
    ppo.share_prompt_start) is the number of tokens every prompt starts with that each pass runs once for all
    its rows: each pass over n rows saves n - 1 forwards of them.
    """
    length = shapes["prompt_width"] + shapes["response_width"]
    shared_start = forward_flops(sizes, 1, shapes.get("shared_prefix", 0), with_head=False)

    def saved(rows: int, passes: int) -> float:  # the shared start's forwards a phase does not run
        return (rows - passes) * shared_start

    update_passes = -(-batch // micro_batch)
    policy = forward_flops(sizes, batch, length, with_head=True)
    trunk = forward_flops(sizes, batch, length, with_head=False)
    reward_length = shapes.get("reward_tokens", batch * length) / batch
    value_rollout = 0.0 if design.get("shared_critic") else trunk - saved(batch, 1)
    value = 0.0 if design.get("shared_critic") else trunk - saved(batch, update_passes)
    train_policy = policy - saved(batch, update_passes)
    backward = train_policy * (2 if design["policy_full"] else 1) + value * (2 if design["value_full"] else 1)
    if design.get("recompute"):
        backward += trunk + value
    rollout_rows = batch - micro_batch if design.get("kept_first_pass") else batch
    policy_rollout = policy * rollout_rows / batch - saved(rollout_rows, 1)
    return {"rollout_logprobs": policy - saved(batch, 1) + (policy_rollout if design["policy_logprob_pass"] else 0),
            "rollout_values": value_rollout,
            "reward": forward_flops(sizes, batch, int(reward_length), with_head=False),
            "train_forward": train_policy + value,
            "backward": backward}


def floor_table(result: dict, sizes: dict, machine: dict, batch: int, design: dict, micro_batch: int) -> list[dict]:
    """Rows (phase, measured s, GFLOP, GB read, floor s, measured / floor) for one run's mean step."""
    shapes = _mean_shapes(result["steps"][-result["measured_steps"]:])
    dtype, rate = result["dtype"], machine["matmul_flops"][result["dtype"]]
    gen_flops, gen_bytes, gen_floor = generation_floor(sizes, batch, shapes["prompt_width"],
                                                       shapes["response_width"], dtype, machine)
    rows = [("generation", gen_flops, gen_bytes, gen_floor)]
    work = step_work(sizes, shapes, batch, design, micro_batch)
    rows += [(phase, flops, 0.0, flops / rate) for phase, flops in work.items()]
    measured = result["phase_s"]
    table = [{"phase": p, "measured_s": measured.get(p, 0.0), "gflop": f / 1e9, "gb_read": b / 1e9, "floor_s": s,
              "x_floor": measured.get(p, 0.0) / s if s else None} for p, f, b, s in rows]
    total_floor = sum(r["floor_s"] for r in table)
    table.append({"phase": "step (incl. other)", "measured_s": result["step_s"],
                  "gflop": sum(r["gflop"] for r in table),
                  "gb_read": sum(r["gb_read"] for r in table), "floor_s": total_floor,
                  "x_floor": result["step_s"] / total_floor})
    return table


def _mean_shapes(steps: list[dict]) -> dict:
    keys = {k for s in steps for k in s.get("shapes", {})}
    return {k: round(sum(s["shapes"].get(k, 0) for s in steps) / len(steps)) for k in keys}

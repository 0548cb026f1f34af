"""The floor counts a shared prompt start once per pass."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from floor import forward_flops, step_work  # noqa: E402

SIZES = {"trunk": 1000, "head": 500, "layers": 2, "q_dim": 8, "kv_dim": 4}
OURS = {"policy_logprob_pass": True, "kept_first_pass": True, "shared_critic": True, "policy_full": False,
        "value_full": False}


def test_each_pass_runs_the_shared_start_once_for_all_its_rows():
    shapes = {"prompt_width": 30, "response_width": 10, "reward_tokens": 8 * 20}
    plain = step_work(SIZES, shapes, batch=8, design=OURS, micro_batch=4)
    shared = step_work(SIZES, dict(shapes, shared_prefix=12), batch=8, design=OURS, micro_batch=4)
    start = forward_flops(SIZES, 1, 12, with_head=False)
    # the reference over 8 rows and the policy over the 4 rows the kept pass leaves: one pass each
    assert plain["rollout_logprobs"] - shared["rollout_logprobs"] == pytest.approx((7 + 3) * start)
    # the update: two micro-batches of 4, each running the start once, forward and backward
    assert plain["train_forward"] - shared["train_forward"] == pytest.approx(6 * start)
    assert plain["backward"] - shared["backward"] == pytest.approx(6 * start)
    assert shared["reward"] == plain["reward"] and shared["rollout_values"] == plain["rollout_values"] == 0

"""Forwards that run the prompts' common start once give the plain forward's log-probs and gradients."""

import dataclasses

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf_ads.errors import RlhfAdsError
from rlhf_ads.ppo.models import checkpoint_layers
from rlhf_ads.ppo.rollout import Rollout, response_logprobs
from rlhf_ads.ppo.shared_prefix import MIN_SHARED_TOKENS, common_prefix_length


def left_padded(rows: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) (B, P) of token rows padded on the left."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def test_the_common_start_is_counted_from_each_rows_first_token_and_leaves_the_last():
    assert common_prefix_length(*left_padded([[7, 8, 9, 5, 6], [7, 8, 9, 4, 6, 6, 6], [7, 8, 9, 5, 1, 2]])) == 3
    assert common_prefix_length(*left_padded([[1, 2, 3, 4], [1, 2, 3, 4, 5]])) == 3  # row 1 keeps its last token
    assert common_prefix_length(*left_padded([[1, 2, 3], [4, 2, 3]])) == 0
    assert common_prefix_length(*left_padded([[1, 2, 3]])) == 0  # one row: nothing to share
    assert common_prefix_length(*left_padded([[1], [1, 2]])) == 0


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).float().eval()


def rollout_with_a_common_start() -> Rollout:
    """Three prompts that share their first 10 tokens (then 3, 6 and 1 of their own), left-padded; responses
    of width 5, the second cut after 2 tokens."""
    generator = torch.Generator().manual_seed(1)
    start = torch.randint(3, 64, (MIN_SHARED_TOKENS + 2,), generator=generator).tolist()
    rows = [start + torch.randint(3, 64, (n,), generator=generator).tolist() for n in (3, 6, 1)]
    query, query_mask = left_padded(rows)
    response = torch.randint(3, 64, (3, 5), generator=generator)
    response_mask = torch.ones_like(response, dtype=torch.bool)
    response_mask[1, 2:] = False
    return Rollout(query, query_mask, response, response_mask, torch.ones(3, dtype=torch.bool), ["", "", ""])


def logprobs_and_grads(model, rollout: Rollout):
    model.zero_grad()
    logprobs = response_logprobs(model, rollout, temperature=0.7)
    logprobs[rollout.response_mask].sum().backward()
    return logprobs.detach(), [p.grad.clone() for p in model.parameters()]


def test_a_shared_start_gives_the_plain_forwards_logprobs_and_gradients():
    model, plain = tiny_llama(), rollout_with_a_common_start()
    shared = dataclasses.replace(plain, shared_prefix=common_prefix_length(plain.query, plain.query_mask))
    assert shared.shared_prefix == MIN_SHARED_TOKENS + 2
    assert shared.select(torch.tensor([2, 0])).shared_prefix == shared.shared_prefix  # subsets keep the length
    plain_logprobs, plain_grads = logprobs_and_grads(model, plain)
    shared_logprobs, shared_grads = logprobs_and_grads(model, shared)
    torch.testing.assert_close(shared_logprobs, plain_logprobs, rtol=1e-5, atol=1e-5)
    for got, want in zip(shared_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # the passes the old statistics take: the same numbers without gradients
        torch.testing.assert_close(response_logprobs(model, shared, 0.7), shared_logprobs, rtol=0, atol=0)


def test_a_pass_that_loses_the_shared_starts_cache_raises():
    """Hugging Face's gradient checkpointing drops the cache in training; a shared start there would leave the
    rows without their first tokens."""
    model, plain = tiny_llama(), rollout_with_a_common_start()
    checkpoint_layers(model)
    shared = dataclasses.replace(plain, shared_prefix=common_prefix_length(plain.query, plain.query_mask))
    with pytest.raises(RlhfAdsError, match="lost its KV cache"):
        response_logprobs(model, shared, temperature=0.7)

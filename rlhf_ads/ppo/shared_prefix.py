"""Prompts that start alike: a forward pass runs the tokens every row starts with once, as one row.

The prompts a recipe renders all open with the same tokens (the chat template's opening and the system
prompt: 51 of the bundled briefs' ~180). The plain forward over (query + response) rows runs them once per
row, in every pass of a PPO step (the old statistics, the reference, the update's forwards and backwards).
Here they run once, as a batch of one, and the rows' own tokens attend to their keys and values, repeated
over the batch through a KV cache; in a pass with gradients, the gradients of those keys and values sum over
the rows on their way back into the shared start. The numbers are the plain forward's to rounding. Every pass
over one rollout uses the same start length (`Rollout.shared_prefix`, fixed when the prompts are encoded) and
the same columns after it, so passes over any of its rows compute alike and the old log-probs still equal the
update's first ones (bit for bit: tested at step 0, fp32 and bf16).

Hugging Face's gradient checkpointing drops a layer's cache in training, so it cannot run with this; a pass
that loses the cache raises instead of returning the unshared rows' numbers.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache

from rlhf_ads.errors import RlhfAdsError

MIN_SHARED_TOKENS = 8  # below this the extra pass is not worth its launch costs


def common_prefix_length(query: torch.Tensor, query_mask: torch.Tensor) -> int:
    """How many tokens every left-padded prompt row starts with, leaving each row at least its last token (whose
    hidden state predicts the response's first); 0 for a single row. query, query_mask: (B, P) -> int."""
    lengths = query_mask.sum(1)
    span = int(lengths.min()) - 1
    if query.shape[0] < 2 or span < 1:
        return 0
    starts = query.shape[1] - lengths  # left padding: row i's tokens begin at column starts[i]
    aligned = query.gather(1, starts[:, None] + torch.arange(span, device=query.device))  # (B, span)
    differs = (aligned != aligned[:1]).any(0)
    return int(differs.int().argmax()) if differs.any() else span


def last_hidden_state(trunk: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, shared: int) -> torch.Tensor:
    """The trunk's last hidden state over rows `ids` (B, T) with attention mask (B, T) (left-padded prompts
    followed by responses), whose real tokens all start with the same `shared` tokens. Returns (B, T - shared, H)
    for the rows' last T - shared columns, every row's own tokens included (their width does not depend on which
    of a rollout's rows are in the batch, so every pass over a row rounds alike); with `shared` below
    MIN_SHARED_TOKENS or a single row, the plain forward's (B, T, H)."""
    if shared < MIN_SHARED_TOKENS or ids.shape[0] < 2:
        return trunk(input_ids=ids, attention_mask=mask, position_ids=_positions(mask),
                     use_cache=False).last_hidden_state
    starts = (mask.cumsum(1) == 0).sum(1)  # (B,): left padding of each row
    prefix = ids[:1, int(starts[0]):int(starts[0]) + shared]  # (1, shared)
    cache = DynamicCache(config=trunk.config)
    with_cache = {_cache_argument(trunk): cache}
    trunk(input_ids=prefix, use_cache=True, **with_cache)
    for layer in cache.layers:  # (1, heads, shared, d) -> (B, heads, shared, d)
        layer.batch_repeat_interleave(ids.shape[0])
    columns = torch.arange(shared, ids.shape[1], device=ids.device)  # a row without padding starts its own here
    own = mask[:, shared:] * (columns[None] >= (starts + shared)[:, None])  # (B, S): the shared start masked out
    full_mask = torch.cat([own.new_ones(own.shape[0], shared), own], 1)  # (B, shared + S)
    hidden = trunk(input_ids=ids[:, shared:], attention_mask=full_mask, position_ids=shared + _positions(own),
                   use_cache=True, **with_cache).last_hidden_state
    if cache.get_seq_length() != shared + own.shape[1]:
        raise RlhfAdsError("a forward over a shared prompt start lost its KV cache (gradient checkpointing drops "
                           "it): run such passes with no shared start (Rollout.shared_prefix 0)")
    return hidden


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids (B, T) from an attention mask: padding does not shift them."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def _cache_argument(trunk: torch.nn.Module) -> str:
    """The trunk's keyword for a KV cache: `cache` from transformers 5.2x (`past_key_values` deprecated)."""
    return "cache" if "cache" in inspect.signature(trunk.forward).parameters else "past_key_values"

"""Rollouts: sample responses from left-padded prompts, cut them at the first stop token, and score
token log-probs and values on the same (query + response) sequences.

Shapes: query (B, P) left-padded; response (B, R) right-padded; full sequence (B, P + R).
Position ids come from the attention mask (cumulative sum), so left padding does not shift them. Forwards over
the sequences run the prompts' common start once (ppo/shared_prefix.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhf_ads.generation import until_first_stop
from rlhf_ads.ppo.decoding import generation_kwargs
from rlhf_ads.ppo.losses import INVALID_LOGPROB
from rlhf_ads.ppo.shared_prefix import common_prefix_length, last_hidden_state
from rlhf_ads.ppo.token_logprobs import token_logprobs


@dataclass
class Rollout:
    """One batch of sampled responses. query/query_mask: (B, P); response/response_mask: (B, R)."""

    query: torch.Tensor
    query_mask: torch.Tensor
    response: torch.Tensor
    response_mask: torch.Tensor
    contains_eos: torch.Tensor  # (B,) bool
    texts: list[str]
    shared_prefix: int = 0  # tokens every query row starts with, run once per forward (0: none)

    @property
    def sequence(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of query + response: (B, P + R)."""
        return torch.cat([self.query, self.response], 1), torch.cat([self.query_mask, self.response_mask.long()], 1)

    def select(self, index: torch.Tensor) -> "Rollout":
        return Rollout(self.query[index], self.query_mask[index], self.response[index], self.response_mask[index],
                       self.contains_eos[index], [self.texts[i] for i in index.tolist()], self.shared_prefix)


def encode_prompts(tokenizer, prompts: list[str],
                   max_prompt_tokens: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Left-padded prompt ids (B, P) and mask; prompts longer than `max_prompt_tokens` (None: no limit) lose their
    start. Returns (ids, mask, number of prompts cut)."""
    rows = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    cut = 0 if max_prompt_tokens is None else sum(len(r) > max_prompt_tokens for r in rows)
    if cut:
        rows = [r[-max_prompt_tokens:] for r in rows]
    batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt", padding_side="left")
    return batch["input_ids"], batch["attention_mask"], cut


def truncate_at_stop(response: torch.Tensor, stop_ids: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep each response up to and including its first stop token; pad after it.
    response (B, R) -> (response, mask (B, R) bool, contains_eos (B,) bool)."""
    mask, contains_eos = until_first_stop(response, stop_ids)
    return torch.where(mask, response, torch.full_like(response, pad_id)), mask, contains_eos


@torch.no_grad()
def sample(model, tokenizer, query: torch.Tensor, query_mask: torch.Tensor, *, max_new_tokens: int, temperature: float,
           top_p: float, kv_cache: str = "dynamic", compiled: bool = False,
           share_prompt_start: bool = False) -> Rollout:
    """Sample one response per prompt with the KV cache ('dynamic' or 'static', ppo.kv_cache; `compiled`: a
    static cache and a compiled decoding step, ppo/decoding.py); cut at the first stop token. The sampler's
    own log-probs are not kept: the cached decoding rounds differently from the full forward the update
    runs, so the old log-probs come from that forward (`response_logprobs`, `response_stats`). With
    `share_prompt_start` those forwards run the prompts' common start once (Rollout.shared_prefix)."""
    out = model.generate(input_ids=query, attention_mask=query_mask, return_dict_in_generate=True,
                         **generation_kwargs(model, query.shape[1], max_new_tokens=max_new_tokens,
                                            temperature=temperature, top_p=top_p,
                                            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                            kv_cache=kv_cache, compiled=compiled))
    stop_ids = [tokenizer.eos_token_id]
    response, mask, contains_eos = truncate_at_stop(out.sequences[:, query.shape[1]:], stop_ids, tokenizer.pad_token_id)
    texts = [t.strip() for t in tokenizer.batch_decode(torch.where(mask, response, tokenizer.pad_token_id),
                                                       skip_special_tokens=True)]
    return Rollout(query, query_mask, response, mask, contains_eos, texts,
                   common_prefix_length(query, query_mask) if share_prompt_start else 0)


def causal_lm_parts(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(trunk, LM head) of a causal LM, plain or PEFT-wrapped: the transformer without its head (adapters
    inside it apply) and the output embedding."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, inner.base_model_prefix), model.get_output_embeddings()


def _response_hidden_states(trunk, rollout: Rollout) -> torch.Tensor:
    """The trunk's last hidden state at the position before each response token (B, R, H), contiguous: the
    logit at t predicts token t + 1. A strided slice would send the heads' matmuls down PyTorch's batched path,
    which copies the LM head's weight once per row (B x V x H: 0.45 GB per call for B=8 in bf16)."""
    hidden = last_hidden_state(trunk, *rollout.sequence, rollout.shared_prefix)
    return hidden[:, -(rollout.response.shape[1] + 1):-1].contiguous()


def _logprobs_from_hidden(lm_head: torch.nn.Module, hidden: torch.Tensor, rollout: Rollout, temperature: float,
                          with_entropy: bool):
    """Log-probs (B, R) of the response tokens from hidden states (B, R, H), INVALID_LOGPROB at padding; with
    `with_entropy` also the per-token entropy (B, R) at the sampling temperature (differentiable: an entropy
    bonus in the loss backpropagates through it, and it costs nothing when the loss leaves it out)."""
    logprobs, entropy = token_logprobs(lm_head(hidden), rollout.response, temperature, with_entropy)
    logprobs = torch.masked_fill(logprobs, ~rollout.response_mask, INVALID_LOGPROB)
    return (logprobs, entropy) if with_entropy else logprobs


def _values_from_hidden(value_head: torch.nn.Module, hidden: torch.Tensor, rollout: Rollout) -> torch.Tensor:
    """Values (B, R) from hidden states (B, R, H); 0 at padding."""
    return value_head(hidden.to(value_head.weight.dtype)).squeeze(-1) * rollout.response_mask


def response_logprobs(model, rollout: Rollout, temperature: float, with_entropy: bool = False):
    """Log-probs (B, R) of the response tokens under causal LM `model` (logits / temperature); INVALID_LOGPROB
    at padded positions. With `with_entropy`, also the per-token entropy (B, R)."""
    trunk, lm_head = causal_lm_parts(model)
    return _logprobs_from_hidden(lm_head, _response_hidden_states(trunk, rollout), rollout, temperature,
                                 with_entropy)


def response_stats(trunk, lm_head: torch.nn.Module, value_head: torch.nn.Module, rollout: Rollout, temperature: float,
                   *, with_entropy: bool = False, value_only: bool = False):
    """One trunk pass over query + response for a critic that shares the policy's trunk: the LM head and the
    value head both read the hidden state at the position before each response token. Returns
    (logprobs (B, R), values (B, R)), plus the per-token entropy (B, R) with `with_entropy`. With `value_only`
    the trunk runs without gradients, only the value head learns (the critic warm-up) and the log-probs are
    None."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not value_only):
        hidden = _response_hidden_states(trunk, rollout)
    values = _values_from_hidden(value_head, hidden, rollout)
    if value_only:
        return None, values
    out = _logprobs_from_hidden(lm_head, hidden, rollout, temperature, with_entropy)
    return (out, values) if not with_entropy else (out[0], values, out[1])


def response_values(trunk, value_head: torch.nn.Module, rollout: Rollout) -> torch.Tensor:
    """Values (B, R): the value head on the trunk's last hidden state at the position before each token."""
    return _values_from_hidden(value_head, _response_hidden_states(trunk, rollout), rollout)


@torch.no_grad()
def completion_logprobs(model, tokenizer, prompts: list[str], completions: list[str], *,
                        batch_size: int = 16) -> list[float]:
    """log p(completion + EOS | prompt) under causal LM `model`, summed over the completion's tokens, one per
    pair: the prompt as rendered text, the completion tokenized on its own (as a sampled response is)."""
    totals: list[float] = []
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        query, query_mask, _ = encode_prompts(tokenizer, prompts[chunk], max_prompt_tokens=None)
        rows = [ids + [tokenizer.eos_token_id] for ids in
                tokenizer(completions[chunk], add_special_tokens=False)["input_ids"]]
        padded = tokenizer.pad({"input_ids": rows}, return_tensors="pt", padding_side="right")
        mask = padded["attention_mask"].bool()
        response = torch.where(mask, padded["input_ids"], tokenizer.pad_token_id)
        rollout = Rollout(query.to(model.device), query_mask.to(model.device), response.to(model.device),
                          mask.to(model.device), torch.ones(len(rows), dtype=torch.bool, device=model.device),
                          list(completions[chunk]), common_prefix_length(query, query_mask))
        logprobs = response_logprobs(model, rollout, temperature=1.0)
        totals += (logprobs * rollout.response_mask).sum(1).tolist()
    return totals

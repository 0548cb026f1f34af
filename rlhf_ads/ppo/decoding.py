"""How rollouts decode: the next-token draw, and the KV cache (compiled on any device with ppo.compile).

`InverseCdfSampling` draws each next token from softmax(logits / temperature), cut to the top-p nucleus,
with one uniform number per row against the cumulative probabilities, and hands `generate` a score that is
0 at the drawn token and -inf elsewhere, which its greedy decoding then takes. It samples from the same
distribution as `do_sample=True`; transformers' sampler (torch.multinomial) draws one exponential number
per vocabulary entry instead, which on the bundled model's 49k-token vocabulary took about a tenth of the
rollout on a 2-core CPU.

With a compiled step, the KV cache is a static one whose length is the prompt width plus the response
budget rounded up to CACHE_BUCKET, so a run compiles the decoding step once per bucket, not per batch.
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, LogitsProcessor, StaticCache

from rlhf_ads.private_apis import compile_generation_on_any_device

CACHE_BUCKET = 64


class InverseCdfSampling(LogitsProcessor):
    """scores (B, V) -> (B, V): 0 at a token drawn from softmax(scores / temperature) within the top-p
    nucleus, -inf elsewhere."""

    def __init__(self, temperature: float, top_p: float):
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        order = None
        if self.top_p < 1.0:
            probs, order = probs.sort(dim=-1, descending=True)
            outside = probs.cumsum(-1) - probs >= self.top_p  # the nucleus keeps the token that crosses top_p
            probs = probs.masked_fill(outside, 0.0)
        cumulative = probs.cumsum(-1)
        draw = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cumulative.dtype) * cumulative[:, -1:]
        token = torch.searchsorted(cumulative, draw, right=True).clamp(max=probs.shape[-1] - 1)
        if order is not None:
            token = order.gather(-1, token)
        return torch.full_like(scores, float("-inf")).scatter_(-1, token, 0.0)


def generation_kwargs(model, query_width: int, *, max_new_tokens: int, temperature: float, top_p: float,
                      pad_token_id: int, eos_token_id: int, kv_cache: str = "dynamic", compiled: bool = False) -> dict:
    """Keyword arguments for `model.generate` that sample with InverseCdfSampling; `kv_cache` 'static' or
    `compiled` (decoding step compiled, also on CPUs) take a static cache."""
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad_token_id,
                              eos_token_id=eos_token_id)
    kwargs = {"generation_config": config, "logits_processor": [InverseCdfSampling(temperature, top_p)]}
    if compiled:
        length = -(-(query_width + max_new_tokens) // CACHE_BUCKET) * CACHE_BUCKET
        kwargs.update(cache=StaticCache(config=model.config, max_cache_len=length),
                      compile_config=compile_generation_on_any_device())
    elif kv_cache == "static":
        config.cache_implementation = "static"
    return kwargs

"""Log-probs (and entropy) of the sampled tokens from the LM head's logits, a block of rows at a time.

The plain formulation, log_softmax(logits.float() / T) gathered at the tokens, makes a (N, V) fp32 tensor at
each of its steps (the cast, the division, the log-softmax it keeps for the backward, the gather's
zero-filled gradient, the log-softmax's gradient): 25 MiB each for 4 x 32 tokens of the bundled model's 49k
vocabulary, and a graph that holds the fp32 log-softmax until the backward (the update's first micro-batch
holds it across the whole rollout scoring). Here each pass works through a block of rows at a time: on a
CPU fp32 blocks small enough to stay in cache (16 rows of a 49k vocabulary), on accelerators large ones
(few kernel launches per pass, memory still bounded). It keeps for the backward only the logits as they came
(bf16 or fp32) and each row's log-normalizer, and writes the logits' gradient straight in their dtype. The
numbers are the plain formulation's to fp32 rounding, and a pass with gradients gives the same log-probs as
one without, to the bit. Alone, on (4, 32, 49152) bf16 logits on a 2-core CPU: 7.6 ms against 18.5 ms
without gradients, 23 against 35 ms forward and backward; benchmarks/RESULTS.md has what it changes in a
whole PPO step.
"""

from __future__ import annotations

import torch

CPU_BLOCK_BYTES = 3 * 2**20  # fp32 block that stays in cache: 16 rows of a 49k vocabulary
ACCELERATOR_BLOCK_BYTES = 512 * 2**20
TEMPERATURE_EPS = 1e-7  # logits / (T + eps), as TRL's PPO divides them


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0,
                   with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(token) under softmax(logits / temperature), as sampled, and with `with_entropy` the entropy of
    that softmax (else None); both fp32 and differentiable. logits (..., V), tokens (...) -> (...), (...)."""
    shape = tokens.shape
    logprobs, entropy = _TokenLogprobs.apply(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1),
                                             temperature + TEMPERATURE_EPS, with_entropy)
    return logprobs.view(shape), (entropy.view(shape) if with_entropy else None)


def block_rows(logits: torch.Tensor) -> int:
    """Rows per fp32 block of (N, V) logits on their device."""
    budget = CPU_BLOCK_BYTES if logits.device.type == "cpu" else ACCELERATOR_BLOCK_BYTES
    return max(1, budget // (4 * logits.shape[-1]))


def _scaled(logits: torch.Tensor, rows: slice, temperature: float) -> torch.Tensor:
    """(r, V) fp32 block of logits / temperature (a copy: the logits stay as they are)."""
    return logits[rows].to(torch.float32, copy=True).div_(temperature)


class _TokenLogprobs(torch.autograd.Function):
    """logits (N, V), tokens (N,) -> log-probs (N,), entropy (N,) (empty without entropy)."""

    @staticmethod
    def forward(ctx, logits, tokens, temperature, with_entropy):
        n = logits.shape[0]
        logprobs = torch.empty(n, dtype=torch.float32, device=logits.device)
        log_normalizer = torch.empty_like(logprobs)
        entropy = torch.empty(n if with_entropy else 0, dtype=torch.float32, device=logits.device)
        step = block_rows(logits)
        for start in range(0, n, step):
            rows = slice(start, start + step)
            z = _scaled(logits, rows, temperature)
            z_token = z.gather(1, tokens[rows, None]).squeeze(1)
            log_probs = torch.log_softmax(z, dim=-1)
            logprobs[rows] = log_probs.gather(1, tokens[rows, None]).squeeze(1)
            log_normalizer[rows] = z_token - logprobs[rows]
            if with_entropy:  # H = -sum_v p_v log p_v
                entropy[rows] = -torch.linalg.vecdot(log_probs.exp(), log_probs)
        ctx.save_for_backward(logits, tokens, log_normalizer)
        ctx.temperature = temperature
        ctx.set_materialize_grads(False)  # an output the loss does not use gets None, and costs nothing
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        """d logp_t / dz = onehot_t - p; dH / dz = -p * (log p + H); both times 1 / temperature."""
        logits, tokens, log_normalizer = ctx.saved_tensors
        grad_logits = torch.empty_like(logits)
        if grad_logprobs is None:
            grad_logprobs = torch.zeros_like(log_normalizer)
        with_entropy = grad_entropy is not None and grad_entropy.numel() > 0
        scale = 1.0 / ctx.temperature
        step = block_rows(logits)
        for start in range(0, logits.shape[0], step):
            rows = slice(start, start + step)
            log_probs = torch.add(-log_normalizer[rows, None], logits[rows], alpha=scale)  # (r, V) fp32
            g = grad_logprobs[rows, None] * scale
            if with_entropy:
                probs = log_probs.exp()
                g_entropy = grad_entropy[rows, None] * scale
                entropy = -torch.linalg.vecdot(probs, log_probs)[:, None]
                grad = probs.mul_(log_probs.add_(entropy).mul_(-g_entropy).sub_(g))
            else:
                grad = log_probs.exp_().mul_(-g)
            grad_logits[rows] = grad.scatter_add_(1, tokens[rows, None], g)
        return grad_logits, None, None, None

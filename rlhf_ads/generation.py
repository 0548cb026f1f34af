"""Batched sampling of completions from left-padded prompts (used by `generate`, SFT samples and evaluation)."""

from __future__ import annotations

import torch


@torch.inference_mode()
def generate_completions(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 48,
                         temperature: float = 0.7, top_p: float = 0.9, batch_size: int = 8) -> list[str]:
    """Sample one completion per prompt; returns the decoded text after each prompt, stripped.

    Prompts are tokenized left-padded in batches of `batch_size`: input_ids (B, P) -> (B, P + T).
    `temperature == 0` decodes greedily.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    completions: list[str] = []
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        completions.extend(t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    model.train(was_training)
    return completions


def generate_with_adapter(model, tokenizer, prompts: list[str], adapter: str | None, **kwargs) -> list[str]:
    """`generate_completions` with one named adapter of a PeftModel active, or with adapters disabled
    (adapter=None: the base model)."""
    if adapter is not None:
        model.set_adapter(adapter)
        return generate_completions(model, tokenizer, prompts, **kwargs)
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            return generate_completions(model, tokenizer, prompts, **kwargs)
    return generate_completions(model, tokenizer, prompts, **kwargs)

"""Batched sampling of completions from left-padded prompts (used by `generate`, SFT samples and evaluation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass
class GeneratedBatch:
    """One batch of completions, with what a caller needs to score the tokens actually generated."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 on prompt tokens
    new_ids: torch.Tensor  # (B, T) generated ids; rows that stopped early are filled with pad ids
    logits: torch.Tensor | None  # (B, T, V) the generating model's raw logits for each new token (with_logits)
    texts: list[str]  # the decoded completions, special tokens dropped, stripped

    def response_mask(self, stop_ids: list[int]) -> torch.Tensor:
        """(B, T) bool: generated tokens up to and including the first stop token."""
        return until_first_stop(self.new_ids, stop_ids)[0]


def until_first_stop(ids: torch.Tensor, stop_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated ids (B, T) -> (mask (B, T) bool: each row up to and including its first stop token, all of
    a row without one; contains_stop (B,) bool)."""
    is_stop = torch.isin(ids, torch.tensor(stop_ids, device=ids.device)).long()
    return (is_stop.cumsum(1) - is_stop) == 0, is_stop.bool().any(1)


def generate_batches(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 48, temperature: float = 0.7,
                     top_p: float = 0.9, batch_size: int = 8, with_logits: bool = False,
                     progress: str | None = None) -> Iterator[GeneratedBatch]:
    """Sample one completion per prompt, `batch_size` prompts at a time: input_ids (B, P) -> (B, P + T).
    `temperature == 0` decodes greedily; `with_logits` also keeps each step's raw logits (B, T, V); `progress`
    names a progress bar (in prompts) on stderr."""
    bar = tqdm(total=len(prompts), desc=progress, unit="ad", disable=progress is None)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.inference_mode():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     return_dict_in_generate=True, output_logits=with_logits, **sampling)
            new_ids = out.sequences[:, batch["input_ids"].shape[1]:]
            texts = [t.strip() for t in tokenizer.batch_decode(new_ids, skip_special_tokens=True)]
            logits = torch.stack(out.logits, 1) if with_logits else None
            bar.update(len(texts))
            yield GeneratedBatch(batch["input_ids"], batch["attention_mask"], new_ids, logits, texts)
    finally:
        bar.close()
        model.train(was_training)


def generate_completions(model, tokenizer, prompts: list[str], **kwargs) -> list[str]:
    """The decoded completions of `generate_batches`, one per prompt."""
    return [text for batch in generate_batches(model, tokenizer, prompts, **kwargs) for text in batch.texts]


def adapter_active(model, adapter: str | None):
    """A context with one named adapter of a PeftModel active, or with adapters disabled (adapter=None:
    the base model)."""
    if adapter is not None:
        model.set_adapter(adapter)
        return nullcontext()
    return model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()

"""Random-init Llama models built from a config (no download): tiny ones for tests and recipe smoke runs, and
7B-shaped ones for the GPU check (`benchmarks/gpu_check.py`), saved as ordinary transformers folders that every
stage loads like a real base (4-bit included)."""

from __future__ import annotations

from pathlib import Path

import torch

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# transformer shapes by name (vocabulary and all): llama2-7b is Llama-2-7B's (6.7B parameters); qwen7b is
# Qwen2.5-7B's (7.6B: grouped-query attention with 4 key-value heads, a 152k vocabulary, untied embeddings,
# biases on q/k/v), the base recipes/qlora_single_gpu.yaml names
LLAMA_SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000),
    "qwen7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                   num_key_value_heads=4, vocab_size=152064, attention_bias=True, rope_theta=1e6),
}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts` (at most `vocab_size` tokens) with ChatML specials and
    chat template; pad is <|im_end|> (= EOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        unk_token="<|endoftext|>", pad_token="<|im_end|>")
    tokenizer.chat_template = CHATML
    return tokenizer


def save_random_llama(folder: str | Path, tokenizer, shape: str = "tiny", *, vocab_size: int | None = None,
                      dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", seed: int = 0) -> Path:
    """Build a random-init LlamaForCausalLM of a named shape (LLAMA_SHAPES) on `device` in `dtype` (built in that
    dtype: a 7B model never exists in fp32) and save it with `tokenizer` to `folder` (safetensors); the
    vocabulary is the shape's, else `vocab_size`, else the tokenizer's."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    settings = dict(LLAMA_SHAPES[shape])
    settings["vocab_size"] = settings.get("vocab_size") or vocab_size or len(tokenizer)
    config = LlamaConfig(max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=shape == "tiny", dtype=dtype, **settings)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)

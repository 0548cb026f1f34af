"""Tiny random-init models for tests: built from a config, no downloads."""

from __future__ import annotations

from pathlib import Path

from rlhf_ads.random_models import save_random_llama, train_tokenizer

CORPUS = [
    "Write one Google Ads responsive search ad headline for Ridgeline. Product: trail running shoe.",
    "Fast, grippy trail shoes. Free 30-day returns. Shop now and run farther.",
    "Project management software your team will use. Start a free trial today.",
    "Limit: at most 30 characters. Reply with the ad text only. Keywords: none. Audience: Tone: friendly.",
] * 4


def make_tokenizer():
    """A byte-level BPE tokenizer (~400 tokens) with ChatML specials and chat template."""
    return train_tokenizer(CORPUS, vocab_size=400)


def make_tiny_model_dir(folder: Path, seed: int = 0) -> Path:
    """Save a tiny Llama (2 layers, hidden 64) and its tokenizer to `folder`; return it."""
    return save_random_llama(folder, make_tokenizer(), "tiny", seed=seed)

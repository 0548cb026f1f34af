"""What the annotate tests share: a small candidates file (three briefs, one of them hostile HTML, and a plain
prompt), a database holding it, and designers with their tokens."""

import json

import pytest

from rlhf_ads.annotate.candidates import read_candidates
from rlhf_ads.annotate.store import Store

CANDIDATES = [
    {"id": "shoe-1", "brief_id": "shoe", "product": "trail running shoe", "brand": "Ridgeline", "platform": "google_rsa",
     "field": "headline", "keywords": ["trail shoes"], "model": "sft", "text": "Grippy Trail Shoes for Wet Rock"},
    {"id": "shoe-2", "brief_id": "shoe", "product": "trail running shoe", "brand": "Ridgeline", "platform": "google_rsa",
     "field": "headline", "keywords": ["trail shoes"], "model": "ppo", "text": "BEST trail shoes ever made for everyone!!"},
    {"id": "shoe-3", "brief_id": "shoe", "product": "trail running shoe", "brand": "Ridgeline", "platform": "google_rsa",
     "field": "headline", "keywords": ["trail shoes"], "model": "ppo", "text": "Trail shoes. Free returns."},
    {"id": "xss-1", "brief_id": "xss", "product": "<script>alert('brief')</script> notes app", "model": "sft",
     "text": "<img src=x onerror=alert('ad')> Take notes faster"},
    {"id": "xss-2", "brief_id": "xss", "product": "<script>alert('brief')</script> notes app", "model": "ppo",
     "text": "Notes that sync & stay private"},
    {"prompt": "Write a headline for a budgeting app for students.", "text": "Budget like a pro in 5 minutes"},
    {"prompt": "Write a headline for a budgeting app for students.", "text": "Your money, finally under control"},
]  # 3 + 1 + 1 = 5 pairs


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def candidates_file(tmp_path):
    return write_jsonl(tmp_path / "candidates.jsonl", CANDIDATES)


@pytest.fixture
def store(tmp_path, candidates_file):
    store = Store(tmp_path / "annotations.sqlite")
    store.import_candidates(read_candidates(candidates_file))
    return store


@pytest.fixture
def tokens(store):
    """designer name -> token, for three designers."""
    return {name: store.add_designer(name) for name in ("ana", "ben", "cleo")}


@pytest.fixture(scope="session")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A random LoRA adapter on the tiny model, saved as a stage would (its folder is named 'adapter')."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    folder = tmp_path_factory.mktemp("checkpoint") / "adapter"
    model.save_pretrained(folder)
    return folder

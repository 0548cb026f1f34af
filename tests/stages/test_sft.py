"""Stage sft on a tiny random-init model: parameters change, loss falls, outputs load back."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from rlhf_ads import config
from rlhf_ads.errors import ConfigError
from rlhf_ads.stages import sft

TINY_TRAINING = ["sft.training.max_train_rows=8", "sft.training.max_eval_rows=4", "sft.training.max_steps=8",
                 "sft.training.batch_size=4", "sft.training.learning_rate=0.01", "sft.training.logging_steps=1",
                 "sft.training.warmup_ratio=0", "sft.training.save_steps=4", "sft.num_samples=3",
                 "sft.max_new_tokens=4", "sft.training.max_length=1024", "model.dtype=fp32"]


def tiny_recipe(tmp_path, model_dir, *extra):
    return config.load(None, [f"model.base={model_dir}", f"output_dir={tmp_path}", *TINY_TRAINING, *extra])


def test_sft_batches_rows_of_similar_length_when_asked(tmp_path, tiny_model_dir):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, "model.use_lora=true", "sft.training.group_by_length=true",
                         "sft.num_samples=0")
    metrics = sft.run(recipe)
    assert metrics["sft/steps"] == 8 and metrics["sft/train_loss_last"] < metrics["sft/train_loss_first"]
    card = (tmp_path / "quickstart/sft/README.md").read_text()  # the adapter's model card
    assert "More Information Needed" not in card and f"base_model: {tiny_model_dir}" in card
    assert "# quickstart: sft" in card and "| sft/steps | 8 |" in card and "Data: `bundled:sft:train`" in card


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_sft_trains_and_saves_a_loadable_model(tmp_path, tiny_model_dir, lora):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, f"model.use_lora={str(lora).lower()}", "sft.merge=true")
    before = {n: p.detach().clone() for n, p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters()}
    metrics = sft.run(recipe)
    out = tmp_path / "quickstart" / "sft"
    assert metrics["sft/train_loss_last"] < metrics["sft/train_loss_first"]
    assert metrics["sft/steps"] == 8 and metrics["sft/perplexity"] > 1
    assert 0 <= metrics["sft/within_limit_rate"] <= 1 and 0 <= metrics["base/within_limit_rate"] <= 1
    if lora:
        trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out).merge_and_unload()
        merged = AutoModelForCausalLM.from_pretrained(out / "merged")
        assert all(torch.allclose(p, dict(trained.named_parameters())[n], atol=1e-6) for n, p in merged.named_parameters())
    else:
        trained = AutoModelForCausalLM.from_pretrained(out)
    changed = [n for n, p in trained.named_parameters() if not torch.allclose(p, before[n])]
    assert changed, "no parameter changed"
    assert len((out / "samples.jsonl").read_text().splitlines()) == 3
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["model"]["use_lora"] is lora
    assert (out / "checkpoints").is_dir() and (out / "train_log.jsonl").is_file()


@pytest.mark.parametrize("precision", [["model.dtype=bf16"], ["sft.training.mixed_precision=bf16"]],
                         ids=["bf16-weights", "bf16-autocast"])
def test_sft_trains_in_bf16_on_a_cpu(tmp_path, tiny_model_dir, linear_output_dtypes, precision):
    """transformers refuses bf16 on a machine without a GPU unless told use_cpu; both bf16 paths must train.
    Mixed precision keeps fp32 weights while the linear layers compute in bf16."""
    recipe = tiny_recipe(tmp_path, tiny_model_dir, "model.use_lora=false", "sft.num_samples=0", *precision)
    metrics = sft.run(recipe)
    assert metrics["sft/train_loss_last"] < metrics["sft/train_loss_first"]
    assert torch.bfloat16 in linear_output_dtypes
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "quickstart" / "sft", dtype="auto")
    assert saved.dtype == (torch.bfloat16 if "model.dtype=bf16" in precision else torch.float32)


def test_sft_qlora_4bit_trains_on_cpu(tmp_path, tiny_model_dir):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, "model.load_in_4bit=true", "model.use_lora=true", "sft.num_samples=0",
                         "sft.training.max_steps=4")
    metrics = sft.run(recipe)
    assert metrics["sft/train_loss_last"] < metrics["sft/train_loss_first"]
    assert (tmp_path / "quickstart" / "sft" / "adapter_model.safetensors").is_file()


def test_4bit_without_lora_is_refused_with_the_fix(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="use_lora: true"):
        sft.run(tiny_recipe(tmp_path, tiny_model_dir, "model.load_in_4bit=true"))


def test_resume_continues_from_the_newest_checkpoint(tmp_path, tiny_model_dir):
    common = ["model.use_lora=true", "sft.num_samples=0"]
    sft.run(tiny_recipe(tmp_path, tiny_model_dir, *common, "sft.training.max_steps=4"))
    log_path = tmp_path / "quickstart/sft/train_log.jsonl"
    first = {e["step"]: e["loss"] for e in map(json.loads, log_path.read_text().splitlines()) if "loss" in e}
    # A different seed would change every step of a fresh run; a resumed run keeps steps 1-4 from the checkpoint.
    metrics = sft.run(tiny_recipe(tmp_path, tiny_model_dir, *common, "seed=1", "sft.training.resume=true"))
    second = {e["step"]: e["loss"] for e in map(json.loads, log_path.read_text().splitlines()) if "loss" in e}
    assert metrics["sft/steps"] == 8 and sorted(second) == list(range(1, 9))
    assert all(second[step] == first[step] for step in range(1, 5))


def test_long_prompts_lose_their_start_and_the_ad_is_kept():
    from tests.tiny import make_tokenizer

    tokenizer = make_tokenizer()
    prompt, ad = "Write one headline. " * 20 + "Limit: 30 characters.\nAd:", " Shop trail shoes now."
    full = sft.tokenized_row(prompt, ad, tokenizer, max_length=1000)
    short = sft.tokenized_row(prompt, ad, tokenizer, max_length=20)
    n_ad = sum(full["completion_mask"])
    assert len(short["input_ids"]) == 20 and len(short["completion_mask"]) == 20
    assert short["input_ids"][-n_ad:] == full["input_ids"][-n_ad:] and short["input_ids"][-1] == tokenizer.eos_token_id
    assert short["input_ids"][:-n_ad] == full["input_ids"][-20:-n_ad]  # the prompt's end survives
    assert short["completion_mask"] == [0] * (20 - n_ad) + [1] * n_ad


def test_the_loss_projects_only_labelled_positions_on_cpu_and_is_unchanged(monkeypatch, tiny_model_dir):
    import trl.trainer.utils as trl_utils

    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)  # TRL's own choice off Triton devices
    chunked, rows = trl_utils._ChunkedLogProbFunction, []

    class CountingRows:
        @staticmethod
        def apply(hidden, *rest):
            rows.append(hidden.shape[0])
            return chunked.apply(hidden, *rest)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", CountingRows)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    trl_utils.add_fused_lm_head(model)
    input_ids = torch.randint(0, model.config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(0))
    labels = input_ids.masked_fill(torch.arange(12) < 9, -100)  # a 9-token prompt, a 3-token completion

    def loss_and_gradients():
        model.zero_grad()
        loss = model(input_ids=input_ids, labels=labels, fused_lm_head=True).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    every_position = loss_and_gradients()
    sft.score_labelled_positions_only()
    sft.score_labelled_positions_only()  # idempotent
    labelled_only = loss_and_gradients()
    assert rows == [3 * 11, 3 * 3]  # shifted: 11 positions per row, 3 of them predict a completion token
    torch.testing.assert_close(labelled_only, every_position, rtol=1e-5, atol=1e-6)

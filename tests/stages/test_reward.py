"""Stage reward on tiny models: pairwise (LoRA, full, 4-bit) and click-through; the head survives save/load."""

import json
import statistics

import pytest
import torch

from reward_models.learned import ClickThroughReward, LearnedReward
from rlhf_ads import config
from rlhf_ads.data import SCORER_INPUT, load_rows, message_text, row_completion, row_context
from rlhf_ads.data.bundled import bundled_file
from rlhf_ads.errors import ConfigError, DataError
from rlhf_ads.modeling import SCORER_META, score_sequences
from rlhf_ads.data import reward_columns
from rlhf_ads.stages import reward
from rlhf_ads.stages.common import sample_rows

TINY = ["reward.training.max_train_rows=16", "reward.training.max_eval_rows=8", "reward.training.max_steps=8",
        "reward.training.batch_size=4", "reward.training.learning_rate=0.005", "reward.training.logging_steps=1",
        "reward.training.warmup_ratio=0", "reward.training.max_length=1024", "model.dtype=fp32"]


def run_tiny(tmp_path, model_dir, *extra):
    recipe = config.load(None, [f"model.base={model_dir}", f"output_dir={tmp_path}", *TINY, *extra])
    return reward.run(recipe), tmp_path / "quickstart" / recipe.reward.output


@pytest.mark.parametrize("extra", [["model.use_lora=true"], ["reward.training.learning_rate=0.001"],
                                   ["model.use_lora=true", "model.load_in_4bit=true"]],
                         ids=["lora", "full", "qlora"])
def test_pairwise_trains_and_the_saved_scorer_reproduces_its_scores(tmp_path, tiny_model_dir, extra):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, *extra)
    assert metrics["rm/train_loss_last"] < metrics["rm/train_loss_first"]
    assert {"rm/accuracy", "rm/gold_agreement", "rm/noise_ceiling", "rm/sft_score_mean"} <= set(metrics)
    assert any(k.startswith("rm/accuracy/d0") for k in metrics)  # per designer
    meta = json.loads((out / SCORER_META).read_text())
    assert meta["kind"] == "pairwise" and meta["score_std"] > 0
    # The reloaded scorer (adapter + score head, or full model) gives the scores the trained one gave.
    row = load_rows("bundled:preferences:heldout", "preferences")[0]
    loaded = LearnedReward(str(out), dtype="fp32", max_length=1024)
    context = row_context(row)
    score = loaded([message_text(row["chosen"])], [context])[0]
    assert score == pytest.approx(loaded([message_text(row["chosen"])], [context])[0])
    stats = loaded([r["completion"] for r in load_rows("bundled:sft:heldout", "sft")[:8]],
                   [row_context(r) for r in load_rows("bundled:sft:heldout", "sft")[:8]])
    assert max(stats) != min(stats)  # not a constant head
    from safetensors.torch import load_file

    if "model.use_lora=true" in extra:
        weights = load_file(out / "adapter_model.safetensors")
        assert any("score" in k for k in weights), "score head missing from the saved adapter"
        assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())  # B starts at 0
    else:
        trained, base = load_file(out / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
        assert any(not torch.equal(trained[k], base[k]) for k in base if k in trained)


def test_saved_head_matches_the_trained_head(tmp_path, tiny_model_dir):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, "model.use_lora=true", "reward.training.max_eval_rows=6")
    loaded = LearnedReward(str(out), dtype="fp32", max_length=1024)
    rows = load_rows("bundled:preferences:heldout", "preferences")
    sample = load_rows("bundled:sft:heldout", "sft")
    texts = [(row_context(r), r["completion"]) for r in sample]
    # rm/sft_score_mean was computed with the in-memory model on the first max_eval_rows SFT rows (seeded draw);
    # the reloaded model must reproduce the same mean over the same draw.

    drawn = sample_rows(sample, 6, 0)
    scores = loaded([r["completion"] for r in drawn], [row_context(r) for r in drawn])
    assert sum(scores) / len(scores) == pytest.approx(metrics["rm/sft_score_mean"], abs=1e-4)
    assert rows and texts


def test_click_through_model_trains_and_reports_auc(tmp_path, tiny_model_dir):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, "model.use_lora=true", "reward.kind=ctr", "reward.output=ctr",
                            "reward.training.learning_rate=0.02")
    assert metrics["rm/train_loss_last"] < metrics["rm/train_loss_first"]
    assert 0 <= metrics["ctr/auc"] <= 1 and metrics["ctr/log_loss"] > 0 and "ctr/log_loss_true_ctr" in metrics
    predicted = ClickThroughReward(str(out), dtype="fp32", max_length=1024)(["Trail shoes. Shop now."], ["brief"])
    assert 0 < predicted[0] < 1


def test_encoder_backbone_on_the_bundled_minilm(tmp_path, tiny_model_dir):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, "reward.backbone=encoder", "reward.training.max_length=256",
                            "reward.training.learning_rate=0.0001", "reward.training.max_steps=4")
    assert (out / "config.json").is_file() and json.loads((out / SCORER_META).read_text())["backbone"] == "encoder"
    assert "rm/accuracy" in metrics and metrics["rm/steps"] == 4
    scores = LearnedReward(str(out), dtype="fp32")(["Trail shoes. Shop now.", "BUY!!!"], ["brief", "brief"])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)


def test_rater_conditioned_model_scores_each_rater_and_their_mean(tmp_path, tiny_model_dir):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, "model.use_lora=true", "reward.rater_column=designer_id",
                            "reward.training.max_eval_rows=6", "reward.limit_fit=true")
    meta = json.loads((out / SCORER_META).read_text())
    assert meta["input"] == SCORER_INPUT  # so the reward below reads each ad's fit to its brief's limit
    train = load_rows("bundled:preferences:train", "preferences")
    assert meta["rater_column"] == "designer_id" and set(meta["raters"]) <= {r["designer_id"] for r in train}

    drawn = sample_rows(load_rows("bundled:sft:heldout", "sft"), 6, 0)
    ads, contexts, columns = [r["completion"] for r in drawn], [row_context(r) for r in drawn], reward_columns(drawn)
    population = LearnedReward(str(out), dtype="fp32", max_length=1024)(ads, contexts, **columns)
    per_rater = [LearnedReward(str(out), dtype="fp32", max_length=1024, rater=r)(ads, contexts, **columns)
                 for r in meta["raters"]]
    assert population == pytest.approx([sum(s) / len(s) for s in zip(*per_rater)], abs=1e-5)
    assert per_rater[0] != pytest.approx(per_rater[-1], abs=1e-6)  # the rater changes what the scorer reads
    assert sum(population) / len(population) == pytest.approx(metrics["rm/sft_score_mean"], abs=1e-4)
    with pytest.raises(ValueError, match="not one the model"):
        LearnedReward(str(out), dtype="fp32", rater="someone_else")


def test_rater_column_missing_from_a_row_names_the_row(tmp_path, tiny_model_dir):
    rows = [json.loads(line) for line in bundled_file("preferences").read_text().splitlines()[:12]]
    del rows[3]["designer_id"]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=f"row {rows[3]['id']} has no 'designer_id'"):
        run_tiny(tmp_path, tiny_model_dir, "model.use_lora=true", "reward.rater_column=designer_id",
                 f"reward.train.path={path}", "reward.train.briefs=bundled:briefs")
    with pytest.raises(ConfigError, match="pairwise only"):
        config.load(None, ["reward.kind=ctr", "reward.rater_column=designer_id"])


def test_group_by_length_batches_pairs_by_their_longer_side(tmp_path, tiny_model_dir):
    import datasets
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig

    from rlhf_ads.modeling import load_tokenizer

    lengths = torch.randperm(400, generator=torch.Generator().manual_seed(0)).add(1).tolist()  # 1..400, shuffled
    pairs = datasets.Dataset.from_dict({"chosen_ids": [[5] * max(1, n // 2) for n in lengths],
                                        "rejected_ids": [[6] * n for n in lengths]})
    args = RewardConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, report_to=[], bf16=False,
                        train_sampling_strategy="group_by_length")
    trainer = reward.PairRewardTrainer(
        model=AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1), args=args,
        processing_class=load_tokenizer(str(tiny_model_dir)), train_dataset=pairs)
    order = list(trainer._get_train_sampler())
    assert sorted(order) == list(range(400))  # every pair once

    def padding(indices):  # tokens of padding when each 4 pairs are padded to their longest
        batches = [[lengths[i] for i in indices[s:s + 4]] for s in range(0, len(indices), 4)]
        return sum(4 * max(b) - sum(b) for b in batches)

    assert padding(order) < 0.2 * padding(list(range(400)))  # the dataset's own order is a random one


def test_mixed_precision_trains_in_bf16_and_scores_as_the_saved_model_does(tmp_path, tiny_model_dir, monkeypatch,
                                                                          linear_output_dtypes):
    """Training computes in bf16; held-out scores and the score scale use the fp32 forward a reload has."""
    scoring_dtypes = []

    def recording_score(*args, **kwargs):
        linear_output_dtypes.clear()
        scores = score_sequences(*args, **kwargs)
        scoring_dtypes.append(set(linear_output_dtypes))
        return scores

    monkeypatch.setattr(reward, "score_sequences", recording_score)
    metrics, out = run_tiny(tmp_path, tiny_model_dir, "reward.training.learning_rate=0.001",
                            "reward.training.mixed_precision=bf16", "reward.max_score_rows=4")
    assert metrics["rm/train_loss_last"] < metrics["rm/train_loss_first"]
    assert scoring_dtypes and all(dtypes == {torch.float32} for dtypes in scoring_dtypes)
    # The recorded score scale is the reloaded scorer's, on the same held-out SFT ads.
    rows = sample_rows(load_rows("bundled:sft:heldout", "sft"), 4, seed=0)
    reloaded = LearnedReward(str(out), dtype="fp32", max_length=1024)
    scores = reloaded([row_completion(r) for r in rows], [row_context(r) for r in rows])
    assert metrics["rm/sft_score_mean"] == pytest.approx(statistics.fmean(scores), abs=1e-5)


def test_group_by_length_run_and_a_capped_score_scale(tmp_path, tiny_model_dir):
    metrics, out = run_tiny(tmp_path, tiny_model_dir, "model.use_lora=true", "reward.training.group_by_length=true",
                            "reward.max_score_rows=3")
    assert metrics["rm/train_loss_last"] < metrics["rm/train_loss_first"]
    assert metrics["rm/sft_score_rows"] == 3


@pytest.mark.parametrize("knob", ["reward.margin_column=p_designer_chosen", "reward.center_rewards_coefficient=0.5"])
def test_a_margin_or_reward_centering_adds_to_the_loss(tmp_path, tiny_model_dir, knob):
    """A positive margin asks the chosen ad to win by more; centering adds a penalty on the scores' size: either
    way the first step's loss on the same pairs is higher."""
    one_step = ["model.use_lora=true", "reward.training.max_steps=1", "reward.training.max_eval_rows=4",
                "reward.max_score_rows=4"]
    plain, _ = run_tiny(tmp_path / "plain", tiny_model_dir, *one_step)
    with_knob, _ = run_tiny(tmp_path / "knob", tiny_model_dir, *one_step, knob)
    assert with_knob["rm/train_loss_first"] > plain["rm/train_loss_first"]

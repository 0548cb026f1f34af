"""The PPO loop on a tiny random-init model: it runs, logs, checkpoints, resumes exactly, and fails clearly."""

import json
import textwrap

import pytest
import torch
from accelerate import Accelerator

from rlhf_ads import config
from rlhf_ads.errors import ConfigError, RlhfAdsError
from rlhf_ads.ppo import trainer, update
from rlhf_ads.ppo.kl import make_controller
from rlhf_ads.ppo.optimization import make_optimization
from rlhf_ads.ppo.prompts import load_prompt_rows
from rlhf_ads.rewards import RewardError
from rlhf_ads.ppo.rollout import response_logprobs
from tests.helpers import LENGTH_REWARD

TINY = ["model.dtype=fp32", "ppo.batch_size=4", "ppo.mini_batch_size=2", "ppo.ppo_epochs=1", "ppo.max_new_tokens=6",
        "ppo.max_prompt_tokens=256", "ppo.training.learning_rate=0.001", "ppo.training.save_steps=2", "ppo.log_samples=2"]


def write_reward(tmp_path, body):
    path = tmp_path / "my_reward.py"
    path.write_text(textwrap.dedent(body))
    return path


def recipe(tmp_path, model_dir, reward_path, *extra):
    overrides = [f"model.base={model_dir}", f"output_dir={tmp_path / 'runs'}", *TINY, *extra]
    loaded = config.load(None, overrides)
    loaded.rewards = [config.RewardSpec(function=f"{reward_path}:score", name="mine")]
    return loaded


def read_metrics(tmp_path):
    return [json.loads(line) for line in (tmp_path / "runs/quickstart/ppo/metrics.jsonl").read_text().splitlines()]


def test_ppo_runs_logs_and_saves(tmp_path, tiny_model_dir):
    metrics = trainer.run(recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=2"))
    out = tmp_path / "runs/quickstart/ppo"
    for key in ("reward/mine", "ppo/score", "ppo/kl", "ppo/entropy", "ppo/policy_loss", "ppo/value_loss",
                "ppo/policy_clipfrac", "ppo/value_clipfrac", "ppo/approx_kl", "ppo/response_length",
                "ppo/no_eos_fraction", "ppo/samples_per_second", "gold/utility", "ppo/time/rollout",
                "ppo/time/update"):
        assert key in metrics, key
    assert [m["step"] for m in read_metrics(tmp_path)] == [1, 2]
    assert (out / "policy" / "adapter_config.json").is_file() and (out / "value_head.safetensors").is_file()
    card = (out / "policy" / "README.md").read_text()  # a real model card, not PEFT's empty template
    assert "More Information Needed" not in card and "base_model:" in card and "# quickstart: ppo (policy)" in card
    assert "| ppo/kl |" in card and "reward mix: mine x1" in card and "learning_rate: 0.001" in card
    assert (out / "checkpoints" / "checkpoint-2" / "trainer.pt").is_file()
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4


def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_model_dir):
    reward = write_reward(tmp_path, LENGTH_REWARD)

    def with_recent_ads(loaded):  # a reward with state of its own: the last 12 ads, 3 of the 4 steps' batches
        loaded.rewards.append(config.RewardSpec(function="recent_diversity", name="recent", kwargs={"window": 12}))
        return loaded

    def last_window(run):
        state = json.loads((run / "runs/quickstart/ppo/checkpoints/checkpoint-4/state.json").read_text())
        return state["rewards"]["recent"]["function"]["recent"]

    trainer.run(with_recent_ads(recipe(tmp_path / "a", tiny_model_dir, reward, "ppo.steps=4")))
    straight = read_metrics(tmp_path / "a")
    trainer.run(with_recent_ads(recipe(tmp_path / "b", tiny_model_dir, reward, "ppo.steps=2")))
    trainer.run(with_recent_ads(recipe(tmp_path / "b", tiny_model_dir, reward, "ppo.steps=4",
                                       "ppo.training.resume=true")))
    resumed = read_metrics(tmp_path / "b")
    assert [trainer.without_timings(m) for m in resumed] == [trainer.without_timings(m) for m in straight]
    assert len(last_window(tmp_path / "a")) == 12 and last_window(tmp_path / "b") == last_window(tmp_path / "a")


def test_a_reward_that_raises_names_itself_and_keeps_the_checkpoints(tmp_path, tiny_model_dir):
    flaky = write_reward(tmp_path, """
        calls = {"n": 0}
        def score(completions, prompts, **columns):
            calls["n"] += 1
            if calls["n"] > 2:
                return [float("nan")] * len(completions)
            return [1.0] * len(completions)
    """)
    with pytest.raises(RewardError, match="reward 'mine' returned nan at sample 0"):
        trainer.run(recipe(tmp_path, tiny_model_dir, flaky, "ppo.steps=4"))
    assert (tmp_path / "runs/quickstart/ppo/checkpoints/checkpoint-2").is_dir()  # steps 1-2 are kept


def test_kl_blow_up_stops_with_a_clear_message(tmp_path, tiny_model_dir):
    with pytest.raises(RlhfAdsError, match="passed ppo.kl.stop_above"):
        trainer.run(recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=3",
                           "ppo.kl.stop_above=-1.0"))


def test_no_rewards_is_explained(tmp_path, tiny_model_dir):
    loaded = config.load(None, [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", *TINY])
    with pytest.raises(RlhfAdsError, match="at least one reward"):
        trainer.run(loaded)


def test_one_update_moves_log_probs_along_the_advantages(tmp_path, tiny_model_dir):
    """The sign check of the whole update: tokens with positive advantage become likelier, negative ones less."""
    import torch

    from rlhf_ads.ppo.models import POLICY, build_actor_critic
    from rlhf_ads.ppo.rollout import encode_prompts, response_logprobs, sample

    loaded = recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.ppo_epochs=1",
                    "ppo.mini_batch_size=4", "ppo.training.learning_rate=0.01")
    torch.manual_seed(0)
    ac = build_actor_critic(loaded, None, None)
    query, mask, _ = encode_prompts(ac.tokenizer, ["Shop trail shoes", "Plan sprints", "Book a room", "Fresh roses"], 32)
    ac.use(POLICY)
    rollout = sample(ac.model, ac.tokenizer, query, mask, max_new_tokens=5, temperature=1.0, top_p=1.0)
    with torch.no_grad():
        old = response_logprobs(ac.model, rollout, 1.0)
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0]).unsqueeze(1).expand_as(old) * rollout.response_mask
    optimization = make_optimization(Accelerator(), ac, loaded.ppo)
    update.run_update(loaded.ppo, ac, optimization, rollout, old, torch.zeros_like(old), advantages, torch.zeros_like(old))
    ac.use(POLICY)
    with torch.no_grad():
        new = response_logprobs(ac.model, rollout, 1.0)
    change = ((new - old) * rollout.response_mask).sum(1)
    assert change[0] > 0 and change[2] > 0 and change[1] < 0 and change[3] < 0


def test_gradient_accumulation_averages_the_micro_batch_losses(tmp_path, tiny_model_dir, monkeypatch):
    """With ppo.training.grad_accum=2 the raw gradient before the optimizer step is the mean of the two
    micro-batches' gradients, each from its own token-mean loss (TRL 1.12's convention: responses of
    unequal length weigh by micro-batch, not by token)."""
    from rlhf_ads.ppo.losses import policy_loss, value_loss
    from rlhf_ads.ppo.models import POLICY, VALUE, build_actor_critic
    from rlhf_ads.ppo.rollout import response_values
    from tests.ppo.test_models import tiny_rollout

    loaded = recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.batch_size=4",
                    "ppo.mini_batch_size=4", "ppo.training.grad_accum=2")
    torch.manual_seed(0)
    actor_critic = build_actor_critic(loaded, None, None)
    two = tiny_rollout(len(actor_critic.tokenizer))
    rollout = two.select(torch.tensor([0, 1, 1, 0]))
    rollout.response_mask[2, 2:] = False  # four response lengths: 6, 4, 2, 6
    with torch.no_grad():
        actor_critic.use(POLICY)
        old = response_logprobs(actor_critic.model, rollout, loaded.ppo.temperature)
    advantages = torch.tensor([[1.0], [-1.0], [0.5], [2.0]]) * rollout.response_mask
    returns = torch.ones_like(old) * rollout.response_mask
    params = [p for group in actor_critic.trainable_parameters().values() for p in group]

    def micro_batch_gradients(index):
        for param in params:
            param.grad = None
        mb, mask = rollout.select(index), rollout.response_mask[index]
        actor_critic.use(POLICY)
        new = response_logprobs(actor_critic.model, mb, loaded.ppo.temperature)
        loss = policy_loss(new, old[index], advantages[index], mask)[0]
        loss.backward()
        actor_critic.use(VALUE)
        values = response_values(actor_critic.trunk, actor_critic.value_head, mb)
        (loaded.ppo.vf_coef * value_loss(values, torch.zeros_like(old[index]), returns[index], mask)[0]).backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    expected = [(a + b) / 2 for a, b in zip(micro_batch_gradients(torch.tensor([0, 1])),
                                            micro_batch_gradients(torch.tensor([2, 3])))]
    for param in params:
        param.grad = None
    optimization = make_optimization(Accelerator(), actor_critic, loaded.ppo)
    captured = []
    monkeypatch.setattr(optimization, "step", lambda: captured.append(
        [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]) or 0.0)
    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: torch.arange(n))  # micro-batches [0, 1], [2, 3]
    update.run_update(loaded.ppo, actor_critic, optimization, rollout, old, torch.zeros_like(old), advantages, returns)
    assert len(captured) == 1
    assert any(g.abs().sum() > 0 for g in expected)
    for got, want in zip(captured[0], expected):
        assert torch.allclose(got, want, atol=1e-6)


def two_micro_batch_update(tmp_path, model_dir, monkeypatch, critic):
    """A tiny actor-critic set up for one update of two micro-batches over a rollout of four responses (lengths
    6, 4, 2, 6), with fixed advantages and returns, whose optimizer step records the raw gradients in `captured`
    instead of stepping. Returns (recipe, actor_critic, rollout, advantages, returns, params, optimization,
    captured)."""
    from rlhf_ads.ppo.models import build_actor_critic
    from tests.ppo.test_models import tiny_rollout

    loaded = recipe(tmp_path, model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.batch_size=4",
                    "ppo.mini_batch_size=4", "ppo.training.grad_accum=2", f"ppo.critic={critic}")
    torch.manual_seed(0)
    actor_critic = build_actor_critic(loaded, None, None)
    rollout = tiny_rollout(len(actor_critic.tokenizer)).select(torch.tensor([0, 1, 1, 0]))
    rollout.response_mask[2, 2:] = False
    advantages = torch.tensor([[1.0], [-1.0], [0.5], [2.0]]) * rollout.response_mask
    returns = torch.ones(4, rollout.response.shape[1]) * rollout.response_mask
    params = [p for group in actor_critic.trainable_parameters().values() for p in group]
    optimization = make_optimization(Accelerator(), actor_critic, loaded.ppo)
    captured = []
    monkeypatch.setattr(optimization, "step", lambda: captured.append(  # the raw gradients; no update
        [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]) or 0.0)
    return loaded, actor_critic, rollout, advantages, returns, params, optimization, captured


@pytest.mark.parametrize("critic", ["shared", "adapter"])
def test_the_entropy_bonus_adds_minus_its_coefficient_times_the_entropys_gradient(tmp_path, tiny_model_dir,
                                                                                  monkeypatch, critic):
    """ppo.entropy_coef = c: the raw gradient of the update is the one without the bonus minus c times the gradient
    of the policy's token-mean entropy (at the sampling temperature), micro-batches averaged."""
    from rlhf_ads.ppo.losses import masked_mean
    from rlhf_ads.ppo.models import POLICY

    loaded, actor_critic, rollout, advantages, returns, params, optimization, captured = two_micro_batch_update(
        tmp_path, tiny_model_dir, monkeypatch, critic)
    with torch.no_grad():
        actor_critic.use(POLICY)
        old = response_logprobs(actor_critic.model, rollout, loaded.ppo.temperature)
    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: torch.arange(n))  # micro-batches [0, 1], [2, 3]

    def update_gradients(coef):
        loaded.ppo.entropy_coef = coef
        for param in params:
            param.grad = None
        stats = update.run_update(loaded.ppo, actor_critic, optimization, rollout, old, torch.zeros_like(old),
                                  advantages, returns)
        return captured[-1], stats["ppo/entropy"]

    without, entropy_logged = update_gradients(0.0)
    with_bonus, _ = update_gradients(0.5)
    for param in params:
        param.grad = None
    actor_critic.use(POLICY)
    for index in (torch.tensor([0, 1]), torch.tensor([2, 3])):
        _, entropy = response_logprobs(actor_critic.model, rollout.select(index), loaded.ppo.temperature,
                                       with_entropy=True)
        (masked_mean(entropy, rollout.response_mask[index]) / 2).backward()
    entropy_gradient = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    assert any(g.abs().sum() > 0 for g in entropy_gradient) and entropy_logged > 0
    for got, base, grad in zip(with_bonus, without, entropy_gradient):
        assert torch.allclose(got, base - 0.5 * grad, atol=1e-6)
    with pytest.raises(ConfigError, match="entropy_coef must be >= 0"):
        config.load(None, [f"model.base={tiny_model_dir}", "ppo.entropy_coef=-0.1"])


@pytest.mark.parametrize("critic", ["shared", "adapter"])
def test_the_kept_first_forward_gives_the_old_stats_and_gradients_of_fresh_passes(tmp_path, tiny_model_dir,
                                                                                   monkeypatch, critic):
    """The update's first micro-batch runs its training forward with the old statistics (update.KeptPass). Its
    old log-probs and values, and the raw gradients of the whole update, equal those of running every pass
    afresh, also with a value adapter whose pass in between turns the policy's requires_grad off."""
    from rlhf_ads.ppo.models import POLICY

    loaded, actor_critic, rollout, advantages, returns, params, optimization, captured = two_micro_batch_update(
        tmp_path, tiny_model_dir, monkeypatch, critic)

    def run_update(keep: bool):
        for param in params:
            param.grad = None
        torch.manual_seed(1)
        plan = update.update_plan(loaded.ppo)
        kept = update.keep_first_pass(loaded.ppo, actor_critic, optimization, rollout, plan) if keep else None
        with torch.no_grad():
            old, values = update.old_policy_stats(loaded.ppo, actor_critic, optimization, rollout, kept)
            with actor_critic.reference_context():
                response_logprobs(actor_critic.model, rollout, loaded.ppo.temperature)
        update.run_update(loaded.ppo, actor_critic, optimization, rollout, old, values - 0.5, advantages, returns,
                        plan=plan, kept=kept)
        return old, values, captured[-1]

    fresh, kept = run_update(keep=False), run_update(keep=True)
    assert len(captured) == 2  # one optimizer step per update
    torch.testing.assert_close(kept[0], fresh[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(kept[1], fresh[1], rtol=0, atol=1e-6)
    assert sum(g.abs().sum() for g in fresh[2][:len(actor_critic.trainable_parameters()[POLICY])]) > 0
    for got, want in zip(kept[2], fresh[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_the_score_lands_on_the_last_response_token_minus_the_missing_eos_penalty(tmp_path, tiny_model_dir,
                                                                                   monkeypatch):
    """Inside the loop: responses that never stop lose ppo.missing_eos_penalty, and with no KL penalty the
    per-token rewards are zero but for each response's last token, which carries its score."""
    seen = {}
    sample, token_rewards = trainer.sample, trainer.token_rewards

    def record_rollout(*args, **kwargs):
        seen["rollout"] = sample(*args, **kwargs)
        return seen["rollout"]

    def record_rewards(kl, scores, mask, *args):
        seen["scores"], seen["rewards"] = scores.clone(), token_rewards(kl, scores, mask, *args)
        return seen["rewards"]

    monkeypatch.setattr(trainer, "sample", record_rollout)
    monkeypatch.setattr(trainer, "token_rewards", record_rewards)
    constant = write_reward(tmp_path, """
        def score(completions, prompts, **columns):
            return [1.0] * len(completions)
    """)
    trainer.run(recipe(tmp_path, tiny_model_dir, constant, "ppo.steps=1", "ppo.max_new_tokens=3", "ppo.kl.coef=0",
                       "ppo.missing_eos_penalty=0.75"))
    rollout = seen["rollout"]
    assert not rollout.contains_eos.all()  # a random tiny model rarely stops within 3 tokens
    assert torch.equal(seen["scores"], torch.where(rollout.contains_eos, 1.0, 0.25))
    last = rollout.response_mask.long().sum(1) - 1
    expected = torch.zeros_like(seen["rewards"])
    expected[torch.arange(len(last)), last] = seen["scores"]
    assert torch.equal(seen["rewards"], expected)


def test_gradient_checkpointing_gives_the_same_run(tmp_path, tiny_model_dir):
    """Recomputing activations in the backward pass changes memory, not the updates."""
    reward = write_reward(tmp_path, LENGTH_REWARD)
    trainer.run(recipe(tmp_path / "plain", tiny_model_dir, reward, "ppo.steps=2"))
    trainer.run(recipe(tmp_path / "checkpointed", tiny_model_dir, reward, "ppo.steps=2",
                       "ppo.training.gradient_checkpointing=true"))
    plain, checkpointed = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "checkpointed")
    assert checkpointed[0]["ppo/score"] == plain[0]["ppo/score"]  # same first rollout
    for key in ("ppo/policy_loss", "ppo/value_loss"):
        assert checkpointed[0][key] == pytest.approx(plain[0][key], rel=1e-4)
    assert checkpointed[1]["ppo/kl"] == pytest.approx(plain[1]["ppo/kl"], rel=1e-3, abs=1e-4)


def test_sharing_the_prompts_start_gives_the_same_run(tmp_path, tiny_model_dir, monkeypatch):
    """The chat template's opening runs once per forward (ppo.share_prompt_start): the same run to rounding.
    The prompts are kept whole (the tiny tokenizer makes them ~600 tokens; cut from the left, they would share
    nothing)."""
    shared_lengths = []
    sample = trainer.sample

    def record(*args, **kwargs):
        rollout = sample(*args, **kwargs)
        shared_lengths.append(rollout.shared_prefix)
        return rollout

    monkeypatch.setattr(trainer, "sample", record)
    reward = write_reward(tmp_path, LENGTH_REWARD)
    whole = ("ppo.steps=2", "ppo.max_prompt_tokens=1024")
    trainer.run(recipe(tmp_path / "shared", tiny_model_dir, reward, *whole))
    trainer.run(recipe(tmp_path / "plain", tiny_model_dir, reward, *whole, "ppo.share_prompt_start=false"))
    assert min(shared_lengths[:2]) >= 8 and shared_lengths[2:] == [0, 0]
    shared, plain = read_metrics(tmp_path / "shared"), read_metrics(tmp_path / "plain")
    assert shared[0]["ppo/score"] == plain[0]["ppo/score"]  # same first rollout
    for key in ("ppo/policy_loss", "ppo/value_loss", "ppo/kl"):
        assert shared[1][key] == pytest.approx(plain[1][key], rel=1e-3, abs=1e-5), key


def test_a_static_kv_cache_samples_the_same_rollouts(tmp_path, tiny_model_dir, monkeypatch):
    """ppo.kv_cache: static preallocates the cache (compiled decoding on GPUs): the same tokens as the default."""
    from transformers import GenerationMixin

    caches, generate = [], GenerationMixin.generate

    def recording_generate(self, *args, **kwargs):
        caches.append(kwargs["generation_config"].cache_implementation)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", recording_generate)
    reward = write_reward(tmp_path, LENGTH_REWARD)
    trainer.run(recipe(tmp_path / "dynamic", tiny_model_dir, reward, "ppo.steps=2"))
    trainer.run(recipe(tmp_path / "static", tiny_model_dir, reward, "ppo.steps=2", "ppo.kv_cache=static"))
    assert caches == [None, None, "static", "static"]
    dynamic, static = read_metrics(tmp_path / "dynamic"), read_metrics(tmp_path / "static")
    samples = [(tmp_path / run / "runs/quickstart/ppo/samples.jsonl").read_text() for run in ("dynamic", "static")]
    assert samples[0] == samples[1]
    assert [m["ppo/score"] for m in static] == [m["ppo/score"] for m in dynamic]


def test_long_prompts_are_cut_from_the_left_and_counted(tmp_path, tiny_model_dir):
    metrics = trainer.run(recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=1",
                                 "ppo.max_prompt_tokens=16"))
    assert metrics["ppo/prompts_cut"] == 4


def test_empty_generations_are_scored_not_fatal(tmp_path, tiny_model_dir, monkeypatch):
    """Responses that stop at once (EOS first) are scored as empty texts and the step trains on."""
    from transformers import LogitsProcessor, LogitsProcessorList

    sample = trainer.sample

    def sample_stopping_even_rows(model, tokenizer, *args, **kwargs):
        class StopEvenRows(LogitsProcessor):
            def __call__(self, input_ids, scores):
                scores[::2] = float("-inf")
                scores[::2, tokenizer.eos_token_id] = 0.0
                return scores

        generate = model.generate
        model.generate = lambda **options: generate(**{**options, "logits_processor": LogitsProcessorList(
            [StopEvenRows(), *options["logits_processor"]])})  # before the sampler's draw
        try:
            return sample(model, tokenizer, *args, **kwargs)
        finally:
            del model.generate

    monkeypatch.setattr(trainer, "sample", sample_stopping_even_rows)
    seen = tmp_path / "seen.jsonl"
    empty = write_reward(tmp_path, f"""
        import json
        def score(completions, prompts, **columns):
            with open({str(seen)!r}, "a") as log:
                log.write(json.dumps(completions) + "\\n")
            return [0.0 if not c else 1.0 for c in completions]
    """)
    metrics = trainer.run(recipe(tmp_path, tiny_model_dir, empty, "ppo.steps=1", "ppo.max_new_tokens=3"))
    [completions] = [json.loads(line) for line in seen.read_text().splitlines()]
    assert completions[0] == completions[2] == "" and metrics["ppo/empty_fraction"] >= 0.5
    assert torch.isfinite(torch.tensor(metrics["ppo/policy_loss"]))


def test_the_critic_starts_as_a_causal_lora_reward_model(tmp_path, tiny_model_dir):
    """With a LoRA reward model on the same base, the value adapter starts as its adapter and the value head
    as its score head: the critic's first value at a sequence's last token is the reward model's score."""
    from rlhf_ads.modeling import load_sequence_scorer
    from rlhf_ads.ppo.models import VALUE, build_actor_critic
    from rlhf_ads.stages import reward as reward_stage

    common = [f"model.base={tiny_model_dir}", f"output_dir={tmp_path}", "model.dtype=fp32", "model.use_lora=true"]
    reward_stage.run(config.load(None, [*common, "reward.training.max_steps=2", "reward.training.max_train_rows=4",
                                        "reward.training.max_eval_rows=4", "reward.training.max_length=1024",
                                        "reward.training.learning_rate=0.01"]))
    reward_dir = tmp_path / "quickstart/reward"
    actor_critic = build_actor_critic(config.load(None, common), None, reward_dir)
    scorer, _, _ = load_sequence_scorer(str(reward_dir), dtype="fp32")
    ids = torch.tensor([[5, 17, 33, 8, 90, 41], [7, 7, 120, 64, 3, 250]])
    actor_critic.use(VALUE)
    with torch.no_grad():
        values = actor_critic.value_head(actor_critic.trunk(input_ids=ids).last_hidden_state[:, -1]).squeeze(-1)
        scores = scorer(input_ids=ids).logits.squeeze(-1)
        fresh = build_actor_critic(config.load(None, [*common, "ppo.value_from_reward=false"]), None, reward_dir)
        fresh.use(VALUE)
        assert not fresh.value_head(fresh.trunk(input_ids=ids).last_hidden_state[:, -1]).any()
    assert torch.allclose(values, scores, atol=1e-4) and not torch.allclose(values[0], values[1])


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_separate_models_train_save_and_resume(tmp_path, tiny_model_dir, lora):
    from safetensors.torch import load_file

    reward = write_reward(tmp_path, LENGTH_REWARD)
    extra = ["ppo.models=separate", f"model.use_lora={str(lora).lower()}"]
    trainer.run(recipe(tmp_path / "a", tiny_model_dir, reward, "ppo.steps=2", *extra))
    out = tmp_path / "a/runs/quickstart/ppo"
    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    policy = load_file(out / "policy" / weights)
    base = load_file(tiny_model_dir / "model.safetensors")
    if lora:
        assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in policy.items())
    else:
        assert any(not torch.equal(policy[k], base[k]) for k in base if k in policy)
    assert (out / "value" / weights).is_file() and (out / "value_head.safetensors").is_file()
    straight = read_metrics(tmp_path / "a")
    trainer.run(recipe(tmp_path / "b", tiny_model_dir, reward, "ppo.steps=1", *extra))
    trainer.run(recipe(tmp_path / "b", tiny_model_dir, reward, "ppo.steps=2", "ppo.training.resume=true", *extra))
    assert [trainer.without_timings(m) for m in read_metrics(tmp_path / "b")] == [
        trainer.without_timings(m) for m in straight]



def test_a_user_reward_file_drives_ppo_and_its_mean_rises(tmp_path, tiny_model_dir):
    # Full-parameter PPO: a random tiny model's final norm keeps its logits near uniform, so LoRA alone
    # moves it too slowly for a short test; the loop and the reward path are the same.
    longer = write_reward(tmp_path, """
        def score(completions, prompts, **columns):
            return [len(c) / 30 for c in completions]
    """)
    trainer.run(recipe(tmp_path, tiny_model_dir, longer, "ppo.steps=10", "ppo.batch_size=16", "ppo.mini_batch_size=8",
                       "ppo.ppo_epochs=4", "ppo.training.learning_rate=0.003", "ppo.kl.coef=0", "ppo.training.save_steps=100",
                       "ppo.models=separate", "model.use_lora=false"))
    means = [m["reward/mine"] for m in read_metrics(tmp_path)]
    assert sum(means[-3:]) / 3 > sum(means[:3]) / 3 + 0.1, means


@pytest.mark.parametrize("center", [False, True])
def test_center_scores_subtracts_the_batch_mean_before_gae(tmp_path, tiny_model_dir, monkeypatch, center):
    """With center_scores the last-token rewards GAE sees sum to zero over the batch (KL coefficient 0);
    without, they are the scores themselves. The logged score stays the raw mean either way."""
    seen = {}
    original = trainer.gae

    def spy(token_rewards, values, mask, gamma, lam):
        seen["rewards"] = token_rewards.clone()
        return original(token_rewards, values, mask, gamma, lam)

    monkeypatch.setattr(trainer, "gae", spy)
    metrics = trainer.run(recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=1",
                                 "ppo.kl.coef=0", f"ppo.center_scores={str(center).lower()}"))
    total = float(seen["rewards"].sum())
    batch = seen["rewards"].shape[0]
    assert abs(metrics["ppo/score"]) > 0.01  # a nonzero mean, so centering has something to remove
    assert total == pytest.approx(0.0 if center else metrics["ppo/score"] * batch, abs=1e-4)


@pytest.mark.parametrize("critic", ["adapter", "shared"])
def test_critic_warmup_trains_the_value_only_then_the_policy(tmp_path, tiny_model_dir, critic):
    """During ppo.critic_warmup_steps the policy adapter stays bit-identical and has no optimizer state;
    the critic (the value adapter and head, or with a shared critic the head alone) moves; after the warm-up
    the policy trains."""
    from rlhf_ads.ppo.models import POLICY, VALUE, build_actor_critic

    reward = write_reward(tmp_path, LENGTH_REWARD)
    loaded = recipe(tmp_path, tiny_model_dir, reward, "ppo.steps=1", "ppo.critic_warmup_steps=1", f"ppo.critic={critic}")
    ac = build_actor_critic(loaded, None, None)
    before = {role: [p.detach().clone() for p in params] for role, params in ac.trainable_parameters().items()}
    optimization = make_optimization(Accelerator(), ac, loaded.ppo)
    rows = load_prompt_rows(config.DataSource("bundled:briefs:train"), tmp_path)[:8]
    out = tmp_path / "out"

    def moved(role):
        return any(not torch.equal(a, b) for a, b in zip(before[role], ac.trainable_parameters()[role]))

    kl_ctl, rewards = make_controller(loaded.ppo.kl), trainer.CompositeReward.from_specs(loaded.rewards)
    warm = trainer.ppo_step(loaded, ac, optimization, kl_ctl, rewards, rows, 0, out)
    assert not moved(POLICY) and moved(VALUE)
    assert not any(p in optimization.optimizer.state for p in ac.trainable_parameters()[POLICY])
    assert "ppo/policy_loss" not in warm and "ppo/value_loss" in warm
    after = trainer.ppo_step(loaded, ac, optimization, kl_ctl, rewards, rows, 1, out)
    assert moved(POLICY) and "ppo/policy_loss" in after


def test_value_loss_weight_and_weight_decay_move_the_critic(tmp_path, tiny_model_dir):
    """One critic warm-up step (two optimizer steps, the value function alone): with ppo.vf_coef 0 and no
    weight decay the critic stays as it started; weight decay alone shrinks it by (1 - lr * wd) per step;
    the value loss moves it."""
    from safetensors.torch import load_file

    reward = write_reward(tmp_path, LENGTH_REWARD)

    def critic_after(tag: str, vf_coef: float, weight_decay: float) -> dict:
        trainer.run(recipe(tmp_path / tag, tiny_model_dir, reward, "ppo.steps=1", "ppo.critic_warmup_steps=1",
                           f"ppo.vf_coef={vf_coef}", f"ppo.training.weight_decay={weight_decay}", "ppo.critic=adapter"))
        out = tmp_path / tag / "runs/quickstart/ppo"
        return {**load_file(out / "value/adapter_model.safetensors"), **load_file(out / "value_head.safetensors")}

    start = critic_after("still", vf_coef=0.0, weight_decay=0.0)
    decayed = critic_after("decay", vf_coef=0.0, weight_decay=0.5)
    trained = critic_after("trained", vf_coef=0.1, weight_decay=0.0)
    shrink = (1 - 0.001 * 0.5) ** 2  # ppo.training.learning_rate=0.001, two minibatches of 2
    assert any(v.abs().sum() > 0 for v in start.values())
    for name, weights in start.items():
        assert torch.allclose(decayed[name], weights * shrink, atol=1e-7), name
    assert any(not torch.equal(trained[name], weights) for name, weights in start.items())


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        return (print, ("this ran while loading a checkpoint",))


def test_resume_reads_the_trainer_state_with_pickling_refused(tmp_path, tiny_model_dir):
    reward = write_reward(tmp_path, LENGTH_REWARD)
    trainer.run(recipe(tmp_path, tiny_model_dir, reward, "ppo.steps=2"))
    state_file = tmp_path / "runs/quickstart/ppo/checkpoints/checkpoint-2/trainer.pt"
    assert set(torch.load(state_file, weights_only=True)) == {"optimizer", "rng_per_rank"}  # no pickled objects
    torch.save({"optimizer": {}, "rng_per_rank": [], "payload": _RunsCodeWhenUnpickled()}, state_file)
    with pytest.raises(RlhfAdsError, match="holds more than tensors and plain values, so it is not loaded"):
        trainer.run(recipe(tmp_path, tiny_model_dir, reward, "ppo.steps=3", "ppo.training.resume=true"))


@pytest.mark.parametrize("dtype,critic,compile", [("fp32", "adapter", "never"), ("fp32", "shared", "never"),
                                                   ("bf16", "adapter", "never"), ("bf16", "shared", "never"),
                                                   ("bf16", "shared", "always")])
def test_at_step_zero_the_kl_is_zero_and_the_first_ratio_is_one(tmp_path, tiny_model_dir, monkeypatch, dtype, critic,
                                                                compile):
    """Policy = reference = SFT at the start: the old log-probs come from the same forward as the update's
    and the reference's, so the KL in the first rewards is 0 and the first minibatch's ratios are 1; also
    with compiled layers (ppo.compile), whose graphs with and without gradients must round alike. The prompts
    are kept whole, so that the eager passes share their start (ppo.share_prompt_start)."""
    from tests.ppo.test_models import make_sft_adapter

    sft_dir = make_sft_adapter(tiny_model_dir, tmp_path / "sft")
    gaps = []
    policy_loss = update.policy_loss

    def record(new_logprobs, old_logprobs, advantages, mask, *args):
        gaps.append(((new_logprobs - old_logprobs).abs() * mask).max().item())
        return policy_loss(new_logprobs, old_logprobs, advantages, mask, *args)

    monkeypatch.setattr(update, "policy_loss", record)
    metrics = trainer.run(recipe(tmp_path, tiny_model_dir, write_reward(tmp_path, LENGTH_REWARD), "ppo.steps=1",
                                 f"model.dtype={dtype}", f"ppo.critic={critic}", f"ppo.sft={sft_dir}",
                                 f"ppo.compile={compile}", "ppo.max_prompt_tokens=1024"))
    assert metrics["ppo/kl"] == 0.0 and gaps[0] == 0.0
    assert max(gaps) > 0  # later minibatches see the updated policy

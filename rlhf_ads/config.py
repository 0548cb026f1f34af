"""Stage configs: one dataclass per recipe section, every field with help text.

A recipe is YAML with one section per stage; `load(path, overrides)` returns a
checked `Recipe` (see `config_schema` for the rules). Data sources and the `training:`
shapes live in `config_common`; the dpo, grpo and rloo sections in `config_online`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlhf_ads.config_common import DataSource, ReportTo, TrainerSettings, TrainingSettings
from rlhf_ads.config_online import DPOStageConfig, GRPOStageConfig, RLOOStageConfig
from rlhf_ads.config_schema import derived, load_recipe, option

PipelineStage = Literal["sft", "reward", "ppo", "dpo", "grpo", "rloo", "evaluate"]  # in the order they run


@dataclass
class LoraSettings:
    """PEFT LoRA adapter settings."""

    r: int = option(16, help="LoRA rank.")
    alpha: int = option(32, help="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = option(0.0, help="Dropout on the LoRA input; keep 0 for PPO (dropout must be off in RL).")
    target_modules: str = option("all-linear", help="Modules to adapt: 'all-linear' or a comma-separated list of names.")

    def __post_init__(self):
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    """The base causal LM and how it is held in memory."""

    base: str = option("smollm2-135m-instruct", help=(
        "Base model: a bundled name (smollm2-135m-instruct), a local transformers folder, "
        "a .gguf file, or a hub id (needs network or a filled HF cache)."))
    dtype: Literal["auto", "fp32", "bf16"] = option("auto", help=(
        "Weight and compute dtype. 'auto': bf16 on GPUs and AMX CPUs (where it is the fast path), fp32 elsewhere."))
    load_in_4bit: bool = option(False, help="Quantize linear layers to NF4 with double quantization (QLoRA); saves memory.")
    use_lora: bool = option(False, help="Wrap the model with a trainable LoRA adapter.")
    lora: LoraSettings = option(help="LoRA adapter settings (used when use_lora is true).", factory=LoraSettings)
    cache_dir: str | None = option(None, help="Where converted GGUF models are cached; default $RLHF_ADS_CACHE or ~/.cache/rlhf_ads.")


@dataclass
class GenerateConfig:
    """Stage `generate`: write ad copy for briefs with a model."""

    briefs: DataSource = option(help="Briefs or plain prompts to write for (the 'prompts' kind of `rlhf-ads data check`; "
                                     "'bundled:heldout' is short for the bundled held-out briefs).",
                                factory=lambda: DataSource("bundled:heldout"))
    adapter: str | None = option(None, help="Optional PEFT adapter folder to apply on the base (e.g. a stage's output).")
    num_briefs: int = option(6, help="How many briefs to write for (the first N).")
    batch_size: int = option(6, help="Prompts per generation batch.")
    max_new_tokens: int = option(48, help="Token budget for each ad.")
    temperature: float = option(0.7, help="Sampling temperature; 0 means greedy decoding.")
    top_p: float = option(0.9, help="Nucleus sampling mass.")
    best_of: int = option(1, help=(
        "Best-of-n: sample this many ads per brief and keep the one the recipe's reward mix (`rewards:`) scores "
        "highest; 1: one sample."))

    def __post_init__(self):
        if self.num_briefs < 1 or self.batch_size < 1 or self.max_new_tokens < 1 or self.best_of < 1:
            raise ValueError("num_briefs, batch_size, max_new_tokens and best_of must all be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if self.best_of > 1 and self.temperature == 0:
            raise ValueError(f"best_of={self.best_of} needs sampling: greedy decoding writes the same ad n times; "
                             "set temperature > 0")


@dataclass
class PPOTrainingSettings(TrainingSettings):
    """`ppo.training`: the common settings with PPO's defaults."""

    learning_rate: float = option(1e-4, help="AdamW learning rate for the policy and value adapters.")
    weight_decay: float = option(0.01, help="AdamW weight decay (torch's AdamW default).")
    save_steps: int = option(5, help="Checkpoint every N PPO steps (atomic; resume continues from the newest).")


@dataclass
class SFTStageConfig:
    """Stage `sft`: supervised fine-tuning on brief -> ad copy, loss on the completion only."""

    train: DataSource = option(help="Training rows (sft kind).", factory=lambda: DataSource("bundled:sft:train"))
    eval: DataSource = option(help="Held-out rows for loss and perplexity.", factory=lambda: DataSource("bundled:sft:heldout"))
    sample_briefs: DataSource = option(help="Held-out briefs (or plain prompts) to write sample ads for (base vs SFT).",
                                       factory=lambda: DataSource("bundled:heldout"))
    num_samples: int = option(24, help="Held-out briefs to write ads for after training (0: skip).")
    max_new_tokens: int = option(48, help="Token budget of each sample ad.")
    merge: bool = option(False, help="Also save the adapter merged into the base as a plain model (merged/).")
    training: TrainerSettings = option(help="Optimizer, schedule and checkpoints.", factory=TrainerSettings)


@dataclass
class RewardStageConfig:
    """Stage `reward`: a pairwise Bradley-Terry reward model or a pointwise click-through model."""

    kind: Literal["pairwise", "ctr"] = option("pairwise", help="'pairwise' on preferences, 'ctr' on click logs (BCE).")
    backbone: Literal["causal", "encoder"] = option("causal", help=(
        "'causal': the `model` section's base with a score head (LoRA/QLoRA as set there); "
        "'encoder': a BERT-style sequence classifier (see encoder)."))
    encoder: str = option("minilm-l6", help="Encoder backbone: a bundled name (minilm-l6) or a local folder.")
    output: str = option("reward", help="Output folder name under the run (e.g. 'ctr' for a click-through model).")
    train: DataSource | None = option(None, help=(
        "Training rows (preferences or clicks kind); default: the bundled train split of the kind's data."))
    eval: DataSource | None = option(None, help=(
        "Held-out rows for accuracy (pairwise) or AUC/log-loss (ctr); default: the bundled held-out split."))
    score_samples: DataSource = option(help="Held-out SFT rows whose reward mean/std is recorded (for PPO normalization).",
                                       factory=lambda: DataSource("bundled:sft:heldout"))
    max_score_rows: int | None = option(None, help=(
        "Score only the first N score_samples rows (after shuffling with the seed), once per rater; "
        "None: training.max_eval_rows."))
    margin_column: str | None = option(None, help="Column with a per-pair margin for the Bradley-Terry loss (optional).")
    rater_column: str | None = option(None, help=(
        "Pairwise: column naming who judged each pair (the bundled data: designer_id). The scorer then reads "
        "'rater: <id>' before the brief and learns each rater's taste; as a reward it scores the mean over the "
        "raters seen in training, or one rater (reward_model kwargs: {rater: <id>})."))
    center_rewards_coefficient: float | None = option(None, help="Reward centering weight (Eisenstein et al. 2023); e.g. 0.01.")
    limit_fit: bool = option(False, help=(
        "The scorer also reads the ad's width as a share of the brief's limit ('87% of the limit', 'over it'), "
        "which a subword tokenizer cannot count; the reward model's held-out accuracy shows whether it helps."))
    training: TrainerSettings = option(help="Optimizer, schedule and checkpoints.", factory=lambda: TrainerSettings(
        learning_rate=1e-4, batch_size=16))

    def __post_init__(self):
        if self.rater_column and self.kind != "pairwise":
            raise ValueError("reward.rater_column applies to kind: pairwise only")
        if self.max_score_rows is not None and self.max_score_rows < 1:
            raise ValueError(f"reward.max_score_rows must be >= 1 (or null), got {self.max_score_rows}")
        bundled = "preferences" if self.kind == "pairwise" else "clicks"
        self.train = self.train or DataSource(f"bundled:{bundled}:train")
        self.eval = self.eval or DataSource(f"bundled:{bundled}:heldout")


@dataclass
class KLSettings:
    """The KL penalty to the reference policy."""

    coef: float = option(0.05, help="Initial KL coefficient beta (reward -= beta * KL per token).")
    estimator: str = option("k1", help=lambda: "Per-token KL estimator, one of: " + "; ".join(
        fn.__doc__.rstrip(".") for fn in _kl_estimators().values()) + ".")
    target: float | None = option(None, help="Adaptive controller target KL (Ziegler et al.: 6); None keeps beta fixed.")
    horizon: int = option(10000, help="Adaptive controller horizon, in samples.")
    stop_above: float | None = option(None, help="Stop the run (after saving) when mean KL exceeds this: a blow-up guard.")

    def __post_init__(self):
        if self.estimator not in _kl_estimators():
            raise ValueError(f"estimator must be one of {', '.join(_kl_estimators())}, got '{self.estimator}'")


def _reward_names() -> str:
    from rlhf_ads.rewards.registry import names_help  # the list lives beside the reward resolver

    return names_help()


def _kl_estimators() -> dict:
    from rlhf_ads.ppo.kl import ESTIMATORS  # the table lives beside the estimators

    return ESTIMATORS


@dataclass
class PPOStageConfig:
    """Stage `ppo`: our PPO on one shared base with LoRA adapters for policy and value."""

    prompts: DataSource = option(help="Prompts: briefs or rows with a prompt ('prompts' kind of `rlhf-ads data check`).",
                                 factory=lambda: DataSource("bundled:briefs:train"))
    sft: str | None = option(None, help="SFT stage output folder to start the policy (and reference) from; "
                                        "default <output_dir>/<run_name>/sft when it exists.")
    value_from_reward: bool = option(True, help="Initialise the value head from the reward model's score head when shapes allow.")
    models: Literal["shared", "separate"] = option("shared", help=(
        "'shared': one base carries the policy, reference and value adapters (least memory). 'separate': "
        "the policy, reference and value each get their own copy of the base; with model.use_lora: false the "
        "policy and value train all their weights (full-parameter PPO, ~4x the memory of 'shared')."))
    critic: Literal["auto", "adapter", "shared"] = option("auto", help=(
        "'shared': the value head reads the policy's last hidden state, so one forward and one backward per "
        "micro-batch give the policy and value losses (needs models: shared); 'adapter': the value function has "
        "its own LoRA adapter on the base (and its own forward and backward passes); 'auto': shared, except with "
        "models: separate or when the critic can start as a LoRA causal reward model on the same base "
        "(value_from_reward), which take 'adapter'."))
    sampling: Literal["auto", "merged", "adapters"] = option("auto", help=(
        "How rollouts decode. 'merged': from a plain copy of the model whose adapted weights are rebuilt as "
        "base + policy adapter before each rollout (faster decoding; costs one copy of the adapted weights in the "
        "compute dtype, on a 4-bit base the dequantized model); 'adapters': through the PEFT adapters; "
        "'auto': merged, except on 4-bit bases (whose point is memory) and under DeepSpeed ZeRO-3."))
    kv_cache: Literal["dynamic", "static"] = option("dynamic", help=(
        "The rollouts' KV cache. 'dynamic': transformers' default, grown token by token; 'static': preallocated "
        "for prompt + max_new_tokens, which lets transformers compile the decoding step on GPUs. The compile "
        "repeats for each new prompt width (a batch's longest prompt), so it pays only over long runs; no gain "
        "on CPUs. `make gpu-check` measures both. With ppo.compile on, rollouts from the merged copy take a static "
        "cache sized in buckets of 64 tokens and a compiled decoding step on any device, whatever this says."))
    compile: Literal["auto", "always", "never"] = option("auto", help=(
        "torch.compile the base's transformer layers for the update and the rollout's scoring passes, and decoding "
        "through the merged copy with a static cache. On a 2-core CPU with AMX it cost about 90 s once per run "
        "and made each step of the benchmark 6.2 s instead of 8.7 s in bf16 (benchmarks/RESULTS.md), paid back after "
        "about 40 steps. 'auto': on for runs of at least 40 steps on a GPU or a CPU with AMX (on a CPU without, eager "
        "steps with ppo.share_prompt_start measured faster), except with "
        "model.load_in_4bit, gradient checkpointing, DeepSpeed or models: separate, where 'always' is an error; 'never': eager."))
    share_prompt_start: bool = option(True, help=(
        "Run the tokens every prompt of a rollout starts with (the chat template's opening, a system prompt) once "
        "per forward pass instead of once per row, sharing their keys and values across the rows (and summing "
        "their gradients); the numbers are the plain forward's to rounding. Off, whatever this says, with "
        "ppo.training.gradient_checkpointing (which drops the cache) and with ppo.compile on (the compiled layers "
        "would recompile once per layer for the cache)."))
    steps: int = option(20, help="PPO steps (each: one rollout batch, then ppo_epochs of updates).")
    batch_size: int = option(8, help="Prompts per rollout.")
    mini_batch_size: int = option(4, help=(
        "Samples per optimizer step inside a PPO epoch; split into training.grad_accum micro-batches."))
    ppo_epochs: int = option(4, help="Passes over each rollout batch.")
    max_new_tokens: int = option(32, help="Response budget in tokens.")
    max_prompt_tokens: int = option(384, help="Longer prompts are cut from the left (their end, the request, is kept).")
    temperature: float = option(0.7, help="Sampling temperature; log-probs are computed from logits / temperature.")
    top_p: float = option(1.0, help="Nucleus sampling mass for rollouts.")
    missing_eos_penalty: float | None = option(1.0, help="Subtracted from the score of responses that never stop.")
    gamma: float = option(1.0, help="GAE discount.")
    lam: float = option(0.95, help="GAE lambda.")
    cliprange: float = option(0.2, help="Policy ratio clip.")
    cliprange_value: float = option(0.2, help="Value clip.")
    vf_coef: float = option(0.1, help="Value loss coefficient (the value loss's weight against the policy loss).")
    entropy_coef: float = option(0.0, help=(
        "Entropy bonus (Schulman et al. 2017, eq. 9): the policy loss minus this times the mean per-token entropy "
        "of the policy at the sampling temperature. 0 (TRL's and OpenRLHF's default) leaves the policy's spread to "
        "the KL penalty alone. It holds the spread of sampled ads, not the variety of greedy ones: on the bundled "
        "task 0.05 kept the rollouts' entropy at SFT's for 110 of 200 steps while the greedy ads templated as "
        "without it (docs/ppo_outcome.md, full_k)."))
    whiten_rewards: bool = option(False, help="Whiten per-token rewards (without shifting the mean) before GAE.")
    center_scores: bool = option(False, help=(
        "Subtract the rollout batch's mean score before GAE (a baseline). With a value head that starts at zero "
        "(e.g. from an encoder reward model) and scores of positive mean, the last token of every response, "
        "EOS, otherwise gets the largest advantage, which favours stopping early."))
    critic_warmup_steps: int = option(0, help=(
        "The first N steps train the value function only; the policy stays as it is (OpenRLHF's "
        "freezing_actor_steps). Use it when the value head cannot start from the reward model (e.g. an encoder "
        "reward model): a critic at zero makes the first advantages the raw scores."))
    kl: KLSettings = option(help="KL penalty and its controller.", factory=KLSettings)
    log_samples: int = option(4, help="Sample generations written to samples.jsonl (and the tracker's table) each step.")
    training: PPOTrainingSettings = option(help=(
        "AdamW over the policy and value adapters, gradient accumulation and checkpoints; per-step metrics always "
        "go to metrics.jsonl."), factory=PPOTrainingSettings)
    eval_every: int = option(0, help=(
        "Every N steps (and before the first and after the last), one greedy ad per validation prompt "
        "(ppo.eval_prompts) with evaluate.max_new_tokens, scored by the reward mix (ppo/eval/reward, the proxy) "
        "and, for briefs, by the gold utility (ppo/eval/gold); the policy with the best validation proxy is kept "
        "in <ppo>/best/policy. 0: off."))
    eval_prompts: DataSource = option(help="Validation prompts for eval_every: briefs or prompts not trained on, "
                                           "and not the held-out ones `evaluate` reports on.",
                                      factory=lambda: DataSource("bundled:briefs:validation"))
    eval_num_prompts: int = option(32, help="How many validation prompts, with the source's mix of ad targets "
                                            "(platform, field).")
    micro_batch_size: int = derived(help="mini_batch_size / training.grad_accum: samples per forward pass.")

    def __post_init__(self):
        if self.batch_size % self.mini_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of mini_batch_size "
                             f"({self.mini_batch_size})")
        if self.mini_batch_size % self.training.grad_accum:
            raise ValueError(f"mini_batch_size ({self.mini_batch_size}) must be a multiple of training.grad_accum "
                             f"({self.training.grad_accum})")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 for PPO rollouts (log-probs divide by it)")
        if self.entropy_coef < 0:
            raise ValueError(f"entropy_coef must be >= 0 (a bonus; 0: off), got {self.entropy_coef}")
        if self.eval_every < 0 or self.eval_num_prompts < 1:
            raise ValueError(f"eval_every must be >= 0 (0: off) and eval_num_prompts >= 1, got {self.eval_every} "
                             f"and {self.eval_num_prompts}")
        self.micro_batch_size = self.mini_batch_size // self.training.grad_accum


@dataclass
class EvaluateConfig:
    """`rlhf-ads evaluate`: compare checkpoints on held-out briefs."""

    models: list[str] = option(help=(
        "Checkpoints: base, sft, ppo, dpo, grpo, rloo (the stages' adapters), ppo_best (PPO's policy at its best "
        "validation proxy, <ppo>/best/policy), best_of_n (the SFT adapter sampling "
        "best_of_n ads per brief, the reward mix keeping the best), or adapter folders."),
        factory=lambda: ["base", "sft", "ppo"])
    briefs: DataSource = option(help="Held-out briefs or plain prompts (the 'prompts' kind of `rlhf-ads data check`).",
                                factory=lambda: DataSource("bundled:heldout"))
    num_briefs: int | Literal["all"] = option(64, help="How many briefs, with the source's mix of ad targets "
                                                       "(platform, field), or 'all'.")
    samples_per_brief: int = option(0, help=(
        "Besides the greedy ad, sample this many ads per brief at the policy's temperature and top_p "
        "(ppo.temperature, ppo.top_p) and report means over them too (eval/<model>/sampled/<metric>); 0: greedy only."))
    best_of_n: int = option(4, help=(
        "n of the best_of_n model: ads sampled per brief from the SFT adapter at the policy's temperature and top_p "
        "(ppo.temperature, ppo.top_p), of which the recipe's reward mix keeps the best (its KL to SFT is reported as "
        "the analytic log(n) - (n - 1)/n)."))
    max_new_tokens: int = option(48, help="Token budget of each ad.")
    temperature: float = option(0.0, help="0: greedy decoding (evaluation default).")
    batch_size: int = option(8, help="Prompts per generation batch.")
    judge: str | None = option(None, help=(
        "Reward component (by name) that judges win rates against SFT; default: the first reward_model "
        "component of the mix, else the composite reward."))
    report_samples: int = option(12, help="Briefs shown side by side in report.html.")
    report_to: ReportTo = option("none", help=(
        "Also send the metrics and a table of the sample ads to this tracker (metrics.json is always written)."))

    def __post_init__(self):
        if self.num_briefs != "all" and self.num_briefs < 1:
            raise ValueError(f"evaluate.num_briefs must be at least 1 or 'all', got {self.num_briefs}")
        if self.samples_per_brief < 0:
            raise ValueError(f"evaluate.samples_per_brief must be 0 (greedy only) or more, got {self.samples_per_brief}")
        if self.best_of_n < 1:
            raise ValueError(f"evaluate.best_of_n must be at least 1, got {self.best_of_n}")


@dataclass
class RewardSpec:
    """One component of the reward mix."""

    function: str = option(help=lambda: (
        f"A registry name ({_reward_names()}), 'package.module:callable' or 'path/to/file.py:callable'."))
    name: str | None = option(None, help="Name in logs (reward/<name>); default: the function's name.")
    weight: float = option(1.0, help="Weight of this component in the sum.")
    kwargs: dict[str, Any] = option(help="Keyword arguments: passed to a class's constructor or bound to a function.",
                                    factory=dict)
    normalize: bool = option(False, help="Standardize with a running mean/std before weighting (PPO-max).")
    clip: float | None = option(None, help="Clip the (normalized) value to [-clip, clip].")
    veto: float | None = option(None, help=(
        "A hard rule: where this function's raw value is below 0, the sample's total reward is `veto` instead of "
        "the weighted sum (e.g. length_limit with veto -3: an ad the platform rejects earns -3, whatever the "
        "reward model gives it). Where several vetoes fire, the lowest wins."))


@dataclass
class TrackingConfig:
    """How a run is named in the experiment tracker; each stage's `report_to` picks the tracker."""

    project: str = option("rlhf-ads", help="W&B project (TensorBoard writes to <stage>/tensorboard/<name> instead).")
    entity: str | None = option(None, help="W&B entity (team or user); default: your W&B default.")
    name: str | None = option(None, help="Run name; default '<run_name>-<stage>'.")
    group: str | None = option(None, help="W&B group that gathers a pipeline's stages; default: run_name.")
    tags: list[str] = option(help="W&B tags, e.g. [quickstart, cpu].", factory=list)
    log_artifacts: bool = option(False, help="Upload each stage's final adapters to W&B as a model artifact.")


@dataclass
class Recipe:
    """A whole recipe: run identity plus one section per stage."""

    run_name: str = option("quickstart", help="Name of the run; outputs go to <output_dir>/<run_name>/<stage>/.")
    output_dir: str = option("runs", help="Root folder for run outputs.")
    seed: int = option(0, help="Seed for Python, NumPy and torch.")
    pipeline: list[PipelineStage] = option(help=(
        "The stages `rlhf-ads pipeline` runs unless --stages says (in the order sft, reward, ppo, dpo, grpo, rloo, "
        "evaluate, whatever the list's)."), factory=lambda: ["sft", "reward", "ppo", "evaluate"])
    model: ModelConfig = option(help="The base model.", factory=ModelConfig)
    generate: GenerateConfig = option(help="Stage `generate`.", factory=GenerateConfig)
    sft: SFTStageConfig = option(help="Stage `sft`.", factory=SFTStageConfig)
    reward: RewardStageConfig = option(help="Stage `reward`.", factory=RewardStageConfig)
    ppo: PPOStageConfig = option(help="Stage `ppo`.", factory=PPOStageConfig)
    dpo: DPOStageConfig = option(help="Stage `dpo`.", factory=DPOStageConfig)
    grpo: GRPOStageConfig = option(help="Stage `grpo`.", factory=GRPOStageConfig)
    rloo: RLOOStageConfig = option(help="Stage `rloo`.", factory=RLOOStageConfig)
    evaluate: EvaluateConfig = option(help="`rlhf-ads evaluate`.", factory=EvaluateConfig)
    rewards: list[RewardSpec] = option(help=(
        "The reward mix used by PPO, GRPO, RLOO (one reward function per component), best-of-n and evaluation."),
        factory=list)
    tracking: TrackingConfig = option(help="Experiment tracker run names (W&B project, group, tags).",
                                      factory=TrackingConfig)

    def stage_dir(self, stage: str) -> Path:
        """Output folder of one stage: <output_dir>/<run_name>/<stage>."""
        return Path(self.output_dir) / self.run_name / stage


RUN_DIR = "{run_dir}"


def load(path: str | Path | None, overrides: list[str] = ()) -> Recipe:
    """Load and check a recipe; `overrides` are `section.key=value` strings. In reward kwargs,
    '{run_dir}' stands for <output_dir>/<run_name>, so a recipe can name its own stages' outputs."""
    recipe = load_recipe(Recipe, path, overrides)
    run_dir = str(Path(recipe.output_dir) / recipe.run_name)
    for spec in recipe.rewards:
        spec.kwargs = {k: v.replace(RUN_DIR, run_dir) if isinstance(v, str) else v for k, v in spec.kwargs.items()}
    return recipe

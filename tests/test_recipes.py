"""Every recipe we ship runs: each file in recipes/ loads, names complete stages, and runs every stage it names
end to end through the CLI on a tiny random-init model (one or two steps a stage), 4-bit layers included."""

from pathlib import Path

import pytest

from rlhf_ads import config
from rlhf_ads.config import Recipe
from rlhf_ads.config_schema import read_recipe_file
from rlhf_ads.errors import ConfigError
from rlhf_ads.pipeline import STAGES
from tests.helpers import run_cli

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def named_stages(path: Path) -> list[str]:
    """The stages a recipe (with its base_recipe chain) writes a section for, in pipeline order."""
    raw = read_recipe_file(path, Recipe, {})
    return [stage for stage in STAGES if stage in raw]


def tiny_overrides(recipe: Recipe, model_dir: Path, output_dir: Path) -> list[str]:
    """Overrides that shrink a recipe to one or two steps per stage on the tiny model, keeping its structure
    (4-bit, LoRA, reward backbone, critic, reward mix)."""
    return [
        f"model.base={model_dir}", f"output_dir={output_dir}",
        "generate.num_briefs=1", "generate.batch_size=1", "generate.max_new_tokens=4",
        "sft.num_samples=1", "sft.max_new_tokens=4",
        *(f"{stage}.training.{key}" for stage in ("sft", "reward", "dpo") for key in (
            "max_steps=1", "batch_size=2", "grad_accum=1", "max_train_rows=4", "max_eval_rows=2", "save_steps=1",
            "average_checkpoints=1", "max_length=512")),
        "reward.max_score_rows=4",
        "ppo.steps=2", f"ppo.critic_warmup_steps={min(recipe.ppo.critic_warmup_steps, 1)}",
        "ppo.batch_size=2", "ppo.mini_batch_size=2", "ppo.ppo_epochs=1", "ppo.max_new_tokens=4",
        "ppo.eval_every=1", "ppo.eval_num_prompts=2", "ppo.training.save_steps=1",
        *(f"{stage}.{key}" for stage in ("grpo", "rloo") for key in (
            "steps=1", "prompts_per_step=1", "num_generations=2", "num_iterations=1", "max_new_tokens=4",
            "eval_every=1", "training.grad_accum=1", "training.save_steps=1")),
        "evaluate.num_briefs=2", "evaluate.batch_size=2", "evaluate.max_new_tokens=4", "evaluate.report_samples=1",
        f"evaluate.samples_per_brief={min(recipe.evaluate.samples_per_brief, 1)}", "evaluate.best_of_n=2",
    ]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_names_complete_stages(path):
    stages = named_stages(path)
    assert stages, f"{path.name} names no stage"
    recipe = config.load(path)
    for online in {"ppo", "grpo", "rloo"} & set(stages):
        assert recipe.rewards, f"{path.name} has a {online} section but no reward mix"
        assert {"sft", "reward"} <= set(stages), f"{path.name}: {online} needs the SFT and reward stages it starts from"
    assert "dpo" not in stages or "sft" in stages, f"{path.name}: DPO needs the SFT stage it starts from"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_runs_every_stage_it_names_on_a_tiny_model(path, tiny_model_dir, tmp_path):
    recipe = config.load(path)
    overrides = tiny_overrides(recipe, tiny_model_dir, tmp_path / "runs")
    stages = named_stages(path)
    done = run_cli("pipeline", path, "--stages", ",".join(stages), *overrides, cwd=tmp_path,
                   env_extra={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    shrunk = config.load(path, overrides)
    for stage in stages:
        folder = {"evaluate": "report", "reward": shrunk.reward.output}.get(stage, stage)
        assert (shrunk.stage_dir(folder) / "metrics.json").is_file(), stage
    if "sft" in stages and shrunk.model.load_in_4bit:  # the adapter's model card records the 4-bit base it ran on
        assert "4-bit base" in (shrunk.stage_dir("sft") / "README.md").read_text()
    if "generate" in read_recipe_file(path, Recipe, {}):
        written = run_cli("generate", path, *overrides, cwd=tmp_path)
        assert written.returncode == 0, written.stderr[-3000:]


def test_a_recipe_inherits_its_base_recipe_and_overrides_only_what_differs(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "run_name: parent\nsft:\n  train: bundled:sft:train\n  training: {learning_rate: 1.0e-3, max_steps: 3}\n"
        "rewards:\n  - {function: length_fit}\n  - {function: ad_policy}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/child.yaml").write_text(
        "base_recipe: ../parent.yaml\nrun_name: child\nsft:\n  train: {on_error: skip}\n  training: {max_steps: 5}\n"
        "rewards:\n  - {function: keyword_coverage}\n")
    recipe = config.load(tmp_path / "sub/child.yaml", ["sft.training.learning_rate=2e-4"])
    assert recipe.run_name == "child"
    assert recipe.sft.train.path == "bundled:sft:train" and recipe.sft.train.on_error == "skip"  # shorthand expanded
    assert (recipe.sft.training.max_steps, recipe.sft.training.learning_rate) == (5, 2e-4)  # override wins
    assert [spec.function for spec in recipe.rewards] == ["keyword_coverage"]  # a list replaces the parent's


def test_inherited_recipe_errors_name_the_file_that_set_the_key(tmp_path):
    (tmp_path / "parent.yaml").write_text("sft:\n  training: {max_stepz: 3}\n")
    (tmp_path / "child.yaml").write_text("base_recipe: parent.yaml\nppo: {stepz: 2}\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: unknown key 'sft\.training\.max_stepz'.*max_steps"):
        config.load(tmp_path / "child.yaml")
    (tmp_path / "parent.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: unknown key 'ppo\.stepz'"):
        config.load(tmp_path / "child.yaml")
    (tmp_path / "parent.yaml").write_text("base_recipe: child.yaml\n")
    with pytest.raises(ConfigError, match="base_recipe chain loops"):
        config.load(tmp_path / "child.yaml")
    (tmp_path / "child.yaml").write_text("base_recipe: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing\.yaml.*the base_recipe of .*child\.yaml.*not found"):
        config.load(tmp_path / "child.yaml")

import dataclasses
import typing
from pathlib import Path

import pytest

from rlhf_ads import config
from rlhf_ads.config_schema import field_help
from rlhf_ads.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_quickstart_recipe_loads_with_types():
    recipe = config.load(REPO / "recipes" / "quickstart.yaml")
    assert recipe.model.base == "smollm2-135m-instruct"
    assert recipe.model.dtype == "auto"
    assert isinstance(recipe.generate.top_p, float)
    assert recipe.stage_dir("generate") == Path("runs/quickstart/generate")


def test_unknown_key_names_key_file_and_suggestion(tmp_path):
    path = write(tmp_path, "generate:\n  max_new_tokns: 4\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert str(path) in message and "generate.max_new_tokns" in message
    assert "did you mean 'generate.max_new_tokens'" in message


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'modle'.*did you mean 'model'"):
        config.load(write(tmp_path, "modle:\n  base: x\n"))


@pytest.mark.parametrize("text, key, expected", [
    ("generate:\n  max_new_tokens: lots\n", "generate.max_new_tokens", "an integer"),
    ("generate:\n  top_p: yes\n", "generate.top_p", "a number"),
    ("model:\n  dtype: fp16\n", "model.dtype", "one of 'auto', 'fp32', 'bf16'"),
    ("model:\n  load_in_4bit: 1\n", "model.load_in_4bit", "true or false"),
    ("model: 3\n", "model", "a mapping"),
])
def test_wrong_type_names_key_and_file(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(path) in str(err.value) and f"'{key}' must be {expected}" in str(err.value)


def test_overrides_apply_with_types_and_errors_name_the_override(tmp_path):
    path = write(tmp_path, "generate:\n  num_briefs: 3\n")
    recipe = config.load(path, ["generate.num_briefs=5", "model.dtype=fp32", "model.lora.r=4", "generate.top_p=1"])
    assert (recipe.generate.num_briefs, recipe.model.dtype, recipe.model.lora.r) == (5, "fp32", 4)
    assert recipe.generate.top_p == 1.0 and isinstance(recipe.generate.top_p, float)
    assert config.load(path, ["sft.training.learning_rate=5e-4"]).sft.training.learning_rate == 5e-4  # YAML reads a str
    with pytest.raises(ConfigError, match=r"override 'generate\.num_brief=2'.*unknown key"):
        config.load(path, ["generate.num_brief=2"])
    with pytest.raises(ConfigError, match=r"override 'generate\.num_briefs=two'.*must be an integer"):
        config.load(path, ["generate.num_briefs=two"])
    with pytest.raises(ConfigError, match="key=value"):
        config.load(path, ["generate.num_briefs"])


def test_a_data_source_written_as_a_string_takes_dotted_overrides_like_a_mapping():
    quickstart = REPO / "recipes/quickstart.yaml"  # writes `briefs: bundled:heldout`, `train: bundled:sft:train`
    recipe = config.load(quickstart, ["generate.briefs.path=my_briefs.jsonl", "sft.train.on_error=skip",
                                      "ppo.prompts.split=train"])
    assert (recipe.generate.briefs.path, recipe.sft.train.path, recipe.sft.train.on_error) == (
        "my_briefs.jsonl", "bundled:sft:train", "skip")
    assert (recipe.ppo.prompts.path, recipe.ppo.prompts.split) == ("bundled:train", "train")
    with pytest.raises(ConfigError, match="'num_briefs' is a value, not a section"):
        config.load(quickstart, ["generate.num_briefs.path=2"])


def test_bad_combinations_fail_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="top_p in"):
        config.load(write(tmp_path, "generate:\n  top_p: 1.5\n"))
    with pytest.raises(ConfigError, match="lora.r must be >= 1"):
        config.load(None, ["model.lora.r=0"])
    with pytest.raises(ConfigError, match="max_score_rows must be >= 1"):
        config.load(None, ["reward.max_score_rows=0"])


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.yaml")


def _config_classes(cls):
    yield cls
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _config_classes(hint)


def test_every_field_has_help_text():
    classes = list(_config_classes(config.Recipe))
    assert config.GenerateConfig in classes and config.LoraSettings in classes
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
    keys = [k for k, _, _ in field_help(config.Recipe)]
    assert "model.lora.r" in keys and "generate.max_new_tokens" in keys


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "recipes").glob("*.yaml")))
def test_every_shipped_recipe_loads(name):
    recipe = config.load(REPO / "recipes" / name)
    assert recipe.run_name and recipe.sft.training.learning_rate > 0


def test_every_training_stage_has_one_training_section_shape():
    recipe = config.load(None, ["ppo.training.learning_rate=0.003", "sft.training.learning_rate=0.002"])
    for stage in ("sft", "reward", "ppo"):
        assert isinstance(getattr(recipe, stage).training, config.TrainingSettings), stage
    assert (recipe.sft.training.learning_rate, recipe.ppo.training.learning_rate) == (0.002, 0.003)
    with pytest.raises(ConfigError, match="unknown key 'ppo.learning_rate'"):
        config.load(None, ["ppo.learning_rate=0.003"])


def test_derived_sizes_are_computed_once_and_cannot_be_set():
    recipe = config.load(None, ["ppo.mini_batch_size=8", "ppo.training.grad_accum=4", "ppo.batch_size=16"])
    assert recipe.ppo.micro_batch_size == 2
    assert "ppo.micro_batch_size" not in [k for k, _, _ in field_help(config.Recipe)]
    with pytest.raises(ConfigError, match="'ppo.micro_batch_size' is derived, not set"):
        config.load(None, ["ppo.micro_batch_size=3"])
    with pytest.raises(ConfigError, match=r"mini_batch_size \(8\) must be a multiple of training.grad_accum \(3\)"):
        config.load(None, ["ppo.mini_batch_size=8", "ppo.training.grad_accum=3"])


def test_kl_estimators_and_shipped_rewards_are_listed_from_their_one_table(monkeypatch):
    from rlhf_ads.ppo import kl
    from rlhf_ads.rewards import registry

    monkeypatch.setitem(kl.ESTIMATORS, "k2", lambda log_ratio: 0.5 * log_ratio ** 2)
    assert config.load(None, ["ppo.kl.estimator=k2"]).ppo.kl.estimator == "k2"
    with pytest.raises(ConfigError, match="estimator must be one of k1, k3, k2, got 'k9'"):
        config.load(None, ["ppo.kl.estimator=k9"])
    monkeypatch.setitem(registry.SHIPPED, "tone", registry.ShippedReward("reward_models.tone:tone", "brand tone"))
    helps = {key: text for key, text, _ in field_help(config.RewardSpec)}
    assert "length_limit, length_fit" in helps["function"] and "brief_facts" in helps["function"]
    assert "tone" in helps["function"]


def test_a_section_written_in_part_keeps_its_own_factory_defaults(tmp_path):
    """The reward stage trains with lr 1e-4 and batch 16 unless told otherwise, also when a recipe writes
    other keys of reward.training."""
    defaults = config.load(None, []).reward.training
    written = config.load(write(tmp_path, "reward:\n  training:\n    epochs: 2\n"), []).reward.training
    assert (defaults.learning_rate, defaults.batch_size) == (written.learning_rate, written.batch_size) == (1e-4, 16)
    assert written.epochs == 2.0
    ctr = config.load(write(tmp_path, "reward:\n  kind: ctr\n"), []).reward  # data that follows the kind
    assert (ctr.train.path, ctr.eval.path, ctr.training.learning_rate) == ("bundled:clicks:train",
                                                                           "bundled:clicks:heldout", 1e-4)


def test_stage_help_lists_shared_keys_and_the_defaults_config_resolves(capsys):
    from rlhf_ads import cli

    with pytest.raises(SystemExit):
        cli.main(["reward", "--help"])
    text = capsys.readouterr().out
    for key in ("model.base", "model.dtype", "output_dir", "run_name", "seed", "tracking.project"):
        assert f"\n  {key} (default " in text, key
    assert "reward.training.learning_rate (default 0.0001)" in text and "reward.training.batch_size (default 16)" in text
    assert "ppo.steps" not in text  # another stage's section stays out

"""The reward mix as TRL reward functions: TRL's calling convention reaches our plugins as `fn(completions, prompts,
**columns)` with the brief's columns, under our names and weights; a plugin's error or NaN is our clear error."""

import pytest

from rlhf_ads import config
from rlhf_ads.data import load_prompts, reward_columns
from rlhf_ads.rewards import CompositeReward, RewardError
from rlhf_ads.stages.online_rewards import ROW, prompt_dataset, trl_reward_functions

PLUGINS = """
seen = []

def keywords_seen(completions, prompts, **columns):
    seen.append((list(completions), list(prompts), columns))
    return [float(len(k or [])) for k in columns["keywords"]]

def not_for_meta(completions, prompts, **columns):
    return [None if p == "meta" else 1.0 for p in columns["platform"]]

def broken(completions, prompts, **columns):
    return [math.nan if "bad" in c else 0.0 for c in completions]

import math
"""


def call_like_trl(fn, prompts, completions, rows, logged):
    """As TRL's GRPOTrainer/RLOOTrainer call a reward function (its _calculate_rewards)."""
    return fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
              trainer_state=object(), log_extra=lambda column, values: None,
              log_metric=lambda name, value: logged.append((name, value)), **{ROW: rows})


def test_components_get_our_convention_columns_names_and_weights(tmp_path):
    (tmp_path / "plugins.py").write_text(PLUGINS)
    specs = [config.RewardSpec(function=f"{tmp_path / 'plugins.py'}:keywords_seen", name="kw", weight=0.3),
             config.RewardSpec(function=f"{tmp_path / 'plugins.py'}:not_for_meta", name="limits", weight=2.0)]
    rows = load_prompts("bundled:heldout")[:3]
    funcs, weights = trl_reward_functions(CompositeReward.from_specs(specs), rows)
    assert [f.__name__ for f in funcs] == ["kw", "limits"] and weights == [0.3, 2.0]  # TRL logs rewards/kw/mean
    assert prompt_dataset(["a", "b", "c"])[ROW] == [0, 1, 2]
    logged = []
    rows_of_completions = [2, 2, 0, 0]  # two prompts, two generations each, as TRL repeats them
    values = call_like_trl(funcs[0], ["p2", "p2", "p0", "p0"], [" ad one ", "ad two", "x", "y"], rows_of_completions,
                           logged)
    completions, prompts, columns = funcs[0].component.fn.__globals__["seen"][-1]
    assert completions == ["ad one", "ad two", "x", "y"] and prompts == ["p2", "p2", "p0", "p0"]
    expected = reward_columns([rows[i] for i in rows_of_completions])
    assert columns == expected and values == [float(len(k or [])) for k in expected["keywords"]]
    assert set(columns) >= {"keywords", "platform", "field", "product"} and not set(columns) & {ROW, "log_metric"}
    assert logged == [("reward/kw", sum(values) / 4)]  # the raw mean, as PPO logs reward/<name>
    platforms = reward_columns(rows)["platform"]
    limits = call_like_trl(funcs[1], ["p"] * 3, ["a", "b", "c"], [0, 1, 2], [])
    assert limits == [None if p == "meta" else 1.0 for p in platforms]  # None: not applicable (TRL: NaN)


def test_a_failing_or_nan_component_names_itself_and_the_sample(tmp_path):
    (tmp_path / "plugins.py").write_text(PLUGINS)
    rows = load_prompts("bundled:heldout")[:2]
    mix = CompositeReward.from_specs([config.RewardSpec(function=f"{tmp_path / 'plugins.py'}:broken", name="brk")])
    [fn], _ = trl_reward_functions(mix, rows)
    with pytest.raises(RewardError, match=r"reward 'brk' returned nan at sample 1: 'a bad ad'"):
        call_like_trl(fn, ["p", "p"], ["fine", "a bad ad"], [0, 1], [])
    mix = CompositeReward.from_specs([config.RewardSpec(function=f"{tmp_path / 'plugins.py'}:keywords_seen")])
    [fn], _ = trl_reward_functions(mix, [{"prompt": "no brief here"}])  # a plain prompt: no keywords column
    with pytest.raises(RewardError, match=r"reward 'keywords_seen' raised KeyError: 'keywords' on sample 0: 'an ad'"):
        call_like_trl(fn, ["p", "p"], ["an ad", "another"], [0, 0], [])

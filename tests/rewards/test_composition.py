"""Composition arithmetic, normalization, and every way to name and misuse a plugin."""

import math
import statistics
import textwrap

import pytest

from rlhf_ads.config import RewardSpec
from rlhf_ads.rewards import CompositeReward, RewardComponent, RewardError, RunningMoments, register_reward, resolve_reward


def const(value):
    return lambda completions, prompts, **columns: [value] * len(completions)


def test_weighted_sum_with_none_and_metrics():
    def half_applicable(completions, prompts, **columns):
        return [1.0 if i % 2 == 0 else None for i in range(len(completions))]

    mix = CompositeReward([RewardComponent("a", const(2.0), weight=0.5), RewardComponent("b", half_applicable, weight=3.0)])
    result = mix.score(["x", "y", "z", "w"], [""] * 4)
    assert result.total == [4.0, 1.0, 4.0, 1.0]
    metrics = result.metrics()
    assert metrics["reward/a"] == 2.0 and metrics["reward/a_weighted"] == 1.0
    assert metrics["reward/b"] == 1.0 and metrics["reward/b_weighted"] == 1.5 and metrics["reward/total"] == 2.5


def test_running_moments_match_numpy_across_batches():
    moments, seen = RunningMoments(), []
    for batch in ([1.0, 2.0, 3.0], [10.0], [4.0, -2.0, 0.5, 7.0]):
        moments.update(batch)
        seen += batch
    assert math.isclose(moments.mean, statistics.fmean(seen)) and math.isclose(moments.std, statistics.pstdev(seen))


def test_normalize_and_clip():
    values = iter([[0.0, 10.0], [20.0, 30.0]])
    component = RewardComponent("n", lambda c, p, **k: next(values), normalize=True, clip=1.0)
    mix = CompositeReward([component])
    first = mix(["a", "b"], ["", ""])
    assert first == [-1.0, 1.0]  # (0-5)/5, (10-5)/5
    second = mix(["a", "b"], ["", ""])
    std = statistics.pstdev([0, 10, 20, 30])
    assert second == [pytest.approx(min(1.0, (20 - 15) / std)), 1.0]  # clipped
    state = mix.state_dict()
    fresh = CompositeReward([RewardComponent("n", const(0.0), normalize=True)])
    fresh.load_state_dict(state)
    assert fresh.components[0].moments.count == 4


def test_a_torch_module_plugin_keeps_its_weights_out_of_the_checkpoint_state():
    import json

    import torch

    class ModuleReward(torch.nn.Module):  # has state_dict() (tensors) but learns nothing from the rollouts
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Linear(1, 1)

        def forward(self, completions, prompts, **columns):
            return [0.0] * len(completions)

    mix = CompositeReward([RewardComponent("module", ModuleReward())])
    assert mix(["ad"], [""]) == [0.0] and not mix.observes_rollouts
    state = json.loads(json.dumps(mix.state_dict()))  # what PPO's checkpoint writes
    assert "function" not in state["module"]
    mix.load_state_dict(state)


def test_three_ways_to_name_a_plugin(tmp_path):
    assert resolve_reward("call_to_action")(["Shop now"], [""]) == [1.0]
    assert resolve_reward("reward_models.copy_quality:call_to_action")(["Shop now"], [""]) == [1.0]
    plugin = tmp_path / "my_rewards.py"
    plugin.write_text(textwrap.dedent('''
        class Mentions:
            def __init__(self, word):
                self.word = word
            def __call__(self, completions, prompts, **columns):
                return [float(self.word in c) for c in completions]

        def length(completions, prompts, scale=1.0, **columns):
            return [scale * len(c) for c in completions]
    '''))
    assert resolve_reward(f"{plugin}:Mentions", {"word": "roses"})(["roses", "tulips"], ["", ""]) == [1.0, 0.0]
    assert resolve_reward(f"{plugin}:length", {"scale": 2.0})(["abc"], [""]) == [6.0]

    @register_reward("shout")
    def shout(completions, prompts, **columns):
        return [float(c.isupper()) for c in completions]

    assert resolve_reward("shout")(["HI"], [""]) == [1.0]


def test_from_specs_builds_the_mix_with_kwargs():
    mix = CompositeReward.from_specs([
        RewardSpec(function="length_limit", kwargs={"platform": "google_rsa", "field": "headline"}),
        RewardSpec(function="keyword_coverage", name="kw", weight=2.0),
    ])
    result = mix.score(["Trail shoes", "x" * 40], ["", ""], keywords=[["trail shoes"], ["trail shoes"]])
    assert result.total == [2.0, -1.0] and set(result.raw) == {"length_limit", "kw"}
    with pytest.raises(ValueError, match="unique"):
        CompositeReward.from_specs([RewardSpec(function="repetition"), RewardSpec(function="repetition")])


def test_a_veto_sets_the_total_where_its_rule_fails_and_the_lowest_veto_wins():
    per_sample = iter([[0.0, -1.0, -0.5, None], [-2.0, 0.0, -1.0, -1.0]])
    mix = CompositeReward([
        RewardComponent("rm", const(5.0), weight=2.0),
        RewardComponent("limit", lambda c, p, **k: next(per_sample), veto=-3.0),
        RewardComponent("policy", lambda c, p, **k: next(per_sample), weight=0.0, veto=-4.0),
    ])
    result = mix.score(["a", "b", "c", "d"], [""] * 4)
    # sample 0: only policy fires; 1: only limit; 2: both (lowest, -4); 3: limit not applicable, policy fires
    assert result.total == [-4.0, -3.0, -4.0, -4.0]
    assert result.vetoed == [True, True, True, True]
    assert result.weighted["rm"] == [10.0] * 4  # the components still log what they gave
    assert result.metrics()["reward/vetoed"] == 1.0


def test_a_veto_that_does_not_fire_leaves_the_sum_and_one_unset_logs_nothing():
    mix = CompositeReward.from_specs([
        RewardSpec(function="length_limit", kwargs={"platform": "google_rsa", "field": "headline"}, veto=-3.0),
        RewardSpec(function="keyword_coverage", name="kw", weight=2.0),
    ])
    result = mix.score(["Trail shoes", "Trail shoes " + "x" * 30], ["", ""],
                       keywords=[["trail shoes"], ["trail shoes"]])
    assert result.total == [2.0, -3.0]  # the second overruns 30 characters: its keyword no longer counts
    assert result.metrics()["reward/vetoed"] == 0.5
    plain = CompositeReward([RewardComponent("a", const(-1.0))]).score(["x"], [""])
    assert plain.total == [-1.0] and plain.vetoed is None and "reward/vetoed" not in plain.metrics()


@pytest.mark.parametrize("spec, fragment", [
    ("call_to_acton", "did you mean 'call_to_action'"),
    ("no_such_pkg.mod:fn", "cannot import module 'no_such_pkg.mod'"),
    ("reward_models.copy_quality:call_to_actio", "has no attribute 'call_to_actio'; did you mean 'call_to_action'"),
    ("missing/file.py:fn", "file 'missing/file.py' not found"),
])
def test_resolution_errors_name_the_plugin(spec, fragment):
    with pytest.raises(RewardError, match="reward '") as err:
        resolve_reward(spec)
    assert fragment in str(err.value)


def test_broken_plugin_file_and_bad_kwargs(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module\n")
    with pytest.raises(RewardError, match="importing .*broken.py' failed \\(ModuleNotFoundError"):
        resolve_reward(f"{broken}:fn")
    with pytest.raises(RewardError, match="cannot construct BrandVoice"):
        resolve_reward("brand_voice", {"colour": "blue"})
    with pytest.raises(RewardError, match="takes no argument 'scal'"):
        resolve_reward("rlhf_ads.lint:lint", {"scal": 1})


@pytest.mark.parametrize("fn, fragment", [
    (lambda c, p, **k: 1 / 0, "raised ZeroDivisionError: division by zero"),
    (lambda c, p, **k: [1.0], "returned 1 values for 3 completions"),
    (lambda c, p, **k: [1.0, "high", 2.0], "returned str 'high' at sample 1 'second ad'"),
    (lambda c, p, **k: [1.0, 2.0, float("nan")], "returned nan at sample 2: 'third ad'"),
    (lambda c, p, **k: [1.0, float("inf"), 0.0], "returned inf at sample 1: 'second ad'"),
    (lambda c, p, **k: 3.0, "returned float; expected a list"),
])
def test_bad_plugin_output_is_an_error_naming_plugin_sample_and_text(fn, fragment):
    mix = CompositeReward([RewardComponent("my_plugin", fn)])
    with pytest.raises(RewardError) as err:
        mix(["first ad", "second ad", "third ad"], ["", "", ""])
    assert "reward 'my_plugin'" in str(err.value) and fragment in str(err.value)


def test_raising_plugin_can_point_at_its_sample():
    def picky(completions, prompts, **columns):
        for i, c in enumerate(completions):
            if "bad" in c:
                exc = ValueError("cannot score")
                exc.sample_index = i
                raise exc
        return [0.0] * len(completions)

    with pytest.raises(RewardError, match="reward 'picky' raised ValueError: cannot score on sample 1: 'a bad ad'"):
        CompositeReward([RewardComponent("picky", picky)])(["fine", "a bad ad"], ["", ""])


def test_raising_plugin_is_rerun_per_sample_to_name_the_failing_one_with_its_traceback(tmp_path):
    plugin = tmp_path / "fragile_reward.py"
    plugin.write_text("def score(completions, prompts, **columns):\n"
                      "    return [1.0 / len(c) for c in completions]\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("fragile_reward", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(RewardError) as err:
        CompositeReward([RewardComponent("fragile", module.score)])(["fine", "also fine", "", "x"], ["", "", "", ""])
    message = str(err.value)
    assert "reward 'fragile' raised ZeroDivisionError: float division by zero on sample 2: ''" in message
    assert f'File "{plugin}", line 2, in' in message and "1.0 / len(c)" in message

"""Rollout decoding: the inverse-CDF draw samples softmax(logits / T) within the top-p nucleus, and
ppo.compile is chosen where it is supported and pays."""

import pytest
import torch

from rlhf_ads import config
from rlhf_ads.errors import ConfigError
from rlhf_ads.ppo import compiled
from rlhf_ads.ppo.compiled import AUTO_MIN_STEPS, compile_wanted
from rlhf_ads.ppo.decoding import InverseCdfSampling

ROWS = 40_000


def draw_frequencies(logits: list[float], temperature: float, top_p: float) -> torch.Tensor:
    torch.manual_seed(0)
    scores = torch.tensor(logits).repeat(ROWS, 1)
    out = InverseCdfSampling(temperature, top_p)(torch.zeros(ROWS, 1, dtype=torch.long), scores)
    assert ((out == 0).sum(1) == 1).all() and torch.isinf(out).sum() == ROWS * (len(logits) - 1)
    return torch.bincount(out.argmax(1), minlength=len(logits)).float() / ROWS


def test_draws_follow_the_tempered_softmax():
    logits = [2.0, -1.0, 0.5, 1.0, -3.0]
    expected = torch.softmax(torch.tensor(logits) / 0.7, 0)
    assert torch.allclose(draw_frequencies(logits, 0.7, 1.0), expected, atol=0.01)


def test_top_p_keeps_the_tokens_up_to_the_one_that_crosses_it_and_renormalizes():
    probs = torch.tensor([0.05, 0.3, 0.15, 0.5])  # sorted: 0.5, 0.3 (crosses 0.7), then 0.15, 0.05 are cut
    frequencies = draw_frequencies(probs.log().tolist(), 1.0, 0.7)
    assert frequencies[0] == 0 and frequencies[2] == 0
    assert torch.allclose(frequencies[[1, 3]], torch.tensor([0.3, 0.5]) / 0.8, atol=0.01)


def ppo_recipe(*overrides: str):
    return config.load(None, ["model.base=unused", *overrides])


def test_compile_auto_takes_long_runs_on_supported_setups_and_always_refuses_the_rest(monkeypatch):
    monkeypatch.setattr(compiled, "compile_pays", lambda: True)
    assert not compile_wanted(ppo_recipe(f"ppo.steps={AUTO_MIN_STEPS - 1}"), under_deepspeed=False)
    assert compile_wanted(ppo_recipe(f"ppo.steps={AUTO_MIN_STEPS}"), under_deepspeed=False)
    assert not compile_wanted(ppo_recipe("ppo.steps=500"), under_deepspeed=True)
    assert not compile_wanted(ppo_recipe("ppo.steps=500", "ppo.compile=never"), under_deepspeed=False)
    assert compile_wanted(ppo_recipe("ppo.steps=2", "ppo.compile=always"), under_deepspeed=False)
    for unsupported in ("model.load_in_4bit=true", "ppo.training.gradient_checkpointing=true", "ppo.models=separate"):
        assert not compile_wanted(ppo_recipe("ppo.steps=500", unsupported), under_deepspeed=False)
        with pytest.raises(ConfigError, match="ppo.compile: always does not run with"):
            compile_wanted(ppo_recipe("ppo.compile=always", unsupported), under_deepspeed=False)


@pytest.mark.parametrize("cuda,amx,expected", [(False, False, False), (False, True, True), (True, False, True)])
def test_compile_auto_compiles_only_where_it_pays(monkeypatch, cuda, amx, expected):
    """A CPU without AMX runs eager (with the prompts' start shared) even on long runs; 'always' still compiles."""
    monkeypatch.setattr(compiled.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(compiled, "cpu_has_amx", lambda: amx)
    assert compile_wanted(ppo_recipe(f"ppo.steps={AUTO_MIN_STEPS}"), under_deepspeed=False) is expected
    assert compile_wanted(ppo_recipe(f"ppo.steps={AUTO_MIN_STEPS}", "ppo.compile=always"), under_deepspeed=False)

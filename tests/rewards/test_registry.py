"""The shipped-reward registry is the one list: every entry resolves, and the README shows exactly it."""

import re

import pytest

from rlhf_ads.rewards import REGISTRY, resolve_reward
from rlhf_ads.rewards.registry import SHIPPED, markdown_table
from tests.helpers import REPO


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_reward_is_registered_and_importable(name):
    assert REGISTRY[name] == SHIPPED[name].target
    module, attribute = SHIPPED[name].target.split(":")
    assert callable(getattr(__import__(module, fromlist=[attribute]), attribute))


def test_a_shipped_function_resolves_by_name():
    assert resolve_reward("call_to_action")(["Shop now"], [""]) == [1.0]


def test_the_readme_lists_the_registry():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- shipped-rewards:[^\n]*-->\n(.*?)\n<!-- /shipped-rewards -->", readme, re.S)
    assert block, "README.md lost its shipped-rewards block"
    assert block.group(1) == markdown_table(), "README's reward table is stale: paste `python -m rlhf_ads.rewards.registry`"

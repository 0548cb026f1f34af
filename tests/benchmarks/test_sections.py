"""RESULTS.md is shared by two benchmarks: each rewrites only its own marked section."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_common import marked_section, replace_section, write_keeping_sections  # noqa: E402


def test_replace_section_appends_then_replaces():
    text = replace_section("# PPO\n\nbody\n", "trainers", "first")
    assert text.startswith("# PPO\n\nbody\n") and marked_section(text, "trainers") == "first"
    again = replace_section(text + "tail\n", "trainers", "second")
    assert marked_section(again, "trainers") == "second" and "first" not in again
    assert again.endswith("tail\n") and again.count("trainers:start") == 1


def test_rewrite_keeps_the_other_section_and_the_history(tmp_path):
    path = tmp_path / "RESULTS.md"
    old = replace_section(replace_section("# old PPO report\n", "trainers", "SFT numbers"), "history", "- a change")
    path.write_text(old)
    write_keeping_sections(path, "# new PPO report\n")
    text = path.read_text()
    assert text.startswith("# new PPO report") and "old PPO" not in text
    assert marked_section(text, "trainers") == "SFT numbers" and marked_section(text, "history") == "- a change"


def test_a_new_section_goes_ahead_of_the_history():
    text = replace_section(replace_section("# PPO\n", "trainers", "SFT"), "history", "- a change")
    text = replace_section(text, "precision", "bf16 numbers", before="history")
    assert text.index("precision:start") < text.index("history:start")
    assert marked_section(text, "precision") == "bf16 numbers" and marked_section(text, "history") == "- a change"

"""The real `rlhf-ads` console script, run as a subprocess."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, run_cli


def test_config_prints_resolved_recipe_with_overrides(tmp_path):
    result = run_cli("config", REPO / "recipes/quickstart.yaml", "generate.num_briefs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["generate"]["num_briefs"] == 2 and resolved["model"]["base"] == "smollm2-135m-instruct"


@pytest.mark.parametrize("argv", [
    ["pipeline", "r.yaml", "--stages", "ppo,evaluate", "ppo.steps=3", "seed=1"],
    ["pipeline", "r.yaml", "ppo.steps=3", "--stages", "ppo,evaluate", "seed=1"],
    ["pipeline", "--stages", "ppo,evaluate", "r.yaml", "ppo.steps=3", "seed=1"],
])
def test_options_and_overrides_go_in_any_order(argv):
    from rlhf_ads.cli import parse_args

    args = parse_args(argv)
    assert (args.recipe, args.overrides, args.stages) == ("r.yaml", ["ppo.steps=3", "seed=1"], "ppo,evaluate")


def test_an_unknown_option_is_still_refused(capsys):
    from rlhf_ads.cli import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["pipeline", "r.yaml", "seed=1", "--bogus"])
    assert exit_info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("args, fragment", [
    (["generate.max_new_tokns=8"], "did you mean 'generate.max_new_tokens'"),
    (["model.base=smollm2-135m-instruc"], "did you mean 'smollm2-135m-instruct'"),
    (["generate.briefs=missing.jsonl"], "data file 'missing.jsonl' not found"),
])
def test_bad_input_is_one_error_line_without_traceback(tmp_path, args, fragment):
    result = run_cli("generate", REPO / "recipes/quickstart.yaml", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("rlhf-ads: error:")]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_errors_show_the_traceback_too(tmp_path):
    result = run_cli("-v", "generate", REPO / "recipes/quickstart.yaml", "generate.briefs=missing.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("rlhf-ads: error: data file 'missing.jsonl' not found")


def test_generate_on_a_tiny_model_writes_samples(tmp_path, tiny_model_dir):
    result = run_cli("generate", f"model.base={tiny_model_dir}", "model.dtype=fp32", "generate.num_briefs=3",
                     "generate.batch_size=2", "generate.max_new_tokens=5", "output_dir=out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out/quickstart/generate/samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all({"ad", "chars", "max_chars", "within_limit"} <= set(r) for r in rows)
    metrics = json.loads((tmp_path / "out/quickstart/generate/metrics.json").read_text())
    assert metrics["metrics"]["generate/num_ads"] == 3 and metrics["config"]["model"]["dtype"] == "fp32"
    assert "generate: 100%" in result.stderr and "3/3" in result.stderr  # progress while it writes


def test_generate_writes_for_plain_prompts_and_briefs_that_data_check_accepts(tmp_path, tiny_model_dir, monkeypatch,
                                                                              capsys):
    """A file of {id, prompt} rows and a brief without brand or platform: `data check` passes it and `generate`
    writes for every row; rows without platform and field get no limit check, and it says so (issue #27, item 3)."""
    from rlhf_ads import cli

    monkeypatch.chdir(tmp_path)
    rows = [{"id": "p1", "prompt": "Write a headline for a trail running shoe."},
            {"id": "p2", "prompt": "Write a description for a budgeting app."},
            {"id": "b1", "product": "trail running shoe", "platform": "google_rsa", "field": "headline"},
            {"id": "b2", "product": "budgeting app", "audience": "students"}]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["data", "check", "mine.jsonl"]) == 0
    assert "4 rows checked as prompts: 4 ok, 0 with problems" in capsys.readouterr().out
    assert cli.main(["generate", f"model.base={tiny_model_dir}", "model.dtype=fp32", "generate.briefs=mine.jsonl",
                     "generate.num_briefs=4", "generate.batch_size=4", "generate.max_new_tokens=3",
                     "output_dir=out"]) == 0
    written = (tmp_path / "out/quickstart/generate/samples.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in written]
    assert [s["brief_id"] for s in samples] == ["p1", "p2", "b1", "b2"]
    assert [s["max_chars"] for s in samples] == [None, None, 30, None]
    assert [s["within_limit"] is None for s in samples] == [True, True, False, True]
    metrics = json.loads((tmp_path / "out/quickstart/generate/metrics.json").read_text())["metrics"]
    assert metrics["generate/num_ads"] == 4 and metrics["generate/within_limit_rate"] in (0.0, 1.0)
    assert "limits not checked for 3: no platform and field" in capsys.readouterr().out


@pytest.mark.integration
def test_quickstart_cli_on_the_bundled_model(tmp_path, model_cache):
    result = run_cli("generate", REPO / "recipes/quickstart.yaml", "generate.num_briefs=2", "generate.max_new_tokens=12",
                     "output_dir=out", cwd=tmp_path, env_extra={"RLHF_ADS_CACHE": str(model_cache)})
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "out/quickstart/generate/samples.jsonl").read_text().splitlines()
    assert len(rows) == 2 and all(json.loads(r)["ad"] for r in rows)


def test_data_check_lists_problems_and_exits_nonzero(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "P", "chosen": "A", "rejected": "B"}\n{"prompt": "P", "chosen": "A", "rejected": "A"}\n')
    result = run_cli("data", "check", path, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{path}:2: field 'rejected': identical to chosen" in result.stdout
    assert "2 rows checked as preferences: 1 ok, 1 with problems" in result.stdout
    result = run_cli("data", "check", path, "--kind", "sft", cwd=tmp_path)
    assert result.returncode == 1 and "field 'completion': missing" in result.stdout


def test_data_check_passes_a_clean_file_with_column_mapping(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("brief_text,better_ad,worse_ad\nB,Good ad,Bad ad\n")
    result = run_cli("data", "check", path, "--kind", "preferences", "--columns", "prompt=brief_text",
                     "chosen=better_ad", "rejected=worse_ad", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 ok, 0 with problems" in result.stdout


def test_data_check_counts_an_empty_field_once(tmp_path, capsys):
    from rlhf_ads import cli

    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "P", "chosen": "   ", "rejected": "B"}\n{"prompt": "", "chosen": "A", "rejected": "B"}\n')
    assert cli.main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith(str(path))][:-1] == [
        f"{path}:1: field 'chosen': empty", f"{path}:2: field 'prompt': empty"]


def test_data_check_infers_the_kind_from_mapped_columns_or_asks_for_it(tmp_path, capsys):
    from rlhf_ads import cli

    path = tmp_path / "own.csv"
    path.write_text("brief_text,better_ad,worse_ad\nB,Good ad,Bad ad\n")
    assert cli.main(["data", "check", str(path), "--columns", "prompt=brief_text", "chosen=better_ad",
                     "rejected=worse_ad"]) == 0
    assert "1 rows checked as preferences: 1 ok" in capsys.readouterr().out
    assert cli.main(["data", "check", str(path)]) == 2
    assert "no column is one of ours (better_ad, brief_text, worse_ad); pass --kind" in capsys.readouterr().err


def test_lint_prints_each_violation_with_rule_and_exits_nonzero(tmp_path):
    ads = tmp_path / "ads.txt"
    ads.write_text("Trail shoes, 4 mm lugs\nBEST TRAIL SHOES!!!\n")
    result = run_cli("lint", ads, "--platform", "google_rsa", "--field", "headline", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{ads}:2: excessive_capitals: 'BEST', 'TRAIL', 'SHOES' in capitals" in result.stdout  # one finding
    assert result.stdout.count("excessive_capitals") == 1
    assert f"{ads}:2: unsupported_superlative" in result.stdout and f"{ads}:1:" not in result.stdout
    assert "2 ads checked, 1 with violations (4 violations)" in result.stdout and "not checked" not in result.stdout
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"ad": "Trail shoes, 4 mm lugs", "platform": "google_rsa", "field": "headline"}\n')
    result = run_cli("lint", clean, cwd=tmp_path)
    assert result.returncode == 0 and "1 ad checked, 0 with violations (0 violations)" in result.stdout


def test_lint_says_when_it_could_not_check_length_limits(tmp_path, capsys):
    from rlhf_ads import cli

    ads = tmp_path / "ads.txt"
    ads.write_text("Trail running shoes with grippy lugs for mud\nSale sale sale today\n")
    assert cli.main(["lint", str(ads)]) == 1  # 43 characters: too long for a Google headline, but no platform given
    out = capsys.readouterr().out
    assert f"{ads}:2: repetition: 'sale' repeated [" in out and out.count("repetition") == 1
    assert "length limits not checked for 2 ads: no platform and field; pass --platform and --field" in out


def test_sft_and_reward_cli_on_a_tiny_model(tmp_path, tiny_model_dir):
    common = [f"model.base={tiny_model_dir}", "model.dtype=fp32", "model.use_lora=true", "output_dir=out"]
    sft = run_cli("sft", *common, "sft.training.max_steps=2", "sft.training.max_train_rows=4", "sft.num_samples=2",
                  "sft.max_new_tokens=3", "sft.training.max_eval_rows=2", "sft.training.max_length=1024", cwd=tmp_path)
    assert sft.returncode == 0, sft.stderr[-2000:]
    assert (tmp_path / "out/quickstart/sft/adapter_config.json").is_file()
    rm = run_cli("reward", *common, "reward.training.max_steps=2", "reward.training.max_train_rows=4",
                 "reward.training.max_eval_rows=4", "reward.training.max_length=1024", cwd=tmp_path)
    assert rm.returncode == 0, rm.stderr[-2000:]
    metrics = json.loads((tmp_path / "out/quickstart/reward/metrics.json").read_text())["metrics"]
    assert "rm/accuracy" in metrics and metrics["rm/steps"] == 2


def test_stage_script_runs_as_accelerate_would_start_it(tmp_path, tiny_model_dir):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts/reward.py"), "--config", str(REPO / "recipes/quickstart.yaml"),
         f"model.base={tiny_model_dir}", "model.dtype=fp32", "model.use_lora=true", "output_dir=out",
         "reward.kind=ctr", "reward.output=ctr", "reward.training.max_steps=2", "reward.training.max_train_rows=4",
         "reward.training.max_eval_rows=4", "reward.training.max_length=1024"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ctr/auc" in json.loads((tmp_path / "out/quickstart/ctr/metrics.json").read_text())["metrics"]


@pytest.mark.parametrize("saved", [True, False])
def test_ctrl_c_exits_130_with_one_line_naming_the_checkpoint_and_the_resume_command(tmp_path, monkeypatch, capsys,
                                                                                     saved):
    from rlhf_ads import cli, pipeline

    def interrupted(stage, recipe):
        if saved:  # what the stage had written before the interruption
            (tmp_path / "quickstart/ppo/checkpoints/checkpoint-4").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_stage", interrupted)
    argv = ["pipeline", str(REPO / "recipes/quickstart.yaml"), f"output_dir={tmp_path}", "--stages", "ppo"]
    assert cli.main(argv) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlhf-ads: interrupted during ppo; ")
    assert (f"newest complete checkpoint {tmp_path}/quickstart/ppo/checkpoints/checkpoint-4" in lines[0]) == saved
    assert ("no checkpoint yet" in lines[0]) != saved
    assert lines[0].endswith(f"resume with: rlhf-ads pipeline {REPO}/recipes/quickstart.yaml output_dir={tmp_path} "
                             "--stages ppo --resume")


def test_ctrl_c_in_a_pipelines_evaluation_resumes_the_pipeline_not_its_training(tmp_path, monkeypatch, capsys):
    from rlhf_ads import cli, pipeline

    def interrupted(stage, recipe):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_stage", interrupted)
    assert cli.main(["pipeline", str(REPO / "recipes/quickstart.yaml"), f"output_dir={tmp_path}", "--stages",
                     "evaluate"]) == 130
    line = capsys.readouterr().err.strip()
    assert "interrupted during evaluate; the finished stages are kept; resume with: rlhf-ads pipeline" in line
    assert line.endswith("--stages evaluate --resume")


def test_dependency_noise_is_quiet_by_default_and_shown_with_verbose(tmp_path, tiny_model_dir):
    """bitsandbytes' log (its library loading; on a CPU with AVX512-BF16 also its optional-kernel notice for a
    4-bit base) and the dependencies' deprecation warnings stay out of a normal run's output; -v shows them."""
    from bitsandbytes.functional import has_avx512bf16

    args = ["generate", f"model.base={tiny_model_dir}", "model.dtype=fp32", "model.load_in_4bit=true",
            "generate.num_briefs=1", "generate.max_new_tokens=2", "output_dir=out"]
    quiet = run_cli(*args, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    loading = "bitsandbytes.cextension"  # the logger that reports the native library it loads
    assert loading not in quiet.stderr and "gemm_4bit_forward" not in quiet.stderr
    assert "FutureWarning" not in quiet.stderr
    verbose = run_cli("-v", *args, cwd=tmp_path)
    assert verbose.returncode == 0 and loading in verbose.stderr
    assert ("gemm_4bit_forward" in verbose.stderr) == has_avx512bf16()  # the notice comes only with that kernel

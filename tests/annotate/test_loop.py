"""The loop as the README runs it, on a tiny model: candidates from checkpoints -> serve (designers label through
the API of the real server) -> export -> data check -> the reward stage on the export -> stats against the new
reward model -> serve ordered by it -> PPO against it."""

import json
import sqlite3

import httpx
import pytest
import uvicorn
import yaml

from rlhf_ads import cli
from tests.annotate.server import serving
from tests.helpers import tiny_ppo

pytestmark = pytest.mark.integration  # a real server (or browser) on loopback

TRAINING = {"max_steps": 1, "batch_size": 4, "max_train_rows": 12, "max_eval_rows": 4, "learning_rate": 0.005,
            "warmup_ratio": 0, "logging_steps": 1, "max_length": 1024}


def tiny_recipe(tmp_path, model_dir) -> str:
    recipe = {"output_dir": str(tmp_path / "runs"),
              "model": {"base": str(model_dir), "dtype": "fp32", "use_lora": True, "lora": {"r": 4, "alpha": 8}},
              "reward": {"backbone": "causal", "training": TRAINING},
              "rewards": [{"function": "reward_model", "name": "rm", "kwargs": {"path": "{run_dir}/reward"}}],
              "ppo": tiny_ppo(steps=1), "evaluate": {"max_new_tokens": 8, "batch_size": 8}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def token_from(printed: str) -> str:
    return printed.strip().splitlines()[-1]


def label_everything(url: str, token: str) -> int:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        done = 0
        while not (shown := client.get("/api/next").json())["done"]:
            a, b = ((shown[x]["width"], shown[x]["text"]) for x in "ab")
            choice = "a" if a < b else "b"  # these designers like short ads
            body = {"assignment_id": shown["assignment_id"], "choice": choice, "request_id": shown["request_id"]}
            assert client.post("/api/labels", json=body).status_code == 200
            done += 1
        return done


def test_candidates_serve_export_reward_ppo(tmp_path, tiny_model_dir, adapter_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = tiny_recipe(tmp_path, tiny_model_dir)
    assert cli.main(["annotate", "candidates", recipe, "--models", f"base,{adapter_dir}", "--briefs", "bundled:train",
                     "--num-briefs", "3", "--per-brief", "2", "--max-new-tokens", "8", "--out", "candidates.jsonl"]) == 0
    tokens = []
    for name in ("ana", "ben"):
        capsys.readouterr()
        assert cli.main(["annotate", "add-designer", name, "--db", "annotations.sqlite"]) == 0
        tokens.append(token_from(capsys.readouterr().out))
    with serving("annotations.sqlite", "--candidates", "candidates.jsonl", "--overlap", "2") as url:
        labelled = [label_everything(url, token) for token in tokens]
    assert labelled[0] == labelled[1] > 0  # overlap 2: both designers label every pair
    assert cli.main(["annotate", "export", "--db", "annotations.sqlite", "--out", "prefs.jsonl"]) == 0
    assert "reward.train=prefs.jsonl reward.train.briefs=prefs.briefs.jsonl" in capsys.readouterr().out
    assert cli.main(["data", "check", "prefs.jsonl", "--kind", "preferences"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    assert len(rows) == sum(labelled) and {r["margin"] for r in rows} == {1.0}  # the designers always agree
    assert cli.main(["reward", recipe, "reward.train=prefs.jsonl", "reward.train.briefs=prefs.briefs.jsonl",
                     "reward.margin_column=margin", "reward.rater_column=designer_id"]) == 0
    reward_dir = tmp_path / "runs/quickstart/reward"
    metrics = json.loads((reward_dir / "metrics.json").read_text())["metrics"]
    assert metrics["rm/steps"] == 1 and metrics["rm/train_rows"] == min(len(rows), TRAINING["max_train_rows"])
    capsys.readouterr()
    assert cli.main(["annotate", "stats", "--db", "annotations.sqlite", "--reward-model", str(reward_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pairwise_agreement"] == 1.0 and stats["per_designer"]["ana"]["reward_model_compared"] == labelled[0]
    served = []  # the new model orders the queue: serve scores the candidates, then starts the app (recorded here)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(options))
    assert cli.main(["annotate", "serve", "--db", "annotations.sqlite", "--reward-model", str(reward_dir)]) == 0
    assert served == [{"host": "127.0.0.1", "port": 8000, "log_level": "warning"}]
    assert "the pairs it is least sure about come first" in capsys.readouterr().out
    with sqlite3.connect("annotations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM pairs WHERE uncertainty IS NULL").fetchone()[0] == 0
    assert cli.main(["ppo", recipe]) == 0
    assert (tmp_path / "runs/quickstart/ppo/policy/adapter_config.json").is_file()

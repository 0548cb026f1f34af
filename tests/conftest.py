"""Shared fixtures: tests never touch the network, and tiny models are built from a config here."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.tiny import make_tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-init 2-layer Llama with a small byte-level BPE tokenizer and a ChatML template."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A cache folder for converted GGUF models, shared by the tests of one session."""
    return tmp_path_factory.mktemp("rlhf-ads-cache")


@pytest.fixture
def linear_output_dtypes(monkeypatch):
    """The dtypes nn.Linear layers have returned since the test started (or since the set was cleared):
    bfloat16 shows that autocast ran."""
    seen: set[torch.dtype] = set()
    linear_forward = torch.nn.Linear.forward

    def recording_forward(self, x):
        out = linear_forward(self, x)
        seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", recording_forward)
    return seen


@pytest.fixture(autouse=True)
def no_leaked_wandb_service():
    """A W&B run started in this process records its service in os.environ (WANDB_SERVICE) so that child
    processes join it; a later test's CLI subprocess would then talk to the service of a finished run."""
    yield
    os.environ.pop("WANDB_SERVICE", None)

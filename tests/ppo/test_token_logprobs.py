"""token_logprobs: the plain log-softmax formulation's values and gradients, a block of rows at a time."""

import math

import pytest
import torch

from rlhf_ads.ppo import token_logprobs as blocks
from rlhf_ads.ppo.token_logprobs import token_logprobs


def plain(logits, tokens, temperature):
    """The definition: log_softmax(logits / T) at the tokens, and the softmax's entropy, in fp32."""
    log_probs = torch.log_softmax(logits.float() / (temperature + blocks.TEMPERATURE_EPS), dim=-1)
    return log_probs.gather(-1, tokens[..., None]).squeeze(-1), -(log_probs.exp() * log_probs).sum(-1)


def test_hand_checked_values():
    logprobs, entropy = token_logprobs(torch.tensor([[[2.0, 0.0]]]), torch.tensor([[0]]), temperature=2.0,
                                       with_entropy=True)
    p = math.e / (math.e + 1)
    assert logprobs.item() == pytest.approx(math.log(p), abs=1e-6)
    assert entropy.item() == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)), abs=1e-6)
    assert token_logprobs(torch.zeros(1, 4), torch.tensor([3]))[1] is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_values_and_gradients_equal_the_plain_formulation(dtype, monkeypatch):
    """(3, 13) tokens over blocks of 5 rows (the last one short), with a loss that weighs the log-probs and
    the entropy per token; the logits' gradient comes back in their dtype."""
    monkeypatch.setattr(blocks, "CPU_BLOCK_BYTES", 5 * 4 * 50)
    torch.manual_seed(0)
    logits = (torch.randn(3, 13, 50) * 3).to(dtype).requires_grad_()
    tokens = torch.randint(0, 50, (3, 13))
    weights = torch.randn(2, 3, 13)
    got = token_logprobs(logits, tokens, 0.7, with_entropy=True)
    want = plain(logits, tokens, 0.7)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-4
    for g, w in zip(got, want):
        assert g.dtype == torch.float32 and torch.allclose(g, w, atol=tolerance)
    got_grad, = torch.autograd.grad((weights[0] * got[0] + weights[1] * got[1]).sum(), logits)
    want_grad, = torch.autograd.grad((weights[0] * want[0] + weights[1] * want[1]).sum(), logits)
    assert got_grad.dtype == dtype
    assert torch.allclose(got_grad.float(), want_grad.float(), atol=tolerance, rtol=1e-2 if dtype != torch.float32 else 0)


def test_an_unused_output_gets_no_gradient_and_either_can_be_used_alone():
    torch.manual_seed(1)
    logits = torch.randn(2, 7, 11, requires_grad=True)
    tokens = torch.randint(0, 11, (2, 7))
    for pick in (0, 1):
        got, = torch.autograd.grad(token_logprobs(logits, tokens, 1.3, with_entropy=True)[pick].sum(), logits)
        want, = torch.autograd.grad(plain(logits, tokens, 1.3)[pick].sum(), logits)
        assert torch.allclose(got, want, atol=1e-6)


def test_no_grad_and_grad_passes_give_identical_log_probs():
    """The old log-probs (no graph) and the update's (with one) must be the same numbers bit for bit."""
    logits = torch.randn(4, 9, 30).to(torch.bfloat16)
    tokens = torch.randint(0, 30, (4, 9))
    with torch.no_grad():
        old = token_logprobs(logits, tokens, 0.7)[0]
    new = token_logprobs(logits.clone().requires_grad_(), tokens, 0.7)[0]
    assert torch.equal(old, new.detach())


def test_blocks_stay_in_cache_on_cpus_and_are_large_elsewhere():
    assert blocks.block_rows(torch.empty(1, 49152)) == 16
    assert blocks.block_rows(torch.empty(1, 49152, device="meta")) >= 2048

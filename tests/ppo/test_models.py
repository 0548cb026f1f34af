"""The shared-base actor-critic with gradient checkpointing: less kept for backward, the same gradients."""

import pytest
import torch

from rlhf_ads import config
from rlhf_ads.ppo.models import POLICY, VALUE, build_actor_critic
from rlhf_ads.ppo.rollout import Rollout, response_logprobs, response_values


def tiny_rollout(vocab: int) -> Rollout:
    """Two left-padded queries of width 10 and responses of width 6, the second cut after 4 tokens."""
    generator = torch.Generator().manual_seed(0)
    query = torch.randint(5, vocab, (2, 10), generator=generator)
    response = torch.randint(5, vocab, (2, 6), generator=generator)
    query_mask = torch.ones_like(query)
    query_mask[1, :3] = 0
    response_mask = torch.ones_like(response, dtype=torch.bool)
    response_mask[1, 4:] = False
    return Rollout(query, query_mask, response, response_mask, torch.tensor([False, True]), ["", ""])


def seeded_actor_critic(recipe):
    """The same fresh LoRA initialisation for every recipe."""
    torch.manual_seed(0)
    return build_actor_critic(recipe, None, None)


def losses_and_grads(ac, rollout, together: bool = False):
    """Policy and value losses of one micro-batch, their gradients, and the bytes autograd kept for backward.
    Each loss goes backward before the next adapter is switched on, as in the PPO update; with `together`,
    both go backward at once after the switch, as under DeepSpeed (requires_grad back on first)."""
    kept = {}

    def pack(tensor):
        kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    params = [p for group in ac.trainable_parameters().values() for p in group]
    ac.use(POLICY)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        policy_loss = -response_logprobs(ac.model, rollout, 0.7)[rollout.response_mask].mean()
    if not together:
        policy_loss.backward()
    ac.use(VALUE)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        value_loss = response_values(ac.trunk, ac.value_head, rollout).pow(2).mean()
    if together:
        for p in params:
            p.requires_grad_(True)
        (policy_loss + value_loss).backward()
    else:
        value_loss.backward()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return (policy_loss.item(), value_loss.item()), grads, sum(kept.values())


@pytest.mark.parametrize("models,together", [("shared", False), ("shared", True), ("separate", False)],
                         ids=["shared", "shared-one-backward", "separate"])
def test_gradient_checkpointing_keeps_less_and_gives_the_same_gradients(tmp_path, tiny_model_dir, models, together):
    """Also when both losses go backward after the switch to the value adapter (DeepSpeed's way): the
    policy's layers are recomputed with the policy adapter, not the one active at backward time."""
    recipes = [config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32", f"ppo.models={models}",
                                  f"ppo.training.gradient_checkpointing={flag}"]) for flag in ("false", "true")]
    plain, checkpointed = (seeded_actor_critic(r) for r in recipes)
    for ac in (plain, checkpointed):  # the value head starts at zero: give the trunk's gradient a path
        torch.nn.init.constant_(ac.value_head.weight, 0.1)
    rollout = tiny_rollout(plain.tokenizer.vocab_size)
    plain_losses, plain_grads, plain_kept = losses_and_grads(plain, rollout, together)
    losses, grads, kept = losses_and_grads(checkpointed, rollout, together)
    assert losses == pytest.approx(plain_losses, rel=1e-6)
    assert len(grads) == len(plain_grads) and any(g.abs().sum() > 0 for g in grads)
    for grad, plain_grad in zip(grads, plain_grads):
        torch.testing.assert_close(grad, plain_grad, rtol=1e-5, atol=1e-7)
    assert kept < plain_kept / 2, (kept, plain_kept)
    # dropout stays off: only the transformer layers carry the training flag HF checkpoints by
    roles = [checkpointed.model] if models == "shared" else list(checkpointed.roles.values())
    flagged = {type(m).__name__ for role in roles for m in role.modules() if m.training}
    assert flagged == {"LlamaDecoderLayer"}


def test_passes_without_gradients_keep_the_kv_cache_under_checkpointing(tiny_model_dir):
    recipe = config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32", "ppo.training.gradient_checkpointing=true"])
    ac = build_actor_critic(recipe, None, None)
    ids = torch.randint(5, ac.tokenizer.vocab_size, (2, 8))
    with torch.no_grad():
        out = ac.model(input_ids=ids, use_cache=True)
    assert out.past_key_values is not None and out.past_key_values.get_seq_length() == 8


@pytest.mark.parametrize("flag", [True, False])
def test_value_head_starts_from_the_reward_models_score_head_when_asked(tmp_path, tiny_model_dir, flag):
    from safetensors.torch import save_file

    score = torch.randn(1, 64)  # the tiny model's hidden size
    save_file({"score.weight": score}, str(tmp_path / "model.safetensors"))
    recipe = config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32", f"ppo.value_from_reward={flag}"])
    head = build_actor_critic(recipe, None, tmp_path).value_head.weight.detach()
    assert torch.equal(head, score) if flag else not head.any()


def make_sft_adapter(model_dir, folder):
    """A LoRA adapter on the tiny model with random B matrices, so that it changes the model's outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return folder


def reference_weights_trainable(actor_critic) -> bool:
    return any(p.requires_grad for name, p in actor_critic.model.named_parameters() if ".reference." in name)


def test_the_reference_is_the_sft_model_stays_frozen_and_restores_the_active_adapter(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft_dir = make_sft_adapter(tiny_model_dir, tmp_path / "sft")
    recipe = config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32", "ppo.critic=adapter"])
    actor_critic = build_actor_critic(recipe, sft_dir, None)
    rollout = tiny_rollout(len(actor_critic.tokenizer))
    actor_critic.use(VALUE)
    with actor_critic.reference_context():
        assert not reference_weights_trainable(actor_critic)
        reference = response_logprobs(actor_critic.model, rollout, 1.0)
    assert actor_critic.model.base_model.active_adapter == VALUE and not reference_weights_trainable(actor_critic)
    with torch.no_grad():
        sft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(sft_dir)).eval()
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
        assert torch.allclose(reference, response_logprobs(sft, rollout, 1.0), atol=1e-5)
        assert not torch.allclose(reference, response_logprobs(base, rollout, 1.0), atol=1e-3)

    actor_critic.use(POLICY)  # one policy step: the policy moves, the reference does not
    (-response_logprobs(actor_critic.model, rollout, 1.0)[rollout.response_mask].sum()).backward()
    torch.optim.SGD(actor_critic.trainable_parameters()[POLICY], lr=1.0).step()
    with actor_critic.reference_context():
        assert torch.equal(response_logprobs(actor_critic.model, rollout, 1.0), reference)
    assert actor_critic.model.base_model.active_adapter == POLICY
    with torch.no_grad():
        assert not torch.allclose(response_logprobs(actor_critic.model, rollout, 1.0), reference, atol=1e-4)


def policy_gradients(actor_critic, rollout) -> list[torch.Tensor]:
    params = actor_critic.trainable_parameters()[POLICY]
    for param in params:
        param.grad = None
    actor_critic.use(POLICY)
    response_logprobs(actor_critic.model, rollout, 1.0)[rollout.response_mask].sum().backward()
    return [param.grad.clone() for param in params]


def dequantize_base_layers(model) -> int:
    """Replace each 4-bit base layer under a LoRA layer by a plain Linear holding its dequantized weights."""
    from bitsandbytes.functional import dequantize_4bit
    from bitsandbytes.nn import Linear4bit

    swapped = 0
    for module in model.modules():
        layer = getattr(module, "base_layer", None)
        if isinstance(layer, Linear4bit):
            dense = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            dense.weight.data = dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
            module.base_layer = dense.requires_grad_(False)
            swapped += 1
    return swapped


def test_4bit_ppo_backpropagates_through_the_quantized_layers(tmp_path, tiny_model_dir, recwarn):
    """After a no-grad rollout pass, the policy's gradients on a 4-bit base equal those on the same weights
    dequantized into plain layers: the gradient passes through every 4-bit layer (bitsandbytes' CPU
    inference kernel, which has no backward, stays off)."""
    sft_dir = make_sft_adapter(tiny_model_dir, tmp_path / "sft")  # B != 0: gradients reach every A too
    recipe = config.load(None, [f"model.base={tiny_model_dir}", "model.dtype=fp32", "model.load_in_4bit=true"])
    actor_critic = build_actor_critic(recipe, sft_dir, None)
    rollout = tiny_rollout(len(actor_critic.tokenizer))
    with torch.no_grad():  # a rollout-like pass first: where repacking happens, it happens here
        response_logprobs(actor_critic.model, rollout, 1.0)
    quantized = policy_gradients(actor_critic, rollout)
    assert dequantize_base_layers(actor_critic.model) > 0
    dense = policy_gradients(actor_critic, rollout)
    for got, want in zip(quantized, dense):
        assert torch.allclose(got, want, rtol=1e-3, atol=1e-6)
    assert not [w for w in recwarn if "autograd kernel was not registered" in str(w.message)]


def test_auto_critic_is_shared_unless_it_can_start_as_a_lora_reward_model_or_models_are_separate(tmp_path):
    import json

    from rlhf_ads.modeling import SCORER_META
    from rlhf_ads.ppo.models import critic_kind

    lora_rm, encoder_rm = tmp_path / "lora", tmp_path / "encoder"
    for folder, backbone in ((lora_rm, "causal"), (encoder_rm, "encoder")):
        folder.mkdir()
        (folder / SCORER_META).write_text(json.dumps({"backbone": backbone}))
    (lora_rm / "adapter_config.json").write_text("{}")
    auto = config.load(None, [])
    assert critic_kind(auto, None) == critic_kind(auto, encoder_rm) == "shared"
    assert critic_kind(auto, lora_rm) == "adapter"  # the value adapter starts as the reward model
    assert critic_kind(config.load(None, ["ppo.value_from_reward=false"]), lora_rm) == "shared"
    assert critic_kind(config.load(None, ["ppo.models=separate"]), None) == "adapter"
    assert critic_kind(config.load(None, ["ppo.critic=adapter"]), None) == "adapter"

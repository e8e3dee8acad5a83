"""Load a tokenizer and a base model (+ LoRA adapters) from resolved arguments.

Every failure a user can cause (missing folder, folder without weights, adapter trained on another
base) becomes a UserError that names the path and what to do; the training, chat, eval, API and
export paths all load through here so they behave the same.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


from ..args import Namespace
from ..errors import UserError
from ..precision import asked
from ..train import rundir
from ..utils import cpu_has_bf16, get_logger, read_json_object
from .quantize import bnb_config, check
from .registry import resolve_model_path

log = get_logger()

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


def adapter_paths(args: Namespace) -> list[str]:
    v = args.adapter_name_or_path
    if not v:
        return []
    if isinstance(v, str):
        v = [s for s in (x.strip() for x in v.split(",")) if s]
    return [str(x) for x in v]


def model_path(args: Namespace) -> str:
    return resolve_model_path(args.model_name_or_path)


def load_tokenizer(args: Namespace):
    """The model's tokenizer, with a pad token (falls back to eos) so batched generation can pad."""
    path = model_path(args)
    p = Path(path)
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"{path}: no tokenizer files (tokenizer.json / tokenizer_config.json) in this folder; "
                        "point model_name_or_path at a complete model folder, or download it again.")
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=bool(args.trust_remote_code))
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise UserError(f"{path}: this tokenizer ships its own code; set trust_remote_code=true "
                            "only if you trust the model's source.") from None
        raise UserError(f"{path}: could not load the tokenizer: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: could not load the tokenizer: {e}") from None
    if tok.pad_token_id is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def pick_dtype(args: Namespace, device: str, trainable: bool = False):
    """Inference: fp32 on CPU (bf16 only when asked for and the CPU has it); on CUDA bf16 where supported,
    else fp16 (fp16=true forces fp16). Training: half precision only when bf16/fp16 is asked for, matching
    the Trainer's mixed precision (LoRA weights stay fp32 through peft); full and freeze keep fp32 master
    weights and let the Trainer's autocast do the mixed precision."""
    import torch
    want = asked(args.values)
    want_bf16, want_fp16 = want == "bf16", want == "fp16"
    if want == "fp32" and not trainable:
        return torch.float32
    cuda = device.startswith("cuda")
    bf16_ok = torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()
    if trainable:
        if args.finetuning_type in ("full", "freeze"):
            return torch.float32
        if want_bf16 and bf16_ok:
            return torch.bfloat16
        return torch.float16 if (want_fp16 and cuda) else torch.float32
    if cuda:
        if want_fp16:
            return torch.float16
        return torch.bfloat16 if bf16_ok else torch.float16
    return torch.bfloat16 if (want_bf16 and bf16_ok) else torch.float32


def _attn_implementation(args: Namespace) -> str:
    hint = str(args.flash_attn).lower()
    return {"eager": "eager", "disabled": "eager", "fa2": "flash_attention_2"}.get(hint, "sdpa")


def _check_weights(path: str) -> None:
    p = Path(path)
    if (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
        base = read_json_object(p / "adapter_config.json").get("base_model_name_or_path") or "its base model"
        raise UserError(f"{path}: this is a LoRA adapter, not a full model; set model_name_or_path={base} "
                        f"and adapter_name_or_path={path}.")
    if any((p / f).is_file() for f in WEIGHT_FILES) or any(p.glob("model*.safetensors")):
        return
    raise UserError(f"{path}: no model weights (*.safetensors / pytorch_model.bin) in this folder; "
                    "download the model again (`tuneboard download NAME`) or point model_name_or_path "
                    "at a complete model folder.")


def check_adapter(path: str) -> Path:
    """An adapter folder with adapter_config.json, or a UserError saying what the folder holds instead."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise UserError(f"adapter_name_or_path: {path} does not exist; give the output folder of a LoRA run "
                        "(saves/<model>/lora/<run>) or one of its checkpoint-N folders.")
    if (p / "adapter_config.json").is_file():
        if not any((p / f).is_file() for f in ADAPTER_WEIGHTS):
            raise UserError(f"adapter_name_or_path: {path} has adapter_config.json but no adapter weights "
                            "(adapter_model.safetensors); the run may have stopped while saving.")
        return p
    ckpts = [c for c in rundir.checkpoints(p, complete_only=False) if c.parent == p
             and (c / "adapter_config.json").is_file()]
    if ckpts:
        raise UserError(f"adapter_name_or_path: {path} holds no final adapter (the run did not finish); "
                        f"use its newest checkpoint: adapter_name_or_path={ckpts[-1]}.")
    if (p / "config.json").is_file():
        raise UserError(f"adapter_name_or_path: {path} is a full model, not a LoRA adapter; "
                        f"set model_name_or_path={path} and no adapter.")
    raise UserError(f"adapter_name_or_path: {path} has no adapter_config.json; give the output folder of a "
                    "LoRA run.")


def _adapter_run(args: Namespace) -> tuple[dict, dict]:
    """(config, results) of the run that trained the last adapter (rundir.record_of: next to the adapter, or one
    level up for checkpoint-N); ({}, {}) without an adapter or a record."""
    paths = adapter_paths(args)
    rec = rundir.record_of(Path(paths[-1]).expanduser()) if paths else None
    return (rec.config, rec.results) if rec else ({}, {})


def adapter_template(args: Namespace) -> str | None:
    """The chat template the last adapter was trained with, as its run recorded it (training_args.yaml /
    all_results.json next to the adapter or one level up for checkpoint-N), or None."""
    cfg, results = _adapter_run(args)
    name = results.get("template") or cfg.get("template")
    return str(name) if name else None


def _rope_args(args: Namespace) -> Any:
    """Where the rope settings come from: the arguments when they set rope_scaling, else the run that trained the
    last adapter (its positions were learnt scaled: the same factor, worked out from that run's cutoff_len)."""
    if args.rope_scaling:
        return args
    cfg, _ = _adapter_run(args)
    if not cfg.get("rope_scaling"):
        return args
    log.info("rope_scaling: %s, as the adapter's run trained with", cfg["rope_scaling"])
    return Namespace({k: cfg[k] for k in ("rope_scaling", "rope_factor", "cutoff_len") if cfg.get(k) is not None})


def _load_adapter(model, path: Path, base_path: str, trainable: bool = False):
    from peft import PeftModel
    cfg = read_json_object(path / "adapter_config.json")
    trained_on = cfg.get("base_model_name_or_path")
    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    except (RuntimeError, ValueError, KeyError) as e:
        msg = str(e)
        if "size mismatch" in msg:
            detail = "its weight shapes do not match the base model"
        elif "not found" in msg.lower() or "target modules" in msg.lower():
            detail = "its target modules do not exist in the base model"
        else:
            detail = msg.splitlines()[0][:300] if msg else type(e).__name__
        was = f" (it was trained on {trained_on})" if trained_on else ""
        raise UserError(f"adapter_name_or_path: {path} does not fit the base model {base_path}: {detail}{was}. "
                        "Load it with the model it was trained on.") from None


def rope_parameters(kind: str, factor: float, max_pos: int, theta: float | None) -> dict:
    """The rope settings transformers reads for each kind of scaling (yarn and llama3 need the trained length)."""
    p = {"rope_type": kind, "factor": float(factor)}
    if theta is not None:
        p["rope_theta"] = theta
    if kind in ("yarn", "llama3"):
        p["original_max_position_embeddings"] = int(max_pos)
    if kind == "llama3":
        p.update(low_freq_factor=1.0, high_freq_factor=4.0)
    return p


def rope_config(args: Namespace, path: str, trust: bool = False):
    """The model's config with rope_scaling applied, or None when rope_scaling is not set (or changes nothing).
    The factor is rope_factor, else cutoff_len / max_position_embeddings rounded up."""
    kind = args.rope_scaling
    if not kind:
        return None
    from transformers import AutoConfig
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
    max_pos = getattr(config, "max_position_embeddings", None)
    factor = args.rope_factor
    if factor is None:
        if not max_pos:
            raise UserError(f"rope_scaling: {path} has no max_position_embeddings to scale from; give rope_factor.")
        factor = float(math.ceil(int(args.cutoff_len) / max_pos))
        if factor <= 1:
            log.warning("rope_scaling: cutoff_len %s fits in max_position_embeddings %s; no scaling (set rope_factor "
                        "to force it)", args.cutoff_len, max_pos)
            return None
    current = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    theta = current.get("rope_theta", getattr(config, "rope_theta", None)) if isinstance(current, dict) else None
    params = rope_parameters(kind, factor, max_pos or 0, theta)
    if kind in ("yarn", "llama3") and not max_pos:
        raise UserError(f"rope_scaling: {kind} needs the model's max_position_embeddings, which {path} lacks.")
    if hasattr(config, "rope_parameters"):
        config.rope_parameters = params
    else:
        config.rope_scaling = params
    if max_pos and kind != "dynamic":  # dynamic grows by itself; the others now cover factor x the trained length
        config.max_position_embeddings = int(max_pos * factor)
    log.info("rope_scaling: %s x%g (max_position_embeddings %s -> %s)", kind, factor, max_pos,
             config.max_position_embeddings)
    return config


def _refuse_reward_model(path: str, adapters: list[Path]) -> None:
    """A reward model (stage rm) scores answers; it has no LM head to generate or continue training one with."""
    for a in adapters:
        if read_json_object(a / "adapter_config.json").get("task_type") == "SEQ_CLS":
            raise UserError(f"adapter_name_or_path: {a} is a reward model (trained with stage rm): it scores answers "
                            "and cannot generate text. Pick an adapter trained with pt / sft / dpo / kto.")
    archs = read_json_object(Path(path) / "config.json").get("architectures") or []
    if any(str(x).endswith("ForSequenceClassification") for x in archs):
        raise UserError(f"model_name_or_path: {path} is a reward / classification model ({archs[0]}): it scores "
                        "answers and cannot generate text. Use the causal LM it was trained from.")


def _quantization(args: Namespace, trainable: bool, dtype, reward_head: bool, extra: dict) -> bool:
    """QLoRA: put a BitsAndBytesConfig (and the device the quantized weights live on) into the from_pretrained
    keywords when quantization_bit is set for training. Inference loads the base unquantized: a QLoRA adapter is a
    plain LoRA adapter."""
    bits = args.quantization_bit
    if not bits:
        return False
    if not trainable:
        log.info("quantization_bit=%s applies to training only: the base loads unquantized (%s)", bits,
                 str(dtype).replace("torch.", ""))
        return False

    import torch

    check(args.values)  # the same refusal as validation, for callers that never validated
    extra["quantization_config"] = bnb_config(args.values, dtype, reward_head)
    extra["device_map"] = {"": f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available()
                           else "cpu"}
    log.info("QLoRA: base weights in %s bits (%s), compute in %s", bits,
             "int8" if int(bits) == 8 else args.quantization_type
             + (" + double quantization" if args.double_quantization else ""),
             str(dtype).replace("torch.", ""))
    return True


def load_model(args: Namespace, trainable: bool = False, device: str | None = None, dtype=None,
               reward_head: bool = False):
    """Base model (+ adapters). Inference: adapters merged, eval mode, no grad, on CUDA when available.
    trainable with LoRA adapters: all but the last merged, the last stays a trainable PeftModel adapter.
    trainable without adapters: the plain base model (the trainer applies lora / freeze / full).
    reward_head: the backbone with a one-output score head instead of the LM head (a reward model; the head
    is new unless the checkpoint already is one)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = model_path(args)
    _check_weights(path)
    if device is None:
        device = "cuda" if (torch.cuda.is_available() and not trainable) else "cpu"
    device = str(device)
    if dtype is None:
        dtype = pick_dtype(args, device if not trainable or not torch.cuda.is_available() else "cuda", trainable)
    adapters = [check_adapter(a) for a in adapter_paths(args)]
    if not reward_head:
        _refuse_reward_model(path, adapters)
    trust = bool(args.trust_remote_code)
    log.info("loading %s (%s, %s)%s", path, str(dtype).replace("torch.", ""), device,
             f" + {len(adapters)} adapter(s)" if adapters else "")
    auto, extra = AutoModelForCausalLM, {}
    if reward_head:
        auto, extra = AutoModelForSequenceClassification, {"num_labels": 1}
    config = rope_config(_rope_args(args), path, trust)
    if config is not None:
        if reward_head:  # with a config given, its fields travel on the config, not as keywords
            config.num_labels = extra.pop("num_labels")
        extra["config"] = config
    quantized = _quantization(args, trainable, dtype, reward_head, extra)
    try:
        model = auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust,
                                     attn_implementation=_attn_implementation(args), **extra)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise UserError(f"{path}: this model ships its own code; set trust_remote_code=true only if you "
                            "trust the model's source.") from None
        if reward_head and "Unrecognized configuration class" in str(e):
            raise UserError(f"{path}: stage rm needs a model transformers can give a score head "
                            f"(AutoModelForSequenceClassification); this architecture has none: {e}") from None
        if "attn_implementation" in str(e) or "flash" in str(e).lower():
            model = auto.from_pretrained(path, dtype=dtype, trust_remote_code=trust, **extra)
        else:
            raise UserError(f"{path}: could not load the model: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: could not load the model: {e}") from None
    if device != "cpu" and not quantized:  # a bitsandbytes model is placed by its device_map and cannot move
        model.to(device)
    if quantized:
        from peft import prepare_model_for_kbit_training
        # frozen base, norms and embeddings in fp32, input grads on; gradient checkpointing is engine.train.methods'
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)

    if adapters:
        continue_training = trainable and args.finetuning_type == "lora"
        to_merge = adapters[:-1] if continue_training else adapters
        for a in to_merge:
            model = _load_adapter(model, a, path).merge_and_unload()
        if continue_training:
            model = _load_adapter(model, adapters[-1], path, trainable=True)
        elif trainable:
            log.info("adapters merged into the base; %s training starts from the merged weights",
                     args.finetuning_type)
    if not trainable:
        model.eval()
        model.requires_grad_(False)
    return model


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if hasattr(p, "ds_numel"):  # DeepSpeed ZeRO-3 keeps a placeholder tensor
            n = p.ds_numel
        elif type(p).__name__ == "Params4bit":  # QLoRA: two 4-bit weights per stored byte
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total

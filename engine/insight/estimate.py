"""Before Start: how much data, how many steps, how much memory, how long.

    estimate(recipe=None, overrides=(), values=None, measure_steps=0) -> report dict
    render(report, lang) -> plain words

Data: the dataset is tokenised exactly as training will do it (engine.data.get_dataset, cached), so the
sample count is the one after filtering, truncation and packing. Steps follow the Trainer's own rounding:
batches per epoch = ceil(rows / batch) per device (split evenly over devices), updates per epoch =
ceil(batches / gradient_accumulation_steps), total = ceil(epochs x updates per epoch) unless max_steps.

Memory, per device, by part (the model is built on the meta device: no weights are read):
  weights      frozen params in the load dtype (half only for LoRA with bf16/fp16) + trainable params in fp32;
               QLoRA (quantization_bit): the linear weights at ~0.52 bytes (4-bit nf4/fp4 + constants) or ~1 byte
               (8-bit) per parameter, the other frozen params in fp32
  gradients    fp32, one per trainable parameter
  optimizer    AdamW: two fp32 states per trainable parameter; SGD: none; Adafactor: factored row + column
  activations  what backward keeps for the longest batch: per token and layer about 7h + 3 kv_dim + heads +
               4 intermediate values (norm inputs/outputs, q/k/v, attention output, the four MLP tensors),
               only for the layers gradients flow through (freeze: from the first trained layer on); with
               gradient_checkpointing one hidden state per layer plus one layer recomputed; plus the logits
               (x3: logits, log-softmax, their gradient, in fp32)
  generation   grpo: the KV cache of a generation batch (prompt + max_completion_length tokens per completion), the
               part of it beyond the activations (sampling and the backward pass come one after the other); its
               steps count completions, num_generations per prompt; time is measured, sampling included
Stages: rm and dpo put chosen and rejected in one batch (x2 tokens); dpo (sigmoid / ipo / hinge) and kto add a
frozen reference copy for freeze/full (LoRA switches the adapter off instead) and compute log-probabilities through
trl's tiled LM head (one 4096 x 32768 tile instead of all logits); orpo / simpo have no reference model and build
full logits; rm's head has one output (no vocabulary-sized logits) and is trained whole.
  runtime      the process itself: Python + torch + transformers + datasets (CPU: ~0.5 GB resident), or the
               CUDA context (~0.5 GB)
DeepSpeed ZeRO divides optimizer states (stage >= 1), gradients (>= 2) and weights (3) by the number of
devices; offload_optimizer / offload_param move them to host memory. FSDP2 (`fsdp`) is read as the same stages:
full_shard = 3, shard_grad_op = 2, offload = 3 with both offloads.
Precision: the one engine.precision picks for this device (auto: the hardware's native type).
Time: a real run of a few steps in a subprocess (measure_steps), extrapolated to the whole schedule.
"""
from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..config import load_config, save_config
from ..data.loader import get_dataset
from ..data.templates import resolve_template
from ..errors import UserError
from ..models.loader import load_tokenizer, model_path
from ..models import quantize
from ..precision import choose, flags
from ..train import rundir
from ..train.best import eval_steps, planned, planned_eval_steps
from ..train.stages import get_stage
from ..utils import cpu_has_bf16
from .words import t

GB = 1024 ** 3
CPU_RUNTIME_BYTES = 0.5 * GB    # RSS of python + torch + transformers + datasets + peft after import (485 MB here)
CUDA_CONTEXT_BYTES = 0.5 * GB
FIT_SHARE = 0.9                 # warn above 90 % of the device's memory


def _namespace(recipe=None, overrides=(), values: dict | None = None):
    if values is not None:
        return load_config(None, dict(values), "train")
    return load_config(recipe, overrides or (), "train")


# ---------------------------------------------------------------- data and steps
def data_facts(ns) -> dict:
    """Tokenise as training does (cached) and count what the trainer will see."""

    tok = load_tokenizer(ns)
    template = resolve_template(ns, tok)
    data = get_dataset(ns, tok, template, ns.stage)
    train = data.train_dataset
    rows = len(train)
    stage = get_stage(ns.stage)
    lengths, longest = stage.lengths(train, data.stats, ns)
    trained = data.stats.get("tokens")
    if trained is None and stage.sampled:  # grpo: at most max_completion_length per sampled completion
        trained = rows * stage.sampled(ns) * ns.max_completion_length
    return {"stats": data.stats, "rows": rows, "eval_rows": len(data.eval_dataset) if data.eval_dataset else 0,
            "tokens_per_epoch": int(sum(lengths)) * (stage.sampled(ns) if stage.sampled else 1), "trained_tokens_per_epoch": int(trained or 0),
            "longest": int(longest), "template": template.name}


def world_size(ns) -> int:
    return max(1, int(ns.nproc_per_node)) * max(1, int(ns.nnodes))


def count_steps(rows: int, ns, devices: int | None = None) -> dict:
    """Optimisation steps as transformers' Trainer counts them (set_initial_training_values)."""
    devices = devices or world_size(ns)
    sampled = get_stage(ns.stage).sampled
    if sampled:  # grpo: a batch holds completions, num_generations per prompt, in whole generation batches
        g = sampled(ns)  # (trl's RepeatSampler drops a last partial one)
        per_generation = max(1, ns.per_device_train_batch_size * ns.gradient_accumulation_steps * devices // g)
        rows = rows // per_generation * per_generation * g
    batches = math.ceil(rows / ns.per_device_train_batch_size)
    per_device = math.ceil(batches / devices)  # accelerate shards the batches evenly over the processes
    per_epoch = max(per_device // ns.gradient_accumulation_steps
                    + int(per_device % ns.gradient_accumulation_steps > 0), 1)
    total = ns.max_steps if ns.max_steps > 0 else math.ceil(ns.num_train_epochs * per_epoch)
    return {"devices": devices, "batches_per_epoch": per_device, "steps_per_epoch": per_epoch, "total_steps": total,
            "epochs": round(total / per_epoch, 3),
            "global_batch": ns.per_device_train_batch_size * ns.gradient_accumulation_steps * devices}


# ---------------------------------------------------------------- parameters
def param_facts(ns) -> dict:
    """Total / trainable parameter counts and the shapes the memory model needs, from config.json alone."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    path = model_path(ns)
    reward = get_stage(ns.stage).reward_head  # the backbone with a one-output score head instead of the LM head
    try:
        cfg = AutoConfig.from_pretrained(path, trust_remote_code=bool(ns.trust_remote_code),
                                         **({"num_labels": 1} if reward else {}))
    except (OSError, ValueError) as e:
        raise UserError(f"model_name_or_path: cannot read {path}/config.json ({e}).") from None
    auto = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    with torch.device("meta"):
        try:
            model = auto.from_config(cfg, trust_remote_code=bool(ns.trust_remote_code))
        except ValueError as e:
            raise UserError(f"{path}: stage rm needs a model with a score head (AutoModelForSequenceClassification): "
                            f"{e}") from None
    total = sum(p.numel() for p in model.parameters())
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    h = int(getattr(text_cfg, "hidden_size"))
    heads = int(getattr(text_cfg, "num_attention_heads", 1))
    kv = int(getattr(text_cfg, "num_key_value_heads", heads) or heads)
    head_dim = int(getattr(text_cfg, "head_dim", None) or h // heads)
    inter = int(getattr(text_cfg, "intermediate_size", 4 * h))
    layers = int(getattr(text_cfg, "num_hidden_layers"))
    vocab = int(getattr(text_cfg, "vocab_size"))
    # what bitsandbytes quantizes for QLoRA: the weights of every linear layer but the LM head (and a reward head)
    out_emb, score = model.get_output_embeddings(), getattr(model, "score", None) if reward else None
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not out_emb and m is not score]
    quantizable = sum(m.weight.numel() for m in linear)
    method = ns.finetuning_type
    shapes: list[tuple[int, ...]] = []
    grad_layers = layers
    if method == "full":
        trainable = total
        shapes = [tuple(p.shape) for p in model.parameters()]
    elif method == "freeze":
        from ..train.methods import apply_freeze
        apply_freeze(model, ns)
        trained = [p for p in model.parameters() if p.requires_grad]
        trainable = sum(p.numel() for p in trained)
        shapes = [tuple(p.shape) for p in trained]
        k = int(ns.freeze_trainable_layers)
        grad_layers = k if k > 0 else layers  # the first N trained: gradients flow back through every layer
    else:
        targets = ns.lora_target
        trainable = 0
        r = int(ns.lora_rank)
        head = getattr(model, "score", None) if reward else None
        for name, mod in model.named_modules():
            if not isinstance(mod, torch.nn.Linear) or mod is out_emb or mod is head:
                continue
            short = name.rsplit(".", 1)[-1]
            if targets != ["all"] and short not in targets and name not in targets:
                continue
            trainable += r * (mod.in_features + mod.out_features) + (mod.out_features if ns.use_dora else 0)
            shapes += [(r, mod.in_features), (mod.out_features, r)]
        if trainable == 0:
            raise UserError(f"lora_target: {targets} matches no linear layer of {path}.")
        if reward:  # the score head is trained whole next to the adapter (a copy: peft's modules_to_save)
            head = sum(p.numel() for p in model.score.parameters())
            trainable += head
            shapes += [tuple(p.shape) for p in model.score.parameters()]
        total += trainable
    if reward:
        vocab = 1  # the head's output: one score per position
    return {"total": total, "trainable": trainable, "shapes": shapes, "hidden": h, "heads": heads,
            "kv_dim": kv * head_dim, "intermediate": inter, "layers": layers, "grad_layers": grad_layers,
            "vocab": vocab, "model_type": getattr(cfg, "model_type", "?"), "quantizable": quantizable,
            "quantized_rows": sum(m.out_features for m in linear)}


# ---------------------------------------------------------------- memory
def zero_config(ns) -> dict:
    """How the states are sharded over the processes, as ZeRO stages: DeepSpeed's config, or the FSDP2 mode
    (full_shard shards weights, gradients and optimizer states = stage 3; shard_grad_op keeps the weights whole
    between forward and backward = stage 2; offload = full_shard with the shards in host memory)."""
    if getattr(ns, "fsdp", None):
        off = ns.fsdp == "offload"
        return {"stage": 2 if ns.fsdp == "shard_grad_op" else 3, "offload_optimizer": off, "offload_param": off,
                "by": "fsdp"}
    if not ns.deepspeed:
        return {"stage": 0, "offload_optimizer": False, "offload_param": False}
    try:
        cfg = json.loads(Path(ns.deepspeed).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"deepspeed: cannot read {ns.deepspeed} ({e}).") from None
    z = cfg.get("zero_optimization") or {}

    def off(key):
        return str((z.get(key) or {}).get("device", "none")).lower() in ("cpu", "nvme")
    return {"stage": int(z.get("stage", 0) or 0), "offload_optimizer": off("offload_optimizer"),
            "offload_param": off("offload_param")}


def _optimizer_bytes(ns, p: dict) -> int:
    if ns.optim.startswith("adamw"):
        return 8 * p["trainable"]
    if ns.optim == "sgd":
        return 0
    # adafactor: factored second moment, one row and one column vector per matrix
    return 4 * sum((s[0] + s[1]) if len(s) == 2 else math.prod(s) for s in p["shapes"])


def memory(ns, p: dict, longest: int, device: str) -> dict:
    """Bytes per device by part, and where they live."""
    half_load = ns.finetuning_type == "lora" and (ns.bf16 or (ns.fp16 and device == "cuda"))
    frozen = p["total"] - p["trainable"]
    bits = ns.quantization_bit if ns.finetuning_type == "lora" else None
    if bits:
        weights = quantized_bytes(p, bits, ns.double_quantization) + (frozen - p["quantizable"]) * 4 \
            + p["trainable"] * 4  # peft's k-bit preparation puts the rest (embeddings, norms) in fp32
    else:
        weights = frozen * (2 if half_load else 4) + p["trainable"] * 4
    if (ns.bf16 or ns.fp16) and not half_load and not bits:  # autocast keeps half copies of the fp32 weights
        weights += p["total"] * 2
    grads = 4 * p["trainable"]
    optim = _optimizer_bytes(ns, p)
    if uses_reference(ns) and ns.finetuning_type != "lora":
        weights += p["total"] * (2 if half_load else 4)  # a frozen reference copy (LoRA uses the base itself)
    # on CUDA autocast saves half activations; CPU autocast keeps fp32 ones beside the bf16 copies (norms,
    # residual adds, softmax), measured at about the fp32 total; LoRA keeps its layers' sums and the residual
    # stream in fp32 under autocast (engine.train.methods), so it is counted at fp32 on CUDA too (not measured)
    half_acts = (ns.bf16 or ns.fp16) and device == "cuda" and ns.finetuning_type != "lora"
    act_bytes = 2 if half_acts else 4
    # rm and dpo run chosen + rejected in one batch; kto's KL pass runs without gradients (nothing kept)
    batch = ns.per_device_train_batch_size * get_stage(ns.stage).sequences
    tokens = batch * max(1, min(longest, ns.cutoff_len))
    per_layer = 7 * p["hidden"] + 3 * p["kv_dim"] + p["heads"] + 4 * p["intermediate"]
    if ns.gradient_checkpointing:
        act = tokens * act_bytes * (p["hidden"] * p["grad_layers"] + per_layer)
    else:
        act = tokens * act_bytes * per_layer * p["grad_layers"]
    if fused_lm_head(ns):  # trl projects in tiles of 4096 tokens x 32768 vocabulary entries, never all logits
        logits = min(tokens, 4096) * min(p["vocab"], 32768) * 4
    elif chunked_lm_head(ns):  # engine.train.lmloss: one chunk of logits (fp32) and its gradient at a time
        from ..train.lmloss import CHUNK_ELEMENTS
        logits = min(tokens * p["vocab"], CHUNK_ELEMENTS) * (4 + act_bytes)
    else:
        logits = 3 * tokens * p["vocab"] * 4
    activations = act + logits
    generation = 0
    if get_stage(ns.stage).sampled:
        # grpo samples a whole generation batch (per_device_train_batch_size x gradient_accumulation_steps
        # completions of up to `longest` tokens) before it trains on them: its KV cache, where it needs more than the
        # activations of the backward pass that come after it
        kv = ns.per_device_train_batch_size * ns.gradient_accumulation_steps * max(1, longest) * p["layers"] * 2 \
            * p["kv_dim"] * act_bytes
        generation = max(0, kv - activations)
    z = zero_config(ns)
    n = world_size(ns)
    if z["stage"] >= 1:
        optim = optim / n
    if z["stage"] >= 2:
        grads = grads / n
    if z["stage"] >= 3:
        weights = weights / n
    host = 0.0
    if z["offload_optimizer"]:
        host += optim
        optim = 0
    if z["offload_param"] and z["stage"] >= 3:
        host += weights
        weights = 0
    runtime = CUDA_CONTEXT_BYTES if device == "cuda" else CPU_RUNTIME_BYTES
    parts = {"weights": weights, "gradients": grads, "optimizer": optim, "activations": activations,
             "runtime": runtime}
    if generation:
        parts["generation"] = generation
    return {"parts": {k: int(v) for k, v in parts.items()}, "total": int(sum(parts.values())),
            "offloaded_to_host": int(host), "zero_stage": z["stage"], "sharded_by": z.get("by", "deepspeed"),
            "dtype": "bf16" if ns.bf16 else "fp16" if ns.fp16 else "fp32",
            "weights_dtype": f"{bits}-bit" if bits else "half" if half_load else "fp32",
            "tokens_per_micro_batch": tokens}


def quantized_bytes(p: dict, bits: int, double_quant: bool = True) -> float:
    """bitsandbytes storage of the quantized linear weights. 4-bit: half a byte per weight plus one absmax per block
    of 64 (fp32, or with double quantization one byte plus an fp32 per 256 blocks); 8-bit: a byte per weight plus
    an fp32 scale per output row."""
    q = p["quantizable"]
    if int(bits) == 8:
        return q + 4 * p["quantized_rows"]
    return q / 2 + (q / 64) * ((1 + 4 / 256) if double_quant else 4)


def uses_reference(ns) -> bool:
    """A frozen reference model takes part: DPO-style losses (not ORPO / SimPO) and KTO."""
    return get_stage(ns.stage).reference(ns)


def fused_lm_head(ns) -> bool:
    """trl's DPOTrainer and KTOTrainer compute log-probabilities through a tiled LM head; its ORPO / CPO
    trainers build the full logits."""
    return get_stage(ns.stage).tiled_head(ns)


def chunked_lm_head(ns) -> bool:
    """pt / sft in one process take the loss through engine.train.lmloss (chunks of logits, never all of them);
    under DDP / DeepSpeed / FSDP the stock loss builds the full logits."""
    # the stages that pack are the ones engine.train.sft trains (its CausalLMTrainer)
    return get_stage(ns.stage).packs and world_size(ns) == 1 and not ns.deepspeed and not getattr(ns, "fsdp", None)


def device_memory() -> dict:
    """{"device", "name", "total", "available"} of one device (bytes)."""
    import psutil
    try:
        import torch
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info(0)
            return {"device": "cuda", "name": torch.cuda.get_device_name(0), "total": int(total),
                    "available": int(free), "count": torch.cuda.device_count(),
                    "bf16": bool(torch.cuda.is_bf16_supported())}
    except Exception:  # no usable CUDA: judge against host memory
        pass
    vm = psutil.virtual_memory()
    return {"device": "cpu", "name": "cpu", "total": int(vm.total), "available": int(vm.available), "count": 1,
            "bf16": cpu_has_bf16()}


# ---------------------------------------------------------------- time
def measure(ns, steps: int = 3, timeout: float = 900) -> dict:
    """Run `steps` real optimisation steps in a fresh process: seconds per step, start-up and peak memory."""
    steps = max(2, int(steps))
    values = dict(ns.values)
    with tempfile.TemporaryDirectory(prefix="tuneboard-measure-") as tmp:
        out = Path(tmp) / "run"
        values.update(output_dir=str(out), max_steps=steps, eval_strategy="no", save_steps=10 ** 9,
                      logging_steps=1, plot_loss=False, overwrite_output_dir=False, resume_from_checkpoint=None,
                      load_best_model_at_end=False, early_stopping_patience=None, report_to="none")
        cfg = Path(tmp) / "measure.yaml"
        save_config(values, cfg)
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "engine", "train", str(cfg)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.time() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            raise UserError(f"measuring {steps} steps failed: {tail[0]}")
        rows = [r for r in rundir.read_log(out) if "loss" in r]
        # the run's own peak (RUSAGE_CHILDREN would keep the largest child this process ever had)
        peak_mb = rundir.read_record(out).results.get("peak_rss_mb")
    el = [r["elapsed"] for r in rows]
    per_step = (el[-1] - el[0]) / (len(el) - 1) if len(el) > 1 else (el[0] if el else wall)
    return {"steps": steps, "seconds_per_step": round(per_step, 3), "startup_seconds": round(wall - el[-1], 1)
            if el else None, "wall_seconds": round(wall, 1),
            "peak_rss": int(peak_mb * 2**20) if peak_mb else None}


# ---------------------------------------------------------------- the report
def estimate(recipe=None, overrides=(), values: dict | None = None, measure_steps: int = 0,
             device: dict | None = None) -> dict:
    ns = _namespace(recipe, overrides, values)
    d = data_facts(ns)
    steps = count_steps(d["rows"], ns)
    p = param_facts(ns)
    dev = device or device_memory()
    prec = choose(ns, {**dev, "bf16": bool(dev.get("bf16"))})
    ns.values.update(flags(prec["precision"]))  # what the run will compute in (auto: the hardware's choice)
    mem = memory(ns, p, d["longest"], dev["device"])
    fits = mem["total"] <= FIT_SHARE * dev["total"]
    rep = {
        "samples": {"read": d["stats"].get("total"), "kept": d["stats"].get("kept"),
                    "truncated": d["stats"].get("truncated"), "dropped": d["stats"].get("dropped"),
                    "train": d["stats"].get("train_samples"), "eval": d["stats"].get("eval_samples"),
                    "train_rows": d["rows"], "eval_rows": d["eval_rows"]},
        "steps": steps,
        "tokens_per_epoch": d["tokens_per_epoch"], "trained_tokens_per_epoch": d["trained_tokens_per_epoch"],
        "longest_row": d["longest"],
        "params": {"total": p["total"], "trainable": p["trainable"], "method": ns.finetuning_type},
        "memory": mem, "device": dev, "fits": bool(fits), "precision": prec,
        "advice": [] if fits else _fit_advice(ns, mem, dev),
        "time": None,
    }
    if measure_steps:
        m = measure(ns, measure_steps)
        evals = 0
        if ns.eval_strategy == "steps" and d["eval_rows"]:
            every = (planned_eval_steps(ns, d["rows"], d["eval_rows"], steps["total_steps"], steps["steps_per_epoch"])
                     if planned(ns) else eval_steps(ns))
            every = every if every >= 1 else max(1, math.ceil(steps["total_steps"] * every))
            evals = steps["total_steps"] // every + (steps["total_steps"] % every != 0)
        eval_batches = math.ceil(d["eval_rows"] / ns.per_device_eval_batch_size) if d["eval_rows"] else 0
        # an eval batch is a forward pass only: about a third of a training step
        train_s = m["seconds_per_step"] * steps["total_steps"]
        eval_s = evals * eval_batches * m["seconds_per_step"] / 3 / max(1, ns.gradient_accumulation_steps)
        m.update(train_seconds=round(train_s, 1), eval_seconds=round(eval_s, 1),
                 total_seconds=round(train_s + eval_s + (m["startup_seconds"] or 0), 1))
        rep["time"] = m
    return rep


def needs_checkpointing(ns, longest: int, dev: dict | None = None) -> dict | None:
    """For a run that left gradient_checkpointing alone: the estimate with and without it when, without it, the run
    would not fit in the memory free now (90 %); None when it fits (checkpointing only costs time then)."""
    dev = dev or device_memory()
    p = param_facts(ns)
    plain = memory(ns, p, longest, dev["device"])
    budget = FIT_SHARE * dev["available"]
    if plain["total"] <= budget:
        return None
    ck = copy.deepcopy(ns)
    ck.values["gradient_checkpointing"] = True
    return {"without": plain["total"], "with": memory(ck, p, longest, dev["device"])["total"], "budget": int(budget)}


def _fit_advice(ns, mem: dict, dev: dict) -> list[dict]:
    out = []
    parts = mem["parts"]

    def add(key, change):
        out.append({"why": t(f"est_adv_{key}", "en"), "why_zh": t(f"est_adv_{key}", "zh"), "change": change})
    if not ns.gradient_checkpointing and parts["activations"] > 0.2 * mem["total"]:
        add("checkpointing", {"gradient_checkpointing": True})
    if ns.per_device_train_batch_size > 1:
        add("half_batch", {"per_device_train_batch_size": max(1, ns.per_device_train_batch_size // 2),
                           "gradient_accumulation_steps": ns.gradient_accumulation_steps * 2})
    if ns.finetuning_type == "full":
        add("lora", {"finetuning_type": "lora", "learning_rate": 1e-4})
    if not (ns.bf16 or ns.fp16) and dev["device"] == "cuda":
        add("bf16", {"bf16": True})
    if ns.finetuning_type == "lora" and not ns.quantization_bit and not ns.pissa_init:
        if quantize.backend()[0]:  # only where bitsandbytes runs: the advice must be a recipe that validates here
            add("qlora", {"quantization_bit": 4})
    if dev["device"] == "cuda" and mem["zero_stage"] < 3 and (dev.get("count") or 1) > 1 and not ns.fsdp:
        add("zero3", {"deepspeed": "examples/deepspeed/ds_z3_config.json", "nproc_per_node": dev["count"]})
    return out


# ---------------------------------------------------------------- plain words (the words themselves: words.py)
def _gb(b) -> str:
    return f"{b / GB:.2f} GB"


def _hms(s) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    h, r = divmod(s, 3600)
    m, s = divmod(r, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def render(rep: dict, lang: str = "en") -> str:
    def w(k):
        return t(f"est_{k}", lang)
    s, st, m, dev = rep["samples"], rep["steps"], rep["memory"], rep["device"]
    lines = [f"{w('samples')}: {s['kept']} {w('kept')} / {s['read']} ({w('truncated')} {s['truncated']}, "
             f"{w('dropped')} {s['dropped']}); {w('train')} {s['train']} ({s['train_rows']} {w('rows')}), "
             f"{w('eval')} {s['eval']}",
             f"{w('steps')}: {st['total_steps']} ({st['steps_per_epoch']} {w('per_epoch')} x {st['epochs']}; "
             f"{w('global_batch')} {st['global_batch']}, {st['devices']} {w('devices')})",
             f"{w('tokens')}: {rep['tokens_per_epoch']:,} ({w('trained')} {rep['trained_tokens_per_epoch']:,})",
             f"{w('params')}: {rep['params']['total']:,}, {w('trainable')} {rep['params']['trainable']:,} "
             f"({rep['params']['method']})",
             f"{w('precision')}: {rep['precision']['precision']} ({rep['precision']['why_zh' if lang == 'zh' else 'why']})"
             if rep.get("precision") else "",
             f"{w('memory')} ({m['dtype']}" + (f", QLoRA {m['weights_dtype']}" if "bit" in m["weights_dtype"] else "")
             + (f", FSDP2 {w('zero')} {m['zero_stage']}):" if m.get("sharded_by") == "fsdp"
                else f", {w('zero')} {m['zero_stage']}):")]
    lines = [ln for ln in lines if ln]
    for k, v in m["parts"].items():
        lines.append(f"  {w(k):<18} {_gb(v)}")
    verdict = w("fits") if rep["fits"] else w("nofit")
    lines.append(f"  {w('total'):<18} {_gb(m['total'])} {w('of')} {_gb(dev['total'])} ({dev['name']}): {verdict}")
    if m.get("offloaded_to_host"):
        lines.append(f"  {w('offloaded')}: {_gb(m['offloaded_to_host'])}")
    tm = rep.get("time")
    if tm:
        lines.append(f"{w('time')}: {_hms(tm['total_seconds'])} ({tm['seconds_per_step']} {w('per_step')}, "
                     f"{w('startup')} {tm['startup_seconds']} s)"
                     + (f"; {w('measured_peak')} {_gb(tm['peak_rss'])}" if tm.get("peak_rss") else ""))
    if rep["advice"]:
        lines.append(f"{w('advice')}:")
        for a in rep["advice"]:
            ch = " ".join(f"{k}={v}" for k, v in a["change"].items())
            lines.append(f"  - {a['why_zh'] if lang == 'zh' else a['why']}  ->  {ch}")
    return "\n".join(lines)

"""Which parameters train: LoRA (peft), freeze (last/first N layers), or full."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from ..errors import ConfigError
from ..utils import atomic_write_json, get_logger
from . import rundir
from .stages import STAGES

log = get_logger()
_LAYER = re.compile(r"\.(?:layers|h|blocks|layer)\.(\d+)\.")


def _num_layers(model) -> int:
    n = getattr(model.config, "num_hidden_layers", None)
    if n:
        return int(n)
    idx = [int(m.group(1)) for name, _ in model.named_parameters() if (m := _LAYER.search(name))]
    return max(idx) + 1 if idx else 0


def apply_freeze(model, args):
    n_layers = _num_layers(model)
    k = args.freeze_trainable_layers
    if n_layers == 0:
        raise ConfigError("finetuning_type: freeze needs a model with numbered layers; use lora or full.",
                          "finetuning_type")
    if k == 0 or abs(k) > n_layers:
        raise ConfigError(f"freeze_trainable_layers: {k} is not possible for a model with {n_layers} layers; "
                          f"use 1..{n_layers} (last N) or -1..-{n_layers} (first N).", "freeze_trainable_layers")
    layers = set(range(n_layers - k, n_layers)) if k > 0 else set(range(-k))
    modules = args.freeze_trainable_modules
    head = _new_head(model, args)
    trained = 0
    for name, p in model.named_parameters():
        m = _LAYER.search(name)
        ok = m is not None and int(m.group(1)) in layers and (
            "all" in modules or any(f".{mod}." in name or name.endswith(f".{mod}") for mod in modules))
        p.requires_grad_(ok)
        trained += ok
    for p in head.parameters() if head is not None else ():  # a new reward head is always trained
        p.requires_grad_(True)
    if not trained:
        raise ConfigError(f"freeze_trainable_modules: no parameter matches {modules} in layers {sorted(layers)}.",
                          "freeze_trainable_modules")
    return model


def _new_head(model, args):
    """The score head of a reward model (stage rm), which starts untrained; None for a causal LM."""
    stage = STAGES.get(getattr(args, "stage", None))
    if not (stage and stage.reward_head):
        return None
    head = getattr(model, "score", None)
    return head if isinstance(head, torch.nn.Module) else None


def apply_lora(model, args):
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(model, PeftModel):  # continuing an adapter given in adapter_name_or_path
        return _sum_in_fp32(model)
    targets = args.lora_target
    target = "all-linear" if targets == ["all"] else targets
    init = True
    if getattr(args, "pissa_init", False):
        init = "pissa" if args.pissa_iter == -1 else f"pissa_niter_{args.pissa_iter}"
        if args.lora_dropout:
            log.warning("pissa_init: lora_dropout=%s is applied to a PiSSA adapter too", args.lora_dropout)
    # a reward model: SEQ_CLS makes peft train and save the score head whole (modules_to_save) next to the
    # adapter, and keeps LoRA off it
    task = "SEQ_CLS" if _new_head(model, args) is not None else "CAUSAL_LM"
    cfg = LoraConfig(task_type=task, r=args.lora_rank, lora_alpha=args.lora_alpha,
                     lora_dropout=args.lora_dropout, target_modules=target,
                     use_rslora=args.use_rslora, use_dora=args.use_dora, init_lora_weights=init,
                     modules_to_save=["score"] if task == "SEQ_CLS" else None)
    try:
        return _sum_in_fp32(get_peft_model(model, cfg))
    except ValueError as e:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"lora_target: {targets} matched no module ({e}). Linear modules of this model: "
                          f"{', '.join(names)} (or `all`).", "lora_target") from None


def _fp32_under_autocast(module, inputs, output):
    if isinstance(output, torch.Tensor) and output.is_floating_point() and torch.is_autocast_enabled(
            output.device.type):
        return output.float()
    return output


def _sum_in_fp32(model):
    """Under bf16 / fp16 autocast peft adds a LoRA layer's update to the base layer's half-precision output and
    rounds the sum back to half: an update under half a unit in the last place of that output vanishes from
    the forward, and early in a run most do (the benchmark's LoRA adapter scored 2.2 % worse in a bf16 forward
    than in fp32, 0.2 % with this). Handing peft the base output in fp32 keeps the sum, and the residual
    stream after it, in fp32; the matmuls stay in half precision. Outside autocast nothing changes. The rank-r
    factors themselves stay fp32 under CPU autocast (_AdapterLinear)."""
    from peft.tuners.lora import LoraLayer
    from peft.tuners.lora.layer import Linear as LoraLinear
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.get_base_layer().register_forward_hook(_fp32_under_autocast)
        if type(module) is LoraLinear:
            for part in (*module.lora_A.values(), *module.lora_B.values()):
                if type(part) is torch.nn.Linear:
                    part.__class__ = _AdapterLinear
    return model


class _AdapterLinear(torch.nn.Linear):
    """A LoRA factor (lora_A / lora_B) that stays fp32 under CPU autocast. Its input is fp32 already (peft casts it
    to the adapter's type; lora_B's comes from lora_A) and autocast would cast it, and the factor's weight, to bf16
    for a rank-r matmul that is cheap in fp32 anyway, then cast each gradient back: ~1,700 copies a step in the
    bundled model's LoRA benchmark (profile of 4 steps: 17,362 -> 10,654 copies, self CPU 5.77 -> 5.34 s). Elsewhere
    (CUDA, no autocast) it is nn.Linear."""

    def forward(self, x):
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return F.linear(x.float(), self.weight.float(), None if self.bias is None else self.bias.float())
        return super().forward(x)


def apply_method(model, args):
    method = args.finetuning_type
    if method == "lora":
        model = apply_lora(model, args)
    elif method == "freeze":
        model = apply_freeze(model, args)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    # Trainable weights in fp32 even when the frozen base is half precision: stable updates.
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    # No KV cache while training: it is useless there, and with it on transformers stops separating
    # packed examples (they would attend across boundaries).
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)  # 4-bit: two weights per stored byte
                for p in model.parameters())
    log.info("trainable params: %s / %s (%.4f%%) with %s", f"{trainable:,}", f"{total:,}",
             100 * trainable / max(total, 1), method)
    return model


# ---------------------------------------------------------------- LoRA+ and PiSSA around the Trainer
def attach_loraplus(trainer, args) -> None:
    """LoRA+ (loraplus_lr_ratio): the optimizer gets the B matrices at ratio x learning_rate (peft's parameter
    groups), built with the optimizer class and settings `optim` names. Set before training starts, so the
    Trainer schedules, checkpoints and resumes this optimizer like its own."""
    ratio = getattr(args, "loraplus_lr_ratio", None)
    if not ratio:
        return
    if args.finetuning_type != "lora":
        log.warning("loraplus_lr_ratio: only applies to LoRA; ignored for %s", args.finetuning_type)
        return
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer
    targs = trainer.args
    if targs.deepspeed:
        raise ConfigError("loraplus_lr_ratio: not available with a DeepSpeed config (it builds its own optimizer); "
                          "remove one of them.", "loraplus_lr_ratio")
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(targs, trainer.model)
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    trainer.optimizer = create_loraplus_optimizer(trainer.model, cls, lr=targs.learning_rate, loraplus_lr_ratio=ratio,
                                                  loraplus_weight_decay=targs.weight_decay, **kwargs)
    log.info("LoRA+: lora_B learning rate %.3g (%.3g x %s)", targs.learning_rate * ratio, targs.learning_rate, ratio)


PISSA_INIT_DIR = rundir.PISSA_INIT


def uses_pissa(model) -> bool:
    from peft import PeftModel
    if not isinstance(model, PeftModel):
        return False
    init = getattr(model.peft_config.get("default"), "init_lora_weights", True)
    return isinstance(init, str) and init.startswith("pissa")


def pissa_init_saver(model, output_dir):
    """save_pissa_init of the adapter as it is now, to call later: the run folder gets it when training starts,
    after a resumed run has loaded its trained checkpoint into the same model (which must not be what is kept)."""
    if not uses_pissa(model):
        return None
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}
    return lambda: save_pissa_init(model, output_dir, snapshot)


def save_pissa_init(model, output_dir, state_dict: dict | None = None) -> str | None:
    """PiSSA moves the principal part of each weight into the adapter, so the base under it is no longer the
    original. Keep the adapter as initialised, to convert the trained one back to a plain LoRA adapter (on the
    original base) when it is saved. Returns its folder, or None without PiSSA. state_dict: the adapter's
    weights taken earlier (pissa_init_saver); the model's own weights otherwise."""
    if not uses_pissa(model):
        return None
    cfg = model.peft_config.get("default")
    init = cfg.init_lora_weights
    path = Path(output_dir) / PISSA_INIT_DIR
    cfg.init_lora_weights = True  # loading this folder must not run the SVD again
    try:
        model.save_pretrained(str(path), **({"state_dict": state_dict} if state_dict is not None else {}))
    finally:
        cfg.init_lora_weights = init
    return str(path)


PISSA_RESIDUAL_DIR = "pissa_residual"  # in checkpoint-N: the adapter as trained (on the residual base), for resume
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def convert_pissa(trained_dir, init_dir, out_dir) -> None:
    """Write the plain-LoRA form of a trained PiSSA adapter into out_dir (may be trained_dir itself), from files.
    PiSSA trains W_res + B A with W_res = W - B0 A0, so the change to the original W is B A - B0 A0 =
    [B | -B0] [A ; A0]: a LoRA adapter of twice the rank (alpha doubled too, or x sqrt 2 with rsLoRA, so the
    scaling stays). Other saved weights (a reward model's score head) are not touched by PiSSA and stay."""

    import torch
    from safetensors.torch import load_file, save_file
    trained_dir, out_dir = Path(trained_dir), Path(out_dir)
    cfg = json.loads((trained_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise ValueError("convert_pissa: rank_pattern / alpha_pattern adapters are not handled")
    trained = load_file(str(trained_dir / "adapter_model.safetensors"))
    init = load_file(str(Path(init_dir) / "adapter_model.safetensors"))
    out = {}
    for key, w in trained.items():
        if ".lora_A." in key:
            out[key] = torch.cat([w, init[key]], dim=0).contiguous()
        elif ".lora_B." in key:
            out[key] = torch.cat([w, -init[key]], dim=1).contiguous()
        else:
            out[key] = w
    cfg.update(r=2 * cfg["r"], init_lora_weights=True,
               lora_alpha=cfg["lora_alpha"] * (2 ** 0.5 if cfg.get("use_rslora") else 2))
    out_dir.mkdir(parents=True, exist_ok=True)
    # the weights land before the config names the new rank, each file whole (a crash never mixes the two forms)
    tmp = out_dir / "adapter_model.safetensors.tmp"
    save_file(out, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out_dir / "adapter_model.safetensors")
    atomic_write_json(out_dir / "adapter_config.json", cfg)


def save_pissa_converted(output_dir, init_dir: str) -> None:
    """Overwrite the final adapter (as the Trainer saved it) with its plain-LoRA form, loadable on the original
    base, and drop the initial adapter, which nothing needs any more."""
    convert_pissa(output_dir, init_dir, output_dir)
    shutil.rmtree(init_dir, ignore_errors=True)
    log.info("PiSSA adapter converted to plain LoRA for the original base model (rank doubles)")


class PissaCheckpoints(TrainerCallback):
    """Each checkpoint-N of a PiSSA run becomes loadable on the original base like the final adapter: its
    top-level adapter is the plain-LoRA form (what chat, eval, export and other tools read), and the adapter as
    trained moves to checkpoint-N/pissa_residual, where resume and load_best_model_at_end read it (follow_residual).
    Listed before RunLogCallback, so a checkpoint is marked complete only once converted."""

    def __init__(self, init_dir: str):
        self.init_dir = init_dir

    def on_save(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        ckpt = rundir.checkpoint_dir(args.output_dir, state.global_step)
        if not (ckpt / "adapter_model.safetensors").is_file():
            return
        residual = ckpt / PISSA_RESIDUAL_DIR
        residual.mkdir(exist_ok=True)
        for name in _ADAPTER_FILES:
            os.replace(ckpt / name, residual / name)
        convert_pissa(residual, self.init_dir, ckpt)


def follow_residual(trainer) -> None:
    """The Trainer reloads a checkpoint's adapter (resume, load_best_model_at_end) through the model's load_adapter;
    for a PiSSA checkpoint, point it at the residual-form adapter the run trains, not the converted top level."""

    from peft import PeftModel
    model = trainer.model
    if not isinstance(model, PeftModel):  # PiSSA applies to LoRA only
        return
    load = model.load_adapter

    def load_adapter(model_id, *a, **kw):
        if Path(str(model_id)).name == PISSA_RESIDUAL_DIR:
            return None  # the Trainer takes an adapter subfolder for a second adapter of that name; it is not one
        residual = Path(str(model_id)) / PISSA_RESIDUAL_DIR
        if (residual / "adapter_config.json").is_file():
            model_id = str(residual)
        return load(model_id, *a, **kw)

    model.load_adapter = load_adapter

"""The compute type of a run: the `precision` argument (bf16 / fp16 are LLaMA-Factory's names for two of its values).

Left at `auto`, training takes what the hardware runs natively: bf16 on a CUDA GPU that supports it, fp16 on an
older GPU, bf16 autocast on a CPU with AVX512-BF16 or AMX (measured 1.3x fp32 there), fp32 on other CPUs (bf16 is
emulated there and slower). Inference keeps its own default (fp32 on CPU; bf16, else fp16, on CUDA). A type the
device cannot run falls back to fp32, with the reason. `choose` never imports torch when told the device.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .args import values_of
from .train.stages import get_stage
from .utils import cpu_has_bf16, device_info

CHOICES = ("auto", "fp32", "bf16", "fp16")


def asked(values: dict) -> str:
    """What the arguments ask for: bf16=true / fp16=true, else `precision`."""
    if values.get("bf16"):
        return "bf16"
    if values.get("fp16"):
        return "fp16"
    return str(values.get("precision") or "auto")


def device() -> dict:
    """{"device": "cuda"|"cpu", "name", "bf16": native bf16, "fp16": fp16 runs}. Imports torch."""
    return device_info()


REASONS = {  # reason -> (English, Chinese); {name} is the device
    "auto_cuda_bf16": ("auto: {name} computes in bf16 natively", "auto：{name} 原生支持 bf16"),
    "auto_cuda_fp16": ("auto: {name} has no bf16; fp16 with loss scaling", "auto：{name} 不支持 bf16，使用带损失缩放的 fp16"),
    "auto_cpu_bf16": ("auto: this CPU has native bf16 matmul (AVX512-BF16 / AMX): bf16 autocast, fp32 master weights",
                      "auto：此 CPU 原生支持 bf16 矩阵乘（AVX512-BF16 / AMX）：bf16 自动混合精度，主权重为 fp32"),
    "auto_cpu_fp32": ("auto: this CPU has no native bf16 (emulated bf16 is slower): fp32",
                      "auto：此 CPU 不原生支持 bf16（模拟的 bf16 更慢）：fp32"),
    "auto_cpu_stage_fp32": ("auto: {stage} with these settings learned less in bf16 autocast than in fp32 on CPU "
                            "(bench/README.md): fp32",
                            "auto：此设置下的 {stage} 在 CPU 上用 bf16 自动混合精度学得比 fp32 少（见 bench/README.md）：fp32"),
    "auto_cpu_infer": ("auto: inference on CPU stays fp32", "auto：CPU 上推理保持 fp32"),
    "no_bf16": ("bf16 asked, but {name} does not support it: fp32", "要求 bf16，但 {name} 不支持：fp32"),
    "no_fp16": ("fp16 asked, but it is not available on CPU: fp32 (bf16 works on CPUs with AVX512-BF16)",
                "要求 fp16，但 CPU 不支持：fp32（支持 AVX512-BF16 的 CPU 可用 bf16）"),
    "asked": ("{kind}, as asked", "{kind}（按设置）"),
}


def choose(values: Any, dev: dict | None = None, training: bool = True) -> dict:
    """{"precision": "bf16"|"fp16"|"fp32", "asked", "reason", "why" (English), "why_zh"}: what a run of these
    arguments computes in on `dev` (this machine's device when None)."""
    v = values if isinstance(values, dict) else values_of(values)
    want = asked(v)
    dev = dev or device()
    cuda = dev["device"] == "cuda"
    name = dev.get("name") or dev["device"]
    if want == "auto":
        if cuda:
            kind, reason = ("bf16", "auto_cuda_bf16") if dev["bf16"] else ("fp16", "auto_cuda_fp16")
        elif training and not get_stage(v.get("stage") or "sft").cpu_bf16(v):
            kind, reason = "fp32", "auto_cpu_stage_fp32"
        elif training:
            kind, reason = ("bf16", "auto_cpu_bf16") if dev["bf16"] else ("fp32", "auto_cpu_fp32")
        else:
            kind, reason = "fp32", "auto_cpu_infer"
    elif want == "bf16" and not dev["bf16"]:
        kind, reason = "fp32", "no_bf16"
    elif want == "fp16" and not cuda:
        kind, reason = "fp32", "no_fp16"
    else:
        kind, reason = want, "asked"
    en, zh = (w.format(name=name, kind=kind, stage=v.get("stage")) for w in REASONS[reason])
    return {"precision": kind, "asked": want, "reason": reason, "why": en, "why_zh": zh}


def device_light() -> dict:
    """device(), without importing torch on a machine with no NVIDIA driver (the web UI's preview): a CPU then."""
    if "torch" in sys.modules or Path("/proc/driver/nvidia/gpus").exists():
        return device()
    return {"device": "cpu", "count": 1, "name": "cpu", "bf16": cpu_has_bf16(), "fp16": False}


def flags(kind: str) -> dict:
    """The TrainingArguments / loader flags of a chosen type."""
    return {"bf16": kind == "bf16", "fp16": kind == "fp16"}

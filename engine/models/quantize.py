"""QLoRA: the frozen base loaded in 4 or 8 bits with bitsandbytes, LoRA trained on top in full precision.

check(values) runs in config validation (engine.config.validate, train only), so a recipe this machine cannot run
is refused on the CLI, on the web UI's preview and on Start before any model is read. bnb_config() builds the
transformers BitsAndBytesConfig engine.models.loader loads the base with.

Only training quantizes. chat / eval / api / export load the base in its compute dtype: a QLoRA adapter is a plain
LoRA adapter (full-precision A and B), so it loads, merges and exports onto the unquantized base.
"""
from __future__ import annotations

from functools import lru_cache

from ..errors import ConfigError
from ..utils import BNB_KERNELS, get_logger

BNB_PIN = "bitsandbytes==0.50.2"  # the version requirements.txt pins; its CPU backend runs 4-bit and 8-bit layers


@lru_cache(maxsize=None)
def backend() -> tuple[bool, str]:
    """(usable, why not and what to do): bitsandbytes imports and, without a CUDA GPU, its CPU backend really runs a 4-bit layer.
    Cached: asked on every preview, answered once per process."""
    try:
        import bitsandbytes as bnb
    except Exception as e:  # ImportError, or a broken native library raising at import
        return False, f"bitsandbytes is not installed here ({type(e).__name__}: {str(e)[:120]}). Install it with " \
                      f"`pip install {BNB_PIN}` (requirements.txt pins it)"
    for record in BNB_KERNELS.held:  # held back for runs that do not quantize; this one does
        get_logger().warning("bitsandbytes: %s", record.getMessage())
    BNB_KERNELS.held.clear()
    import torch
    if torch.cuda.is_available():
        return True, ""
    try:  # no GPU: does this CPU's backend quantize and run a layer? (a few milliseconds)
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
        layer.load_state_dict({"weight": torch.randn(64, 64)}, strict=False)
        layer = layer.to("cpu")
        with torch.no_grad():
            out = layer(torch.randn(2, 64))
        if not torch.isfinite(out).all():
            raise RuntimeError("non-finite output")
    except Exception as e:
        return False, f"this machine has no CUDA GPU and bitsandbytes {getattr(bnb, '__version__', '?')} cannot " \
                      f"run 4-bit layers on its CPU ({type(e).__name__}: {str(e)[:120]}). Run it on a machine with " \
                      "a CUDA GPU"
    return True, ""


def check(v: dict) -> None:
    """Refuse what QLoRA cannot do, naming the field and the fix. v: the run's values (train)."""
    bits = v.get("quantization_bit")
    if bits is None:
        return
    if v.get("finetuning_type") != "lora":
        raise ConfigError(f"quantization_bit: a {bits}-bit base model can only be trained with LoRA adapters "
                          f"(finetuning_type={v.get('finetuning_type')} would update the quantized weights); "
                          "set finetuning_type=lora, or leave quantization_bit empty.", "quantization_bit")
    if v.get("pissa_init"):
        raise ConfigError("pissa_init: PiSSA moves part of each weight into the adapter, which a quantized base "
                          "cannot give back; turn pissa_init off or leave quantization_bit empty.", "pissa_init")
    adapters = v.get("adapter_name_or_path") or []
    if isinstance(adapters, str):
        adapters = [a for a in adapters.split(",") if a.strip()]
    if len(adapters) > 1:
        raise ConfigError("adapter_name_or_path: a quantized base takes one adapter to continue; merge the "
                          "others into the base first (`tuneboard export`) and train on the merged model.",
                          "adapter_name_or_path")
    ok, why = backend()
    if not ok:
        raise ConfigError(f"quantization_bit: {bits}-bit (QLoRA) training needs bitsandbytes, but {why}; or "
                          "leave quantization_bit empty to train LoRA on the full-precision model.", "quantization_bit")


def bnb_config(v: dict, compute_dtype, reward_head: bool = False):
    """transformers BitsAndBytesConfig for the run's values; compute_dtype is what the 4-bit layers compute in
    (the run's bf16 / fp16 / fp32)."""
    from transformers import BitsAndBytesConfig
    bits = int(v["quantization_bit"])
    # a reward model's score head is new and trained whole: it must stay a plain Linear
    skip = {"llm_int8_skip_modules": ["score"]} if reward_head else {}
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, **skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=v.get("quantization_type") or "nf4",
                              bnb_4bit_use_double_quant=bool(v.get("double_quantization", True)),
                              bnb_4bit_compute_dtype=compute_dtype, **skip)

"""Shared fixtures. The tiny model is a random 2-layer Llama on the bundled SmolLM2 tokenizer:
same vocabulary and chat template as the real model, trains in well under a second per step."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "SmolLM2-135M-Instruct"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_tiny_model(dest: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(BUNDLED)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def build_lora_adapter(base: Path, dest: Path, seed: int = 0, rank: int = 4) -> Path:
    """A LoRA adapter on `base` with random (non-zero) A and B, so it really changes the model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False,
                     task_type="CAUSAL_LM")
    get_peft_model(model, cfg).save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory, tiny_model) -> Path:
    """A random LoRA adapter (rank 4, all linear layers) for the tiny model."""
    return build_lora_adapter(tiny_model, tmp_path_factory.mktemp("tiny-lora") / "adapter")


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    if not (BUNDLED / "model.safetensors").is_file():
        pytest.fail("bundled model missing: run `make model` (make test does it)")
    return BUNDLED


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, bundled_model) -> Path:
    """Path to a tiny random Llama (2 layers, hidden 64) sharing the bundled tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return ROOT / "data"

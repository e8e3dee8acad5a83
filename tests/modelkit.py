"""Model builders shared by the tests (a plain module: `conftest` is ambiguous with tests/browser/conftest.py)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "SmolLM2-135M-Instruct"


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


# The suite's one real-model identity LoRA run (tests/conftest.py: the `identity_adapter` session fixture), shared
# by the end-to-end check, the browser's chat and export. It gives no learning rate, packing, cutoff or warm-up:
# those are the identity dataset's recipe (engine/data/recipes.py: lr 2e-3, 10 % warm-up, packed rows of 128
# tokens), what a user who picks the dataset and leaves the rest alone gets. 20 packed steps of 2 rows (a quarter
# of the 40 x 4 the e2e test used to train) teach the name with a margin: greedy answers to six identity
# questions, four of them not the tests' (English and Chinese, 40-60 new tokens), all named Zorblax; the loss of
# the first two steps 3.09, of the last two 1.16 (the test asks for below half).
IDENTITY_NAME, IDENTITY_AUTHOR = "Zorblax", "Quillworks"
IDENTITY_RUN = dict(template="chatml", dataset="identity", identity_name=IDENTITY_NAME,
                    identity_author=IDENTITY_AUTHOR, per_device_train_batch_size=2, max_steps=20, logging_steps=2,
                    save_steps=1000, seed=7, plot_loss="false")


def train_identity_adapter(base: Path, data_dir: Path, out: Path) -> Path:
    from engine.config import load_config
    from engine.train.workflow import run

    values = dict(IDENTITY_RUN, model_name_or_path=str(base), dataset_dir=str(data_dir), output_dir=str(out))
    run(load_config(None, {k: str(v) for k, v in values.items()}))
    return out

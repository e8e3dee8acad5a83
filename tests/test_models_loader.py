"""Loading tokenizers, base models and LoRA adapters: what works, and the errors users see."""
from __future__ import annotations

import json
import shutil

import pytest

from engine.models.loader import count_parameters, load_model, load_tokenizer
from engine.errors import UserError

from modelkit import build_lora_adapter
from kits.args import as_args


def _logits(model, text_ids):
    import torch
    with torch.no_grad():
        return model(input_ids=torch.tensor([text_ids])).logits


def tiny(model, **values):
    """The arguments of the tiny model (and `values`) as chat reads them."""
    return as_args({"model_name_or_path": str(model), **values}, "infer")


def test_tokenizer_and_inference_model(tiny_model):
    import torch
    tok = load_tokenizer(tiny(tiny_model))
    assert tok.pad_token_id is not None and tok.eos_token == "<|im_end|>"
    model = load_model(tiny(tiny_model))
    assert not model.training and model.dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"
    assert count_parameters(model)[0] == 0
    trainable, total = count_parameters(load_model(tiny(tiny_model), trainable=True))
    assert trainable == total > 0


def test_missing_model_folder(tmp_path):
    with pytest.raises(UserError, match=str(tmp_path / "absent")):
        load_model(as_args({"model_name_or_path": str(tmp_path / "absent")}, "infer"))
    with pytest.raises(UserError, match="tuneboard download"):
        load_tokenizer(as_args({"model_name_or_path": str(tmp_path / "absent")}, "infer"))


def test_folder_without_weights_or_tokenizer(tmp_path, tiny_model):
    d = tmp_path / "half"
    shutil.copytree(tiny_model, d)
    for f in d.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(UserError, match=rf"{d}: no model weights .*download the model again"):
        load_model(as_args({"model_name_or_path": str(d)}, "infer"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=rf"{empty}: no tokenizer files"):
        load_tokenizer(as_args({"model_name_or_path": str(empty)}, "infer"))


def test_adapter_given_as_base_model_is_explained(tiny_adapter):
    with pytest.raises(UserError, match="this is a LoRA adapter, not a full model"):
        load_model(as_args({"model_name_or_path": str(tiny_adapter)}, "infer"))


def test_adapter_is_merged_for_inference(tiny_model, tiny_adapter):
    from peft import PeftModel
    ids = [1, 504, 3458, 314, 260, 2]
    base = load_model(tiny(tiny_model))
    merged = load_model(tiny(tiny_model, adapter_name_or_path=[str(tiny_adapter)]))
    assert not isinstance(merged, PeftModel)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    reference = PeftModel.from_pretrained(load_model(tiny(tiny_model)), str(tiny_adapter))
    assert (_logits(merged, ids) - _logits(reference, ids)).abs().max() < 1e-4
    assert (_logits(merged, ids) - _logits(base, ids)).abs().max() > 1e-3  # the adapter really changed it


def test_adapters_stack(tiny_model, tiny_adapter, tmp_path):
    from peft import PeftModel
    second = build_lora_adapter(tiny_model, tmp_path / "second", seed=1)
    ids = [1, 504, 3458, 2]
    both = load_model(as_args({"model_name_or_path": str(tiny_model),
                       "adapter_name_or_path": f"{tiny_adapter},{second}"}, "infer"))
    step = PeftModel.from_pretrained(load_model(tiny(tiny_model)), str(tiny_adapter))
    step = PeftModel.from_pretrained(step.merge_and_unload(), str(second)).merge_and_unload()
    only_first = load_model(tiny(tiny_model, adapter_name_or_path=[str(tiny_adapter)]))
    assert (_logits(both, ids) - _logits(step, ids)).abs().max() < 1e-4
    assert (_logits(both, ids) - _logits(only_first, ids)).abs().max() > 1e-3


def test_continue_training_keeps_last_adapter_trainable(tiny_model, tiny_adapter, tmp_path):
    from peft import PeftModel
    second = build_lora_adapter(tiny_model, tmp_path / "second", seed=2)
    args = {"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter), str(second)],
            "finetuning_type": "lora"}
    model = load_model(as_args(args, "infer"), trainable=True)
    assert isinstance(model, PeftModel)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # first adapter merged into the base, second still separate: outputs equal the inference merge of both
    ids = [1, 504, 3458, 2]
    model.eval()
    inference = load_model(as_args(args, "infer"))
    assert (_logits(model, ids) - _logits(inference, ids)).abs().max() < 1e-4


def test_adapter_for_a_different_base_is_refused(tiny_model, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    other = tmp_path / "other-base"
    tok = AutoTokenizer.from_pretrained(tiny_model)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(other)
    adapter = build_lora_adapter(other, tmp_path / "wrong-adapter")
    with pytest.raises(UserError) as e:
        load_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(adapter)]}, "infer"))
    msg = str(e.value)
    assert str(adapter) in msg and str(tiny_model) in msg and "shapes do not match" in msg
    assert str(other) in msg  # says which base it was trained on


def test_adapter_for_another_architecture_is_refused(tiny_model, tiny_adapter, tmp_path):
    adapter = tmp_path / "gpt2-style"
    shutil.copytree(tiny_adapter, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["target_modules"] = ["c_attn", "c_proj"]
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="target modules do not exist in the base model") as e:
        load_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(adapter)]}, "infer"))
    assert str(adapter) in str(e.value)


def test_adapter_folder_problems(tiny_model, tiny_adapter, tmp_path):
    base = {"model_name_or_path": str(tiny_model)}
    with pytest.raises(UserError, match=r"adapter_name_or_path: .*nope does not exist"):
        load_model(as_args({**base, "adapter_name_or_path": [str(tmp_path / "nope")]}, "infer"))
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run / "checkpoint-5")
    shutil.copytree(tiny_adapter, run / "checkpoint-20")
    with pytest.raises(UserError, match=r"newest checkpoint: adapter_name_or_path=.*checkpoint-20"):
        load_model(as_args({**base, "adapter_name_or_path": [str(run)]}, "infer"))
    with pytest.raises(UserError, match="is a full model, not a LoRA adapter"):
        load_model(as_args({**base, "adapter_name_or_path": [str(tiny_model)]}, "infer"))
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(tiny_adapter / "adapter_config.json", broken)
    with pytest.raises(UserError, match="no adapter weights"):
        load_model(as_args({**base, "adapter_name_or_path": [str(broken)]}, "infer"))


def test_namespace_args(tiny_model):
    from engine.config import load_config
    ns = load_config(None, [f"model_name_or_path={tiny_model}"], command="infer")
    assert load_tokenizer(ns).eos_token == "<|im_end|>"
    assert load_model(ns) is not None



def test_adapter_template_comes_from_its_run(tiny_adapter, tmp_path):
    from engine.models.loader import adapter_template
    assert adapter_template(as_args({"adapter_name_or_path": None}, "infer")) is None
    assert adapter_template(as_args({"adapter_name_or_path": [str(tiny_adapter)]}, "infer")) is None
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run / "checkpoint-3")
    (run / "training_args.yaml").write_text("template: qwen\nstage: sft\n")
    assert adapter_template(as_args({"adapter_name_or_path": [str(run / "checkpoint-3")]}, "infer")) == "qwen"
    (run / "all_results.json").write_text(json.dumps({"template": "llama3"}))
    assert adapter_template(as_args({"adapter_name_or_path": f"{tiny_adapter},{run}"}, "infer")) == "llama3"


def test_dtype_rules(monkeypatch):
    import torch
    from engine.models import loader
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr("engine.models.loader.cpu_has_bf16", lambda: False)  # the name the loader reads
    pick = loader.pick_dtype
    assert pick(as_args({}, "infer"), "cpu") == torch.float32
    assert pick(as_args({"bf16": True}, "infer"), "cpu") == torch.float32  # no native bf16 on this CPU: fp32
    assert pick(as_args({}, "infer"), "cuda") == torch.bfloat16
    assert pick(as_args({"fp16": True}, "infer"), "cuda") == torch.float16
    assert pick(as_args({"finetuning_type": "lora"}, "infer"), "cuda", trainable=True) == torch.float32
    assert pick(as_args({"finetuning_type": "lora", "bf16": True}, "infer"), "cuda", trainable=True) == torch.bfloat16
    assert pick(as_args({"finetuning_type": "full", "bf16": True}, "infer"), "cuda", trainable=True) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick(as_args({}, "infer"), "cuda") == torch.float16
    assert pick(as_args({"finetuning_type": "lora", "bf16": True}, "infer"), "cuda", trainable=True) == torch.float32

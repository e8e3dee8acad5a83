"""`tuneboard export`: merged weights equal base + adapter, plain transformers loads the folder, shards, overwrite rules."""
from __future__ import annotations

import json
import shutil

import pytest

from engine.errors import ConfigError
from engine.export import export_model
from engine.errors import UserError
from kits.args import as_args

IDS = [1, 504, 3458, 314, 260, 2, 30, 4000]


def _logits(model, ids=IDS):
    import torch
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


@pytest.fixture()
def run_dir(tmp_path, tiny_adapter):
    """A LoRA run as the trainer leaves it: run files at the top, the adapter in a checkpoint folder."""
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter, run / "checkpoint-10")
    (run / "training_args.yaml").write_text("stage: sft\nfinetuning_type: lora\nlora_rank: 4\nlearning_rate: 0.0003\n")
    (run / "all_results.json").write_text(json.dumps({"train_loss": 1.2345, "epoch": 3.0}))
    return run / "checkpoint-10"


def test_merged_export_matches_base_plus_adapter(tiny_model, run_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(run_dir)],
                        "export_dir": str(tmp_path / "merged")}, "export"))
    assert out == tmp_path / "merged"
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)  # plain transformers, no TuneBoard
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, str(run_dir)).eval()
    assert (_logits(merged) - _logits(reference)).abs().max().item() < 1e-4
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert (_logits(merged) - _logits(AutoModelForCausalLM.from_pretrained(tiny_model))).abs().max() > 1e-3

    # tokenizer + chat template: prompts render as TuneBoard's chatml template does (no injected system prompt)
    from engine.data.templates import get_template
    tok = AutoTokenizer.from_pretrained(out)
    msgs = [{"role": "user", "content": "Who are you?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert list(ids) == get_template("chatml", tok).encode_prompt(tok, msgs)
    # ... tool lists, calls and results too, as transformers / OpenAI write them
    tool = {"name": "lookup", "description": "Look a word up.", "parameters": {"type": "object"}}
    hf = msgs + [{"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "lookup", "arguments": {"word": "tune"}}}]}, {"role": "tool", "content": "a melody"}]
    ours = msgs + [{"role": "function", "content": '{"name": "lookup", "arguments": {"word": "tune"}}'},
                   {"role": "observation", "content": "a melody"}]
    ids = tok.apply_chat_template(hf, tools=[{"type": "function", "function": tool}], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)
    assert list(ids) == get_template("chatml", tok).encode_prompt(tok, ours, tools=[tool])
    assert "<tool_response>\na melody\n</tool_response>" in tok.decode(ids)
    assert merged.generation_config.eos_token_id in (2, [2]) and merged.generation_config.pad_token_id == 2

    card = (out / "README.md").read_text()
    assert str(run_dir) in card and str(tiny_model) in card
    assert "learning_rate: 0.0003" in card and "| train_loss | 1.2345 |" in card
    assert "chatml" in card
    marker = json.loads((out / ".tuneboard_export.json").read_text())
    assert marker["adapters"] == [str(run_dir)] and marker["template"] == "chatml"
    assert list(out.parent.glob(".merged.*")) == []  # no temporary folder left behind


def test_export_is_sharded_by_max_shard_size(tiny_model, tiny_adapter, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM
    args = {"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)],
            "export_dir": str(tmp_path / "sharded")}
    out = export_model(as_args(args, "export"), max_shard_size="200KB")  # the 12.6 MB embedding gets a shard of its own
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) >= 3
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [p.name for p in shards]
    one = export_model(as_args({**args, "export_dir": str(tmp_path / "single")}, "export"))  # export_size default 5 GB
    assert [p.name for p in one.glob("*.safetensors")] == ["model.safetensors"]
    a = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    b = AutoModelForCausalLM.from_pretrained(one, dtype=torch.float32)
    assert torch.equal(_logits(a), _logits(b))


def test_export_size_argument_reaches_save(tiny_model, tmp_path, monkeypatch):
    from transformers import PreTrainedModel
    seen = {}
    real = PreTrainedModel.save_pretrained

    def spy(self, *a, **kw):
        seen["max_shard_size"] = kw.get("max_shard_size")
        return real(self, *a, **kw)

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", spy)
    export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "x"), "export_size": 2},
                         "export"))
    assert seen["max_shard_size"] == "2GB"


def test_reexport_replaces_previous_export_completely(tiny_model, tiny_adapter, tmp_path):
    args = {"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)],
            "export_dir": str(tmp_path / "out")}
    export_model(as_args(args, "export"), max_shard_size="200KB")
    export_model(as_args(args, "export"))  # a previous export may be replaced; its old shards must not linger
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "model.safetensors" in names and not any(n.startswith("model-0") for n in names)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_refuses_to_overwrite_other_folders(tiny_model, tiny_adapter, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty and is not a previous TuneBoard export") as e:
        export_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)],
                      "export_dir": str(precious)}, "export"))
    assert str(precious) in str(e.value)
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="is the model or adapter being exported"):
        export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tiny_model)}, "export"))


def test_missing_export_dir_names_the_field(tiny_model):
    with pytest.raises(ConfigError, match="export_dir") as e:
        export_model(as_args({"model_name_or_path": str(tiny_model)}, "export"))
    assert e.value.field == "export_dir"


def test_export_dtype_cast(tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM
    out = export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "bf16"),
                        "export_dtype": "bfloat16"}, "export"))
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(out, dtype="auto").dtype == torch.bfloat16


def test_cli_export(tiny_model, tiny_adapter, tmp_path, capsys):
    from engine.cli import main
    rc = main(["export", f"model_name_or_path={tiny_model}", f"adapter_name_or_path={tiny_adapter}",
               f"export_dir={tmp_path / 'cli'}"])
    out = capsys.readouterr().out
    assert rc == 0 and f"exported to {tmp_path / 'cli'}" in out
    assert (tmp_path / "cli" / "model.safetensors").is_file()
    assert main(["export", f"model_name_or_path={tiny_model}"]) == 2  # no export_dir: message, no traceback
    assert "export_dir" in capsys.readouterr().err


def test_export_then_chat(tiny_model, tiny_adapter, tmp_path):
    """The merged folder answers like base + adapter in the chat engine (template recorded in the export)."""
    from engine.chat import ChatEngine
    out = export_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)],
                        "export_dir": str(tmp_path / "m")}, "export"))
    gen = {"do_sample": False, "repetition_penalty": 2.0, "max_new_tokens": 8}
    q = [{"role": "user", "content": "Hi"}]
    merged = ChatEngine(as_args({"model_name_or_path": str(out)}, "infer"))
    stacked = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)]},
                                 "infer"))
    assert merged.template_name == "chatml"
    assert merged.chat(q, **gen).text == stacked.chat(q, **gen).text


def test_examples_are_valid_and_chain_with_the_training_recipe():
    from engine.config import load_config, read_yaml
    train_out = read_yaml("examples/train_lora/smollm2_lora_sft.yaml")["output_dir"]
    merge = load_config("examples/merge_lora/smollm2_lora_sft.yaml", command="export")
    assert merge.adapter_name_or_path == [train_out]
    assert merge.export_dir == "models/SmolLM2-135M-Instruct-sft-merged"
    chat = load_config("examples/inference/smollm2_lora_sft.yaml", command="infer")
    assert chat.adapter_name_or_path == [train_out]
    assert load_config("examples/inference/smollm2.yaml", command="infer").adapter_name_or_path is None


@pytest.mark.slow
def test_merge_recipe_on_the_bundled_model(bundled_model, tmp_path):
    """examples/merge_lora as-is, with a random adapter standing in for the trained one."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from modelkit import build_lora_adapter
    from engine.config import load_config
    adapter = build_lora_adapter(bundled_model, tmp_path / "adapter", rank=2)
    ns = load_config("examples/merge_lora/smollm2_lora_sft.yaml",
                     [f"adapter_name_or_path={adapter}", f"export_dir={tmp_path / 'merged'}"], command="export")
    out = export_model(ns)
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert merged.dtype == torch.float32 and merged.config.num_hidden_layers == 30
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(bundled_model), str(adapter)).eval()
    assert (_logits(merged) - _logits(reference)).abs().max().item() < 1e-3
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in (out / "README.md").read_text()

"""export_format=gguf: llama.cpp's converter from the pinned sdist, the chat template in the GGUF metadata and in an
Ollama Modelfile, bad input refused before any work, the old export surviving a full disk, hub upload failing fast
offline, LLaMA-Factory's merge keys accepted. The tiny model everywhere but the round trip of the bundled identity
run (slow, once per session)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gotemplate import ollama_values, render
from engine.args import Namespace
from engine.config import load_config, to_command
from engine.errors import ConfigError
from engine.export import FORMATS, export_model
from engine.export_gguf import MODELFILE, QUANTIZER, read_metadata
from engine.errors import UserError
from kits.args import as_args

MSGS = [{"role": "system", "content": "Answer in one sentence."}, {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Who are you?"}]
TOOL = {"name": "lookup", "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}
OURS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Look up 'tune'"},
        {"role": "function", "content": '{"name": "lookup", "arguments": {"word": "tune"}}'},
        {"role": "observation", "content": "a melody"}]
THEIRS = OURS[:2] + [{"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": {"name": "lookup", "arguments": {"word": "tune"}}}]},
    {"role": "tool", "content": "a melody"}]


def _json_lines(text: str) -> str:
    """Each line that is JSON in one canonical spelling (Ollama's `json` writes Go's compact JSON)."""
    out = []
    for line in text.split("\n"):
        try:
            out.append(json.dumps(json.loads(line), sort_keys=True))
        except ValueError:
            out.append(line)
    return "\n".join(out)


@pytest.fixture(scope="module")
def gguf_export(tiny_model, tiny_adapter, tmp_path_factory):
    """The tiny LoRA run merged and exported to GGUF f16 (with a default system prompt for the Modelfile)."""
    out = tmp_path_factory.mktemp("gguf") / "tiny-gguf"
    export_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)],
                  "export_dir": str(out), "export_format": "gguf", "gguf_type": "f16",
                  "default_system": "You are Tuney."}, "export"))
    return out


def test_formats_table_and_schema_agree():
    from engine.args import BY_NAME
    assert tuple(FORMATS) == BY_NAME["export_format"].choices


def test_gguf_loads_in_transformers_and_matches_the_merged_model(gguf_export, tiny_model, tiny_adapter):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    files = sorted(p.name for p in gguf_export.iterdir())
    assert files == [".tuneboard_export.json", MODELFILE, "README.md", "tiny-llama-f16.gguf"]  # no scratch left
    gguf = AutoModelForCausalLM.from_pretrained(gguf_export, gguf_file="tiny-llama-f16.gguf", dtype=torch.float32)
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(tiny_adapter)).eval()
    ids = torch.tensor([[1, 504, 3458, 314, 260, 2, 30, 4000]])
    with torch.no_grad():
        diff = (gguf(input_ids=ids).logits - ref(input_ids=ids).logits).abs().max().item()
    assert diff < 2e-3  # f16 rounding of the merged weights
    marker = json.loads((gguf_export / ".tuneboard_export.json").read_text())
    assert marker["format"] == "gguf" and marker["gguf_type"] == "f16"
    assert "gguf" in (gguf_export / "README.md").read_text()


def test_gguf_metadata_carries_the_training_template(gguf_export, tiny_model):
    """tokenizer.chat_template renders what TuneBoard's template renders, system prompt and tools included; eos is
    the stop word; bos as the template adds it."""
    from transformers import AutoTokenizer
    from engine.data.templates import get_template
    meta = read_metadata(gguf_export / "tiny-llama-f16.gguf")
    base_tok = AutoTokenizer.from_pretrained(tiny_model)
    t = get_template("chatml", base_tok, default_system="You are Tuney.")
    assert meta["tokenizer.ggml.eos_token_id"] == base_tok.convert_tokens_to_ids("<|im_end|>")
    assert meta["tokenizer.ggml.add_bos_token"] is False
    tok = AutoTokenizer.from_pretrained(tiny_model)  # the GGUF's template rendered by transformers' Jinja
    tok.chat_template = meta["tokenizer.chat_template"]
    assert tok.apply_chat_template(MSGS, tokenize=False, add_generation_prompt=True) == t.render(MSGS)
    assert tok.apply_chat_template(MSGS[1:], tokenize=False, add_generation_prompt=True) == t.render(MSGS[1:])
    assert "You are Tuney." in t.render(MSGS[1:])
    with_tools = tok.apply_chat_template(THEIRS, tools=[{"type": "function", "function": TOOL}], tokenize=False,
                                         add_generation_prompt=True)
    assert with_tools == t.render(OURS, tools=[TOOL])


def test_modelfile(gguf_export):
    text = (gguf_export / MODELFILE).read_text()
    lines = text.splitlines()
    assert "FROM ./tiny-llama-f16.gguf" in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines
    assert 'SYSTEM """You are Tuney."""' in lines
    marker = json.loads((gguf_export / ".tuneboard_export.json").read_text())
    assert marker["next"] == f"ollama create tiny-gguf -f {gguf_export / MODELFILE}"


@pytest.mark.parametrize("name", ["chatml", "llama3", "mistral", "gemma", "phi", "glm4", "qwen3_nothink", "llama2"])
def test_modelfile_template_renders_the_training_prompt(name, bundled_model):
    """The TEMPLATE (Go syntax) rendered as Ollama would for a multi-turn conversation with a system prompt gives
    the training prompt string (without bos, which llama.cpp adds); with tools, the same up to JSON spacing."""
    from transformers import AutoTokenizer
    from engine.data.templates import get_template
    t = get_template(name, AutoTokenizer.from_pretrained(bundled_model))
    go = t.to_go_template()
    bos = t.bos_token if t.add_bos and t.bos_token else ""
    assert bos + render(go, ollama_values(MSGS)) == t.render(MSGS)
    assert bos + render(go, ollama_values(MSGS[1:], system="Be kind.")) == t.render(MSGS[1:], system="Be kind.")
    got = render(go, ollama_values(THEIRS, tools=[{"type": "function", "function": TOOL}]))
    assert _json_lines(bos + got) == _json_lines(t.render(OURS, tools=[TOOL]))


def test_modelfile_template_from_the_export(gguf_export, tiny_model):
    from transformers import AutoTokenizer
    from engine.data.templates import get_template
    text = (gguf_export / MODELFILE).read_text()
    go = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    t = get_template("chatml", AutoTokenizer.from_pretrained(tiny_model), default_system="You are Tuney.")
    assert render(go, ollama_values(MSGS[1:], system="You are Tuney.")) == t.render(MSGS[1:])


# ---- bad input, refused before any work
def _no_model_loaded(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the model was loaded before the refusal")
    monkeypatch.setattr("engine.export.load_model", boom)  # the name export_model calls


def test_unsupported_architecture_is_refused_before_any_work(tiny_model, tmp_path, monkeypatch):
    odd = tmp_path / "odd"
    shutil.copytree(tiny_model, odd)
    cfg = json.loads((odd / "config.json").read_text())
    cfg["architectures"] = ["TotallyNewForCausalLM"]
    (odd / "config.json").write_text(json.dumps(cfg))
    _no_model_loaded(monkeypatch)
    with pytest.raises(UserError, match="does not support the architecture TotallyNewForCausalLM") as e:
        export_model(as_args({"model_name_or_path": str(odd), "export_dir": str(tmp_path / "out"),
                              "export_format": "gguf"}, "export"))
    assert "export_format=safetensors" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd"]


def test_unknown_gguf_type_names_the_field(tiny_model, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="gguf_type: 'q3_x' is not one of") as e:
        load_config(None, {"gguf_type": "q3_x", "export_format": "gguf"}, command="export")
    assert e.value.field == "gguf_type"
    _no_model_loaded(monkeypatch)
    with pytest.raises(ConfigError, match="gguf_type"):  # values that never went through the loader
        export_model(Namespace({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "o"),
                                "export_format": "gguf", "gguf_type": "q3_x"}))


def test_k_quant_without_the_quantizer_names_what_to_install(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama-quantize on it
    _no_model_loaded(monkeypatch)
    with pytest.raises(UserError, match=f"needs llama.cpp's quantizer `{QUANTIZER}` on PATH") as e:
        export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "o"),
                      "export_format": "gguf", "gguf_type": "q4_k_m"}, "export"))
    assert "f16, bf16 or q8_0" in str(e.value) and not (tmp_path / "o").exists()


@pytest.mark.skipif(shutil.which(QUANTIZER) is None, reason=f"{QUANTIZER} (llama.cpp's quantizer) is not on PATH")
def test_k_quant_with_the_quantizer(tiny_model, tmp_path):
    import gguf
    out = export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "q4"),
                        "export_format": "gguf", "gguf_type": "q4_k_m"}, "export"))
    meta = read_metadata(out / "tiny-llama-q4_k_m.gguf")
    assert meta["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert meta["tokenizer.chat_template"]


def test_a_folder_holding_another_export_is_refused_unless_overwrite(tiny_model, gguf_export, tmp_path):
    """gguf_export holds the GGUF of the tiny LoRA run; a GGUF of the bare model (a full run: nothing to merge) is
    another export. Replaced with overwrite_output_dir, and that GGUF is the full run's weights."""
    import torch
    from transformers import AutoModelForCausalLM
    other = tmp_path / "other"
    shutil.copytree(gguf_export, other)
    before = sorted(p.name for p in other.iterdir())
    args = {"model_name_or_path": str(tiny_model), "finetuning_type": "full", "export_dir": str(other),
            "export_format": "gguf", "gguf_type": "f32"}
    with pytest.raises(ConfigError, match="holds another export .gguf export of") as e:
        export_model(as_args(args, "export"))
    assert "overwrite_output_dir=true" in str(e.value) and e.value.field == "export_dir"
    assert sorted(p.name for p in other.iterdir()) == before
    export_model(as_args({**args, "overwrite_output_dir": True}, "export"))
    assert sorted(p.name for p in other.iterdir()) == [".tuneboard_export.json", MODELFILE, "README.md",
                                                       "tiny-llama-f32.gguf"]
    full = AutoModelForCausalLM.from_pretrained(other, gguf_file="tiny-llama-f32.gguf", dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3458, 314, 260]])
    with torch.no_grad():
        assert (full(input_ids=ids).logits - ref(input_ids=ids).logits).abs().max().item() < 1e-4


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_disk_that_fills_mid_write_keeps_the_old_export(tiny_model, tmp_path):
    """A 32 MB disk holds the tiny model's safetensors export (13 MB) and the merged scratch copy a GGUF export
    makes (13 MB), not the f32 file (13 MB): the disk fills while llama.cpp's converter writes, and the old export
    survives whole."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "32m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        out = disk / "export"
        export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(out)}, "export"))
        before = {p.name: p.stat().st_size for p in out.iterdir()}
        with pytest.raises(UserError, match="converter failed .* disk is full") as e:
            export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(out),
                                  "export_format": "gguf", "gguf_type": "f32", "overwrite_output_dir": True}, "export"))
        assert "untouched" in str(e.value)
        assert {p.name: p.stat().st_size for p in out.iterdir()} == before
        assert [p.name for p in disk.iterdir()] == ["export"]  # the temporary folder is gone
        from transformers import AutoModelForCausalLM
        AutoModelForCausalLM.from_pretrained(out)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---- hub upload
@pytest.mark.parametrize("hub,name", [("huggingface", "Hugging Face"), ("modelscope", "ModelScope")])
def test_upload_offline_fails_fast_naming_the_hub_and_keeps_the_export(tiny_model, tmp_path, monkeypatch, hub,
                                                                        name):
    import time
    import engine.hub_upload as hu
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hu, "_endpoint", lambda h: "http://127.0.0.1:9")  # nothing listens there: offline
    t0 = time.monotonic()
    with pytest.raises(UserError, match=f"upload to {name}: cannot reach 127.0.0.1") as e:
        export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "up"),
                      "export_hub_model_id": "someone/tiny", "export_hub": hub, "hub_token": "hf_SECRET123"}, "export"))
    assert time.monotonic() - t0 < 60
    assert "is kept" in str(e.value) and "hf_SECRET123" not in str(e.value)
    assert (tmp_path / "up" / "model.safetensors").is_file()


def test_upload_with_hf_offline_mode_says_so(tmp_path):
    from engine.hub_upload import upload
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py
    with pytest.raises(UserError, match="upload to Hugging Face: offline mode is on"):
        upload(tmp_path, {"export_hub_model_id": "someone/tiny"})


def test_bad_repo_id_is_refused_before_any_work(tiny_model, tmp_path, monkeypatch):
    _no_model_loaded(monkeypatch)
    with pytest.raises(ConfigError, match="export_hub_model_id: 'tiny' is not a repository id"):
        export_model(as_args({"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "x"),
                      "export_hub_model_id": "tiny"}, "export"))


def test_the_token_is_never_in_the_preview_the_recipe_or_the_log(tiny_model, tmp_path, monkeypatch):
    from engine import runs
    values = {"model_name_or_path": str(tiny_model), "export_dir": str(tmp_path / "tok"), "export_format": "gguf",
              "gguf_type": "q8_0", "export_hub_model_id": "someone/tiny", "hub_token": "hf_SECRET123"}
    cmd = to_command(values, "export")
    assert "export_format=gguf" in cmd and "gguf_type=q8_0" in cmd and "export_hub_model_id=someone/tiny" in cmd
    assert "SECRET" not in cmd and "hub_token" not in cmd
    seen = {}
    monkeypatch.setattr(runs, "_start", lambda *a: seen.update(config=a[5], env=a[7]))
    runs.spawn("export", values, tmp_path / "saves")
    assert "SECRET" not in Path(seen["config"]).read_text()
    assert seen["env"]["TUNEBOARD_SECRET_HUB_TOKEN"] == "hf_SECRET123"


# ---- LLaMA-Factory's merge recipe keys
def test_llamafactory_merge_recipe_runs_unchanged(tiny_model, tiny_adapter, tmp_path, caplog):
    recipe = tmp_path / "llama3_lora_sft.yaml"  # shaped like LLaMA-Factory's examples/merge_lora; written here
    recipe.write_text(f"""### model
model_name_or_path: {tiny_model}
adapter_name_or_path: {tiny_adapter}
template: chatml
trust_remote_code: true

### export
export_dir: {tmp_path / 'merged'}
export_size: 5
export_device: auto
export_legacy_format: true
export_quantization_bit: 4
export_quantization_dataset: data/c4_demo.jsonl
""")
    from engine.cli import main
    caplog.set_level("INFO", logger="tuneboard")
    assert main(["export", str(recipe)]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    notes = [r.getMessage() for r in caplog.records if "LLaMA-Factory key" in r.getMessage()]
    assert any("export_device=auto" in n and "CPU" in n for n in notes)
    assert any("export_legacy_format=true" in n for n in notes)
    assert any("export_quantization_bit=4" in n and "gguf_type" in n for n in notes)
    ns = load_config(recipe, ["export_hub_model_id=someone/merged"], command="export")
    assert ns.export_hub_model_id == "someone/merged"  # LLaMA-Factory's upload key is the upload here


# ---- every registry family the converter supports (converted here: Llama, the bundled and tiny models; the other
# families' vocabularies need their own tokenizer files, which are not available offline)
FAMILIES = {  # registry template -> the families' architecture
    "qwen": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama3": "LlamaForCausalLM", "llama2": "LlamaForCausalLM",
    "phi": "Phi3ForCausalLM", "mistral": "MistralForCausalLM", "gemma": "Gemma2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM", "glm4": "Glm4ForCausalLM",
}


def test_every_registry_family_is_supported_by_the_converter():
    from engine.export_gguf import supported_architectures
    from engine.models.registry import MODELS
    used = {e["template"] for e in MODELS.values()}
    assert used - {"chatml"} <= set(FAMILIES), "a registry family without an architecture in this test"
    missing = set(FAMILIES.values()) - set(supported_architectures())
    assert not missing


def test_upload_hands_the_folder_privacy_and_token_to_huggingface_hub(tmp_path, monkeypatch):
    """Our side of the upload (no hub is reachable from the tests): the repository created private with the token,
    the folder uploaded without the marker; the hub's own behaviour is huggingface_hub's."""
    import huggingface_hub
    import engine.hub_upload as hu
    calls = []

    class Api:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo, private=None, exist_ok=False):
            calls.append(("create", repo, private, exist_ok))
            return f"https://hub.example/{repo}"

        def upload_folder(self, repo_id, folder_path, commit_message, ignore_patterns):
            calls.append(("upload", repo_id, folder_path, ignore_patterns))

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(hu, "_reachable", lambda hub: None)
    monkeypatch.setenv("HF_TOKEN", "hf_FROM_ENV")
    url = hu.upload(tmp_path, {"export_hub_model_id": "me/tiny"})
    assert url == "https://hub.example/me/tiny"
    assert calls == [("token", "hf_FROM_ENV"), ("create", "me/tiny", True, True),
                     ("upload", "me/tiny", str(tmp_path), [".*"])]
    calls.clear()
    hu.upload(tmp_path, {"export_hub_model_id": "me/tiny", "hub_token": "hf_FIELD", "export_hub_private": False})
    assert calls[:2] == [("token", "hf_FIELD"), ("create", "me/tiny", False, True)]

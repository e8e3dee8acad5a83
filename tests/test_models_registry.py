"""Model registry lookups, path resolution and default templates; `tuneboard download` without network."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.models import registry
from engine.models.registry import MODELS, default_template, model_names, resolve_model_path
from engine.utils import repo_root
from engine.errors import UserError


def test_registry_file_is_complete():
    assert len(MODELS) >= 15
    assert model_names()[0] == "SmolLM2-135M-Instruct"
    bundled = [n for n, e in MODELS.items() if e.get("bundled")]
    assert bundled == ["SmolLM2-135M-Instruct"]
    assert MODELS["SmolLM2-135M-Instruct"]["local"] == "models/SmolLM2-135M-Instruct"
    for name, e in MODELS.items():
        assert set(e) <= {"hf", "ms", "template", "local", "bundled"}, name
        assert e["hf"].count("/") == 1 and e["template"], name
    hf_ids = [e["hf"].lower() for e in MODELS.values()]
    assert len(hf_ids) == len(set(hf_ids))
    families = {e["template"] for e in MODELS.values()}
    assert {"chatml", "qwen", "qwen3", "llama3", "llama2", "mistral", "gemma", "gemma3"} <= families
    from engine.data.templates import TEMPLATES
    assert families <= set(TEMPLATES)  # every registry template is one TuneBoard has


@pytest.mark.parametrize("name,template", [
    ("SmolLM2-135M-Instruct", "chatml"), ("smollm2-360m-instruct", "chatml"), ("Qwen/Qwen2.5-7B-Instruct", "qwen"),
    ("Qwen3-0.6B", "qwen3"), ("meta-llama/Llama-3.2-1B-Instruct", "llama3"), ("Llama-2-7B-Chat", "llama2"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"), ("google/gemma-2-2b-it", "gemma"),
    ("LLM-Research/gemma-3-1b-it", "gemma3"), ("/some/where/Qwen2.5-1.5B-Instruct", "qwen"),
])
def test_default_template_by_name_id_or_folder_name(name, template):
    assert default_template(name) == template


def test_default_template_of_the_bundled_folder(bundled_model):
    assert default_template(str(bundled_model)) == "chatml"
    assert default_template("models/SmolLM2-135M-Instruct") == "chatml"


def _fake_model(dest: Path, config: dict, chat_template: str | None = None) -> Path:
    dest.mkdir(parents=True)
    (dest / "config.json").write_text(json.dumps(config))
    if chat_template is not None:
        (dest / "tokenizer_config.json").write_text(json.dumps({"chat_template": chat_template}))
    return dest


@pytest.mark.parametrize("config,chat,template", [
    ({"model_type": "qwen2"}, None, "qwen"),
    ({"model_type": "qwen3"}, None, "qwen3"),
    ({"model_type": "gemma2"}, None, "gemma"),
    ({"model_type": "gemma3_text"}, None, "gemma3"),
    ({"model_type": "whatever", "architectures": ["Gemma3ForCausalLM"]}, None, "gemma3"),
    ({"model_type": "deepseek_v3"}, None, "deepseek3"),
    # the R1 distills are qwen2 / llama models: their DeepSeek chat format decides
    ({"model_type": "qwen2"}, "{{ '<｜User｜>' + m['content'] }}{{ '<｜Assistant｜><think>\\n' }}", "deepseekr1"),
    ({"model_type": "llama"}, "{{ '<｜User｜>' + m['content'] + '<｜Assistant｜>' }}", "deepseek3"),
    ({"model_type": "whatever", "architectures": ["MistralForCausalLM"]}, None, "mistral"),
    ({"model_type": "llama"}, "{{ '<|start_header_id|>' + m['role'] }}", "llama3"),
    ({"model_type": "llama"}, "{{ '<|im_start|>' + m['role'] }}", "chatml"),
    ({"model_type": "llama"}, "{{ '[INST] ' + m['content'] }}", "llama2"),
    ({"model_type": "llama"}, None, None),
])
def test_default_template_falls_back_to_config_and_chat_template(tmp_path, config, chat, template):
    assert default_template(str(_fake_model(tmp_path / "my-model", config, chat))) == template


def test_resolve_existing_folder_and_registry_name(bundled_model, tiny_model):
    assert Path(resolve_model_path(str(tiny_model))) == tiny_model
    assert Path(resolve_model_path("SmolLM2-135M-Instruct")).resolve() == bundled_model.resolve()
    assert Path(resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct")).resolve() == bundled_model.resolve()
    # the default relative path works from any working directory
    assert Path(resolve_model_path("models/SmolLM2-135M-Instruct")).resolve() == bundled_model.resolve()


def test_resolve_registry_name_not_downloaded_says_what_to_do():
    with pytest.raises(UserError) as e:
        resolve_model_path("Qwen2.5-7B-Instruct")
    msg = str(e.value)
    assert "Qwen2.5-7B-Instruct not found locally" in msg
    assert "models/Qwen2.5-7B-Instruct" in msg or "models\\Qwen2.5-7B-Instruct" in msg
    assert "`tuneboard download Qwen2.5-7B-Instruct` (needs network)" in msg


def test_resolve_unknown_hub_id_and_missing_folder(tmp_path):
    with pytest.raises(UserError, match=r"model someone/some-model not found locally .*"
                                        r"`tuneboard download someone/some-model` \(needs network\)"):
        resolve_model_path("someone/some-model")
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(UserError, match="not found locally: no such folder") as e:
        resolve_model_path(str(missing))
    assert str(missing) in str(e.value) and "model_name_or_path" in str(e.value)
    with pytest.raises(UserError, match="model_name_or_path: empty"):
        resolve_model_path("")


def test_downloaded_hub_id_resolves_to_models_dir(tiny_model):
    dest = repo_root() / "models" / "tb-test-tiny-model"
    assert not dest.exists()
    try:
        shutil.copytree(tiny_model, dest)
        assert Path(resolve_model_path("someone/tb-test-tiny-model")) == dest
        assert registry.download_dir("someone/tb-test-tiny-model") == dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_download_offline_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    from engine.cli import main
    from engine.models.download import download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    dest = tmp_path / "qwen"
    with pytest.raises(UserError, match="offline"):
        download("Qwen2.5-0.5B-Instruct", dest=dest)
    assert not dest.exists() and list(tmp_path.iterdir()) == []
    assert main(["download", "Qwen2.5-0.5B-Instruct", "--dest", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "error: cannot download" in err and "Traceback" not in err


def test_download_unreachable_host_is_a_clear_error(tmp_path, monkeypatch):
    from engine.models import download as dl
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "http://127.0.0.1:9")  # discard port: connection refused
    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(UserError, match=r"cannot reach 127\.0\.0\.1 \(modelscope\)"):
        dl.download("Qwen2.5-0.5B-Instruct", hub="modelscope", dest=tmp_path / "q")
    assert list(tmp_path.iterdir()) == []


def test_download_argument_errors(capsys):
    from engine.cli import main
    from engine.models.download import download
    with pytest.raises(UserError, match="not a registry model and not a hub id"):
        download("no-such-model")
    with pytest.raises(UserError, match="hub: 'gitlab'"):
        download("Qwen2.5-0.5B-Instruct", hub="gitlab")
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct" in out and "(bundled)" in out and "Qwen/Qwen2.5-7B-Instruct" in out


def test_train_with_a_registry_model_not_here_says_offline_what_to_do(tmp_path, monkeypatch, capsys):
    """Start (tuneboard train) with a registry model that is not downloaded: it is fetched first (not testable
    without network); offline, the message says so and what to do, and no run is started."""
    from engine.cli import main
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    rc = main(["train", "model_name_or_path=Qwen2.5-0.5B-Instruct", "dataset=identity", f"output_dir={out}"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "Qwen2.5-0.5B-Instruct is not downloaded yet and offline mode is on" in err
    assert "tuneboard download Qwen2.5-0.5B-Instruct" in err and not out.exists()

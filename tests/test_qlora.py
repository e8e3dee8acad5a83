"""QLoRA (quantization_bit): the schema's widget in the top panel and the command preview, the refusals that come
before any model is read (freeze/full, no bitsandbytes, a CPU its backend cannot run on) on the CLI and in the UI,
the BitsAndBytesConfig, the memory estimate, and, where bitsandbytes is installed (requirements.txt pins it), real
4-bit and 8-bit training of the tiny model on CPU whose adapter then loads on the unquantized base."""
from __future__ import annotations

import json
import shlex
import sys
import types

import pytest

from engine.args import BY_NAME, Namespace
from engine.cli import main as cli
from engine.config import load_config, save_config, to_command
from engine.errors import ConfigError
from engine.models import quantize
from kits.args import as_args


@pytest.fixture
def bnb_ok(monkeypatch):
    """As on a machine where bitsandbytes runs (a GPU one, or this CPU with the pinned package)."""
    monkeypatch.setattr(quantize, "backend", lambda: (True, ""))


@pytest.fixture
def fresh_backend():
    quantize.backend.cache_clear()
    yield
    quantize.backend.cache_clear()  # the next test sees this machine again, not the simulated one


def test_schema_values_reach_the_preview_and_the_saved_recipe(bnb_ok, tmp_path):
    ns = load_config(None, ["dataset=identity", "quantization_bit=4", "quantization_type=fp4",
                            "double_quantization=false", f"output_dir={tmp_path / 'o'}"])
    assert (ns.quantization_bit, ns.quantization_type, ns.double_quantization) == (4, "fp4", False)
    kv = dict(t.split("=", 1) for t in shlex.split(to_command(ns.values, program="tuneboard"))[2:])
    assert kv["quantization_bit"] == "4" and kv["quantization_type"] == "fp4" and kv["double_quantization"] == "false"
    assert "quantization_method" not in kv  # the default (bnb) stays out
    save_config(ns, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").quantization_bit == 4
    with pytest.raises(ConfigError, match=r"quantization_bit: 2 is not one of 4, 8\.") as e:
        load_config(None, ["dataset=identity", "quantization_bit=2"])
    assert e.value.field == "quantization_bit"
    with pytest.raises(ConfigError, match="quantization_method: 'gptq' is not one of bnb"):
        load_config(None, ["dataset=identity", "quantization_bit=4", "quantization_method=gptq"])
    arg = BY_NAME["quantization_bit"]
    assert arg.methods == ("lora",) and arg.commands == ("train",) and arg.reader.startswith("engine.models.quantize")


@pytest.mark.parametrize("kv,field,words", [
    ({"finetuning_type": "freeze"}, "quantization_bit", "set finetuning_type=lora"),
    ({"finetuning_type": "full"}, "quantization_bit", "can only be trained with LoRA adapters"),
    ({"pissa_init": "true"}, "pissa_init", "turn pissa_init off"),
    ({"adapter_name_or_path": "saves/a,saves/b"}, "adapter_name_or_path", "merge the others into the base first"),
], ids=["freeze", "full", "pissa", "two_adapters"])
def test_what_qlora_cannot_train_is_refused(bnb_ok, kv, field, words):
    with pytest.raises(ConfigError, match=words) as e:
        load_config(None, {"dataset": "identity", "quantization_bit": "8", **kv})
    assert e.value.field == field
    load_config(None, {"dataset": "identity", "finetuning_type": kv.get("finetuning_type", "lora")})  # fine without


def test_cli_refuses_without_bitsandbytes_before_anything_is_written(fresh_backend, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` raises ImportError
    out = tmp_path / "run"
    rc = cli(["train", "dataset=identity", "quantization_bit=4", "max_steps=1", f"output_dir={out}"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "quantization_bit: 4-bit (QLoRA) training needs bitsandbytes" in err and "not installed" in err
    assert f"pip install {quantize.BNB_PIN}" in err and "leave quantization_bit empty" in err
    assert not out.exists()  # refused in validation: no run folder, nothing loaded


def test_no_gpu_and_a_cpu_backend_that_cannot_run_is_refused(fresh_backend, monkeypatch):
    import torch

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("no kernel for this CPU")

    fake = types.ModuleType("bitsandbytes")
    fake.__version__ = "0.50.2"
    fake.nn = types.SimpleNamespace(Linear4bit=Broken)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as e:
        load_config(None, {"dataset": "identity", "quantization_bit": "4"})
    msg = str(e.value)
    assert e.value.field == "quantization_bit" and "no CUDA GPU" in msg and "no kernel for this CPU" in msg
    assert "machine with a CUDA GPU" in msg and "leave quantization_bit empty" in msg
    load_config(None, {"dataset": "identity", "quantization_bit": "4"}, command="infer")  # chat ignores it


def test_bitsandbytes_config_follows_the_arguments():
    import torch
    c = quantize.bnb_config({"quantization_bit": 4, "quantization_type": "nf4", "double_quantization": True},
                            torch.bfloat16)
    assert c.load_in_4bit and not c.load_in_8bit and c.bnb_4bit_quant_type == "nf4"
    assert c.bnb_4bit_use_double_quant is True and c.bnb_4bit_compute_dtype == torch.bfloat16
    c = quantize.bnb_config({"quantization_bit": 4, "quantization_type": "fp4", "double_quantization": False},
                            torch.float32)
    assert c.bnb_4bit_quant_type == "fp4" and c.bnb_4bit_use_double_quant is False
    c = quantize.bnb_config({"quantization_bit": 8}, torch.float32, reward_head=True)
    assert c.load_in_8bit and not c.load_in_4bit and c.llm_int8_skip_modules == ["score"]


def test_estimate_4bit_below_8bit_below_unquantized(bundled_model):
    from engine.insight import estimate as E
    parts = {}
    for bits in (None, 8, 4):
        ns = Namespace({"dataset": ["identity"], "model_name_or_path": str(bundled_model), "quantization_bit": bits,
                        "lora_alpha": 16})
        p = E.param_facts(ns)
        parts[bits] = E.memory(ns, p, 64, "cuda")
    w = {b: m["parts"]["weights"] for b, m in parts.items()}
    assert w[4] < w[8] < w[None]
    assert parts[4]["total"] < parts[8]["total"] < parts[None]["total"]
    assert parts[4]["weights_dtype"] == "4-bit" and parts[None]["weights_dtype"] == "fp32"
    # trainable LoRA parameters, their gradients and AdamW states stay full precision
    for k in ("gradients", "optimizer"):
        assert parts[4]["parts"][k] == parts[8]["parts"][k] == parts[None]["parts"][k]
    q = p["quantizable"]
    assert w[None] - w[8] == pytest.approx(3 * q, rel=0.01)  # fp32 -> int8: ~3 bytes saved per linear weight
    assert w[8] - w[4] == pytest.approx(0.5 * q + 4 * p["quantized_rows"] - q / 64 * (1 + 4 / 256), rel=0.01)


def test_top_panel_widget_and_ui_preview(tmp_path, monkeypatch):
    import gradio as gr

    from engine import paths
    from webui.app import create_ui
    from kits.webui import call, value
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.setenv("TUNEBOARD_ROOTS", str(tmp_path))
    demo = create_ui("en", saves=str(tmp_path / "saves"))
    page = demo.page
    w = page.w("top", "quantization_bit")
    assert isinstance(w, gr.Dropdown) and [c[1] for c in w.choices] == ["", "4", "8"] and w.value == ""
    assert "quantization_bit" not in page.args["train"]  # once, in the top panel
    assert isinstance(page.w("top", "double_quantization"), gr.Checkbox)
    vis = {c.elem_id: u["visible"] for c, u in page.visibility("sft", "freeze").items()}
    assert vis["top-quantization_bit"] is False and vis["top-quantization_type"] is False
    ov = {page.w("train", "dataset"): ["identity"], w: "4", page.w("train", "output_dir"): "q"}
    monkeypatch.setattr(quantize, "backend", lambda: (True, ""))
    res = call(demo, page.c("train.preview"), overrides=ov)
    assert "quantization_bit=4" in shlex.split(value(res[page.c("train.command")]))
    monkeypatch.setattr(quantize, "backend", lambda: (False, "bitsandbytes is not installed here"))
    res = call(demo, page.c("train.preview"), overrides=ov)
    assert value(res[page.c("train.command")]) == ""
    assert "quantization_bit" in value(res[page.c("train.message")]) and "not installed" in value(
        res[page.c("train.message")])
    # freeze: the hidden field goes back to its default, so the run is a plain freeze run, not a refusal
    res = call(demo, page.c("train.preview"), overrides={**ov, page.w("top", "finetuning_type"): "freeze"})
    assert "quantization_bit" not in value(res[page.c("train.command")])


# ---------------------------------------------------------------- real 4-bit / 8-bit training (CPU backend)
@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_trains_on_cpu_and_the_adapter_loads_on_the_plain_base(bits, tiny_model, data_dir, tmp_path):
    pytest.importorskip("bitsandbytes", reason=f"{quantize.BNB_PIN} (requirements.txt) is not installed")
    if not quantize.backend()[0]:
        pytest.skip(quantize.backend()[1])
    import torch

    from engine.insight import estimate as E
    from engine.models.loader import load_model
    from engine.train import rundir
    from engine.train.workflow import run
    out = tmp_path / "run"
    # one batch of the same 4 samples every step at a high rate: the loss must fall within a few steps
    ns = load_config(None, {"model_name_or_path": str(tiny_model), "dataset": "identity", "dataset_dir": str(data_dir),
                            "template": "chatml", "max_samples": "4", "per_device_train_batch_size": "4",
                            "cutoff_len": "48", "max_steps": "4", "learning_rate": "2e-2", "logging_steps": "1",
                            "save_steps": "1000", "plot_loss": "false", "quantization_bit": str(bits),
                            "output_dir": str(out)})
    metrics = run(ns)
    losses = [r["loss"] for r in rundir.read_log(out) if "loss" in r]
    assert len(losses) == 4 and all(map(torch.isfinite, torch.tensor(losses))) and losses[-1] < losses[0]
    assert (out / "adapter_model.safetensors").is_file() and metrics["total_steps"] == 4
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["base_model_name_or_path"] == str(tiny_model)
    # the quantized base as the estimate counts it
    model = load_model(ns, trainable=True)
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    assert kinds["model.layers.0.self_attn.q_proj"] == ("Linear4bit" if bits == 4 else "Linear8bitLt")
    assert [n for n, k in kinds.items() if k == "Linear"] == ["lm_head"]  # every linear layer but the head
    real = sum(t.numel() * t.element_size() for t in model.parameters())
    p = E.param_facts(ns)
    assert E.memory(ns, p, 48, "cpu")["parts"]["weights"] - p["trainable"] * 4 == pytest.approx(real, rel=0.1)
    # chat: the adapter is plain LoRA; the base loads unquantized (quantization_bit is for training)
    chat = load_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(out)],
                       "quantization_bit": bits}, "infer"), trainable=False)
    assert not getattr(chat, "is_quantized", False)
    with torch.no_grad():
        assert torch.isfinite(chat(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_gpu_check_qlora_check_is_a_valid_recipe_and_judged_on_its_evidence(bnb_ok, tmp_path):
    """bench/gpu_check.py's QLoRA check cannot run here (no GPU); its recipe and its verdict rules can."""
    import importlib.util

    from engine.utils import repo_root
    spec = importlib.util.spec_from_file_location("gpu_check", repo_root() / "bench" / "gpu_check.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    over, compared = gc.CHECKS["qlora4"]
    ns = load_config(None, {"dataset": "identity", **over})
    assert (ns.quantization_bit, ns.quantization_type, ns.double_quantization, ns.bf16) == (4, "nf4", True, True)
    assert compared is None and "bitsandbytes==0.50.2" in gc.QLORA_WHEELS and not any(
        w.startswith("deepspeed") for w in gc.QLORA_WHEELS)
    out = tmp_path / "qlora4"
    out.mkdir()
    good = {"name": "qlora4", "rc": 0, "state": "finished", "error": None, "steps": list(range(1, 31)),
            "losses": [10.8 - 0.1 * i for i in range(30)], "bf16_used": True, "quantized": True, "out": str(out),
            "deepspeed_used": False}
    assert gc.judge(dict(good), {}) == ["no adapter_model.safetensors saved"]
    (out / "adapter_model.safetensors").write_bytes(b"x")
    assert gc.judge(dict(good), {}) == []
    bad = gc.judge({**good, "quantized": False, "losses": [10.0] * 30}, {})
    assert any("not loaded quantized" in b for b in bad) and any("did not go down" in b for b in bad)


def test_estimate_advises_qlora_only_where_it_can_run(monkeypatch):
    from engine.insight import estimate as E
    ns = load_config(None, {"dataset": "identity"})
    mem = {"parts": {"activations": 0}, "total": 1, "zero_stage": 0}
    dev = {"device": "cuda", "count": 1}
    monkeypatch.setattr(quantize, "backend", lambda: (True, ""))
    adv = [a["change"] for a in E._fit_advice(ns, mem, dev)]
    assert {"quantization_bit": 4} in adv
    load_config(None, {"dataset": "identity", **{k: str(v) for a in adv for k, v in a.items()}})  # a valid recipe
    monkeypatch.setattr(quantize, "backend", lambda: (False, "not installed"))
    assert {"quantization_bit": 4} not in [a["change"] for a in E._fit_advice(ns, mem, dev)]

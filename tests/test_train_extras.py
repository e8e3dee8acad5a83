"""extra_args, LoRA+, PiSSA, NEFTune and RoPE scaling reach the Trainer, the optimizer and the model (tiny model)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from engine.config import changed, load_config, to_command
from engine.errors import ConfigError
from engine.train import rundir
from engine.train.workflow import run
from kits.args import as_args


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("xdata")
    rows = [{"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{i} + {i + 1} = {2 * i + 1}."}
            for i in range(8)]
    (d / "add.json").write_text(json.dumps(rows), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"add": {"file_name": "add.json"}}), encoding="utf-8")
    return d


def _cfg(model, data, out, **kw):
    base = dict(model_name_or_path=str(model), template="chatml", dataset="add", dataset_dir=str(data), cutoff_len=64,
                per_device_train_batch_size=4, max_steps=2, learning_rate=1e-3, logging_steps=1, save_steps=10,
                output_dir=str(out), seed=1)
    base.update(kw)
    return load_config(None, {k: v if isinstance(v, (str, dict)) else str(v) for k, v in base.items()})


# ---------------------------------------------------------------- extra_args
def test_extra_args_reach_the_trainer_and_are_saved(tiny_model, data, tmp_path):
    out = tmp_path / "run"
    ns = _cfg(tiny_model, data, out, extra_args='{"max_grad_norm": 0.5, "adam_beta2": 0.99, "adam_epsilon": 1e-7}',
              neftune_noise_alpha=5)
    # a key the schema maps moves to its argument: one value, in the preview and the saved YAML
    assert ns.max_grad_norm == 0.5 and ns.extra_args == {"adam_beta2": 0.99, "adam_epsilon": 1e-7}
    tokens = shlex.split(to_command(ns.values, program="tuneboard"))
    assert 'extra_args={"adam_beta2":0.99,"adam_epsilon":1e-07}' in tokens and "max_grad_norm=0.5" in tokens
    again = load_config(None, tokens[2:])
    assert again.extra_args == ns.extra_args and again.max_grad_norm == 0.5
    run(ns)
    assert rundir.read_status(out)["state"] == "finished"
    targs = torch.load(out / "training_args.bin", weights_only=False)  # what the Trainer was given
    assert (targs.adam_beta2, targs.adam_epsilon, targs.max_grad_norm) == (0.99, 1e-7, 0.5)
    assert targs.neftune_noise_alpha == 5.0
    saved = load_config(out / "training_args.yaml")
    assert saved.extra_args == {"adam_beta2": 0.99, "adam_epsilon": 1e-7} and saved.max_grad_norm == 0.5


@pytest.mark.parametrize("extra,words", [
    ('{"adam_beta": 0.99}', ["extra_args.adam_beta", "TrainingArguments", "adam_beta1", "adam_beta2"]),
    ('{"adam_beta2": "high"}', ["extra_args.adam_beta2", "'high'", "float"]),
    ('{"gradient_checkpointing_kwargs": 3}', ["extra_args.gradient_checkpointing_kwargs", "dict"]),
    ('{"remove_unused_columns": true}', ["set by the run itself"]),
    ('{"lora_rank": 4}', ["argument of its own", "lora_rank=4"]),
    ('[1, 2]', ["extra_args: expected a JSON/YAML mapping"]),
    ('{"a": [}', ["extra_args", "JSON/YAML mapping"]),
    ('{"max_grad_norm": -1}', ["max_grad_norm", "below the smallest"]),
])
def test_bad_extra_args_are_refused_before_training(tiny_model, data, tmp_path, extra, words):
    with pytest.raises(ConfigError) as e:
        _cfg(tiny_model, data, tmp_path / "o", extra_args=extra)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert not (tmp_path / "o").exists()  # nothing started


def test_extra_args_are_checked_against_the_stage_config(tiny_model, data, tmp_path):
    ns = _cfg(tiny_model, data, tmp_path / "o", stage="dpo", dataset="add", extra_args={"label_smoothing": 0.1, "beta": 0.3})
    assert ns.pref_beta == 0.3 and ns.extra_args == {"label_smoothing": 0.1}  # beta is DPOConfig's name for pref_beta
    with pytest.raises(ConfigError, match="not an argument of TrainingArguments"):
        _cfg(tiny_model, data, tmp_path / "o", extra_args={"label_smoothing": 0.1})  # sft: not a TrainingArguments field
    with pytest.raises(ConfigError, match="also given"):
        _cfg(tiny_model, data, tmp_path / "o", max_grad_norm="0.3", extra_args={"max_grad_norm": 0.5})


def test_extra_args_widget_is_a_text_box_that_round_trips():
    pytest.importorskip("gradio")
    import gradio as gr
    from engine.args import BY_NAME
    from webui import widgets
    arg = BY_NAME["extra_args"]
    box = widgets.make(arg, "en", "train")
    assert isinstance(box, gr.Textbox)
    shown = widgets.to_widget(arg, {"adam_beta2": 0.99})
    assert json.loads(shown) == {"adam_beta2": 0.99}
    ns = load_config(None, {"dataset": "identity", "extra_args": widgets.from_widget(arg, shown)})
    assert ns.extra_args == {"adam_beta2": 0.99} and "extra_args" in changed(ns)
    assert load_config(None, {"dataset": "identity", "extra_args": widgets.from_widget(arg, "")}).extra_args is None


# ---------------------------------------------------------------- LoRA+ / PiSSA / RoPE
def _trainer(ns, tmp_path):
    """The run's own pieces up to the trainer (engine.train.workflow._run without fitting)."""
    from engine.data.loader import get_dataset
    from engine.data.templates import resolve_template
    from engine.models.loader import load_model, load_tokenizer
    from engine.train.methods import apply_method, attach_loraplus
    from engine.train.sft import build_trainer
    from engine.train.workflow import pick_precision, training_arguments
    tok = load_tokenizer(ns)
    data = get_dataset(ns, tok, resolve_template(ns, tok), "sft")
    targs = training_arguments(ns, pick_precision(ns), "sft")
    model = apply_method(load_model(ns, trainable=True), ns)
    trainer = build_trainer(ns, model, tok, data, targs, [])
    attach_loraplus(trainer, ns)
    return trainer


def test_loraplus_gives_the_b_matrices_ratio_times_the_learning_rate(tiny_model, data, tmp_path):
    ns = _cfg(tiny_model, data, tmp_path / "o", loraplus_lr_ratio=16, learning_rate=1e-4, weight_decay=0.01)
    trainer = _trainer(ns, tmp_path)
    opt = trainer.optimizer
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    names = dict(trainer.model.named_parameters())
    a = [n for n in names if "lora_A" in n]
    b = [n for n in names if "lora_B" in n]
    assert a and b
    assert {lr_of[id(names[n])] for n in a} == {1e-4}
    assert [lr_of[id(names[n])] for n in b] == [pytest.approx(16e-4)] * len(b)
    assert all(names[n].requires_grad for n in a + b)
    trainer.train()  # the Trainer schedules this optimizer: it does not build its own
    assert trainer.optimizer.optimizer is opt or trainer.optimizer is opt
    assert opt.param_groups[-2]["lr"] < 16e-4 or opt.param_groups[-1]["lr"] < 16e-4  # decayed by the schedule


def test_plain_lora_keeps_the_trainers_optimizer(tiny_model, data, tmp_path):
    trainer = _trainer(_cfg(tiny_model, data, tmp_path / "o"), tmp_path)
    assert trainer.optimizer is None  # created by the Trainer as usual


def test_pissa_init_trains_and_saves_a_plain_lora_adapter(tiny_model, data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    out = tmp_path / "pissa"
    ns = _cfg(tiny_model, data, out, pissa_init="true", pissa_iter=2, lora_rank=4)
    run(ns)
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["init_lora_weights"] is True  # converted: rank doubles, loads as plain LoRA
    assert not (out / "pissa_init").exists()
    # the adapter on the ORIGINAL base gives what the trained PiSSA model gave: same logits as training's end
    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        plain = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(out)).eval()(ids).logits
    assert not torch.allclose(plain, tuned, atol=1e-4)  # training changed the model
    # PiSSA itself: the init moved principal components out of the base (the adapter starts non-zero)
    from engine.models.loader import load_model
    from engine.train.methods import apply_method
    model = apply_method(load_model(ns, trainable=True), ns)
    lb = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lb and all(p.abs().sum() > 0 for p in lb)


@pytest.mark.parametrize("kind", ["linear", "dynamic", "yarn", "llama3"])
def test_rope_scaling_reaches_the_model(tiny_model, data, tmp_path, kind):
    from engine.models.loader import load_model
    ns = _cfg(tiny_model, data, tmp_path / "o", rope_scaling=kind, cutoff_len=5000)  # 5000 / 2048 -> factor 3
    model = load_model(ns, trainable=True)
    params = model.config.rope_parameters
    assert params["rope_type"] == kind and params["factor"] == 3.0
    plain = load_model(_cfg(tiny_model, data, tmp_path / "o"), trainable=True)
    rot, rot0 = model.model.rotary_emb, plain.model.rotary_emb
    if kind == "dynamic":
        assert rot.rope_type == "dynamic"
    else:
        assert rot.inv_freq[-1] < rot0.inv_freq[-1]  # low frequencies stretched to cover the longer context
        assert model.config.max_position_embeddings == 3 * 2048
    given = load_model(_cfg(tiny_model, data, tmp_path / "o", rope_scaling=kind, rope_factor=2), trainable=True)
    assert given.config.rope_parameters["factor"] == 2.0
    short = load_model(_cfg(tiny_model, data, tmp_path / "o", rope_scaling=kind), trainable=True)  # 64 fits
    assert short.config.rope_parameters.get("rope_type", "default") == "default"


def test_pissa_conversion_keeps_the_trained_model(tiny_model, data, tmp_path):
    """save_pissa_init + save_pissa_converted: the plain adapter on the original base computes what the trained
    PiSSA model (residual base + adapter) computes."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from engine.models.loader import load_model
    from engine.train.methods import apply_method, save_pissa_converted, save_pissa_init
    ns = _cfg(tiny_model, data, tmp_path / "o", pissa_init="true", pissa_iter=-1, lora_rank=4)
    model = apply_method(load_model(ns, trainable=True), ns)
    init_dir = save_pissa_init(model, tmp_path / "out")
    assert init_dir and Path(init_dir, "adapter_config.json").is_file()
    torch.manual_seed(0)
    with torch.no_grad():  # stands in for training: move every adapter weight
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.add_(0.05 * torch.randn_like(p))
    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])
    model.eval()
    with torch.no_grad():
        want = model(ids).logits
    model.save_pretrained(str(tmp_path / "out"))  # what trainer.save_model writes
    save_pissa_converted(tmp_path / "out", init_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        got = PeftModel.from_pretrained(base, str(tmp_path / "out")).eval()(ids).logits
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_extra_args_in_the_web_ui_preview_save_and_start(tiny_model, tmp_path, monkeypatch):
    """The schema's extra_args is a text box in the Extra training accordion; what is typed there reaches the
    preview and the saved YAML, and a bad key is marked on the field at Start, with nothing started."""
    pytest.importorskip("gradio")
    import shutil

    import yaml

    from engine import paths, runs
    from tests.test_webui import call, value
    from webui.app import create_ui
    model = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model, model)  # inside the UI's allowed folders
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.setenv("TUNEBOARD_ROOTS", str(tmp_path))
    demo = create_ui("en", saves=str(tmp_path / "saves"))
    page = demo.page
    from engine.args import BY_NAME
    assert any(BY_NAME["extra_args"] in items for s, g, items in page.accordions if s == "train")
    ov = {page.w("top", "model_name_or_path"): str(model), page.w("train", "dataset"): ["identity"],
          page.w("train", "output_dir"): str(tmp_path / "o"),
          page.w("train", "extra_args"): '{"adam_beta2": 0.99, "max_grad_norm": 0.5}'}
    res = call(demo, page.c("train.preview"), overrides=ov)
    argv = shlex.split(value(res[page.c("train.command")]))
    assert argv, value(res[page.c("train.message")])
    assert 'extra_args={"adam_beta2":0.99,"max_grad_norm":0.5}' in argv or \
        ('extra_args={"adam_beta2":0.99}' in argv and "max_grad_norm=0.5" in argv)
    cfg = tmp_path / "cfg.yaml"
    call(demo, page.c("train.save"), overrides={**ov, page.c("train.config_path"): str(cfg)})
    saved = yaml.safe_load(cfg.read_text())
    assert saved["extra_args"]["adam_beta2"] == 0.99
    bad = {**ov, page.w("train", "extra_args"): '{"adam_beta3": 0.99}'}
    res = call(demo, page.c("train.start"), overrides=bad)
    msg = value(res[page.c("train.message")])
    assert "extra_args.adam_beta3" in msg and "adam_beta2" in msg  # the nearest names
    assert res[page.w("train", "extra_args")]["info"].startswith("✗")
    assert runs.all_runs(page.saves) == [] and not (tmp_path / "o").exists()


def test_loraplus_and_neftune_with_dpo(tiny_model, tmp_path):
    """The DPO trainer takes the LoRA+ optimizer too, and DPOConfig carries NEFTune."""
    d = tmp_path / "pairs"
    d.mkdir()
    rows = [{"instruction": f"Say {w}.", "chosen": f"{w}!", "rejected": "No."} for w in ("hi", "yes", "ok", "sure")]
    (d / "p.json").write_text(json.dumps(rows), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"p": {"file_name": "p.json", "ranking": True, "columns": {
        "prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}}}), encoding="utf-8")
    out = tmp_path / "dpo"
    ns = _cfg(tiny_model, d, out, stage="dpo", dataset="p", loraplus_lr_ratio=4, neftune_noise_alpha=5,
              learning_rate=1e-4, max_steps=1)
    from engine.data.loader import get_dataset
    from engine.data.templates import resolve_template
    from engine.models.loader import load_model, load_tokenizer
    from engine.train.dpo import build_trainer
    from engine.train.methods import apply_method, attach_loraplus
    from engine.train.workflow import pick_precision, training_arguments
    tok = load_tokenizer(ns)
    data = get_dataset(ns, tok, resolve_template(ns, tok), "dpo")
    trainer = build_trainer(ns, apply_method(load_model(ns, trainable=True), ns), tok, data,
                            training_arguments(ns, pick_precision(ns), "dpo"), [])
    attach_loraplus(trainer, ns)
    lrs = sorted({round(g["lr"], 12) for g in trainer.optimizer.param_groups if g["params"]})
    assert lrs == [1e-4, 4e-4]
    assert trainer.args.neftune_noise_alpha == 5.0
    trainer.train()
    assert trainer.state.global_step == 1


def test_pissa_checkpoints_load_on_the_original_base_and_still_resume(tiny_model, data, tmp_path):
    """Every checkpoint-N of a PiSSA run is a plain LoRA adapter for the original base (what chat / eval / export
    load), and resuming from one still continues the run: its residual-form adapter is kept for the Trainer."""
    from engine.models.loader import load_model
    out = tmp_path / "pissa"
    ns = _cfg(tiny_model, data, out, pissa_init="true", pissa_iter=2, lora_rank=4, save_steps=1)
    run(ns)
    ids = torch.tensor([[1, 20, 30, 40, 50, 60]])

    def logits(adapter):
        with torch.no_grad():
            args = as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": str(adapter)}, "infer")
            return load_model(args, device="cpu")(ids).logits

    final = logits(out)
    last = out / "checkpoint-2"
    assert json.loads((last / "adapter_config.json").read_text())["r"] == 8
    assert torch.allclose(logits(last), final, atol=1e-5)  # the last checkpoint is the final model
    assert not torch.allclose(logits(out / "checkpoint-1"), final, atol=1e-4)  # one step earlier: another model
    # resume from checkpoint-1: the Trainer reloads the residual-form adapter and reaches the same step-2 model
    run(_cfg(tiny_model, data, out, pissa_init="true", pissa_iter=2, lora_rank=4, save_steps=1,
             resume_from_checkpoint=str(out / "checkpoint-1")))
    assert rundir.read_status(out)["state"] == "finished"
    assert torch.allclose(logits(out), final, atol=1e-5)
    assert not (out / "pissa_residual").exists()  # the residual folder was never taken for a second adapter
    assert json.loads((last / "pissa_residual" / "adapter_config.json").read_text())["r"] == 4
    assert torch.allclose(logits(out / "checkpoint-2"), final, atol=1e-5)

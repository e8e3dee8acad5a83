"""The web UI built in-process (no server, no browser): widgets generated from the schema, live language
switch, field-level validation, the command preview / saved YAML, dataset filtering, launch options.

Handlers are called exactly as gradio calls them: the BlockFunction registered for a component's event,
with {component: value} for set-style inputs.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from engine import args as schema
from engine import paths, runs
from engine.args import ARGS, BY_NAME, GROUPS
from engine.utils import clock
from webui import widgets
from helpers import free_port, serving, start_server, stop_group, wait_for
from webui.locales import L, t

ROOT = Path(__file__).resolve().parent.parent


from kits.webui import call, state, value


# ---------------------------------------------------------------- schema -> widgets
def test_every_ui_argument_has_a_widget_with_label_help_range_and_choices(demo):
    page = demo.page
    placed = {name for scope in page.args.values() for name in scope}
    for a in ARGS:
        if not a.ui or a.compat:
            assert a.name not in placed, f"{a.name} is hidden in the schema but shown"
            continue
        if a.name in widgets.COMPUTE_ARGS:
            continue  # shown as the top panel's compute type
        assert a.name in placed, f"{a.name} has no widget"
    w = page.w("train", "learning_rate")
    assert isinstance(w, gr.Number) and w.label == "Learning rate" and w.info == BY_NAME["learning_rate"].help_en
    # no gradio range check (it fails the whole event naming no field): the schema's range is checked on Start
    assert w.minimum is None and w.maximum is None and w.preprocess(20) == 20
    lr = page.w("train", "lr_scheduler_type")
    assert isinstance(lr, gr.Dropdown) and [c[1] for c in lr.choices] == list(BY_NAME["lr_scheduler_type"].choices)
    rank = page.w("train", "lora_rank")
    assert isinstance(rank, gr.Slider) and (rank.minimum, rank.maximum, rank.value) == (1, 4096, 8)
    assert isinstance(page.w("train", "packing"), gr.Checkbox)
    assert isinstance(page.w("chat", "temperature"), gr.Number) and page.w("chat", "top_p").maximum == 1.0
    assert set(page.args["export"]) == {"export_dir", "export_size", "export_dtype", "export_format", "gguf_type",
                                        "export_hub_model_id", "export_hub", "export_hub_private", "hub_token",
                                        "overwrite_output_dir"}
    assert page.w("export", "hub_token").type == "password"
    # eval scope: every inference argument except the training-only ones
    assert "learning_rate" not in page.args["eval"] and "max_new_tokens" in page.args["eval"]
    ct = page.c("top.compute_type")
    assert ct.value == "auto" and [c[1] for c in ct.choices] == ["auto", "fp32", "bf16", "fp16"]


def test_accordions_follow_groups_and_stage_method_visibility(demo):
    page = demo.page
    acc = {(scope, a.elem_id): items for scope, a, items in page.accordions}
    assert ("train", "train-group-lora") in acc and ("train", "train-group-dpo") in acc
    labels = [a.label for s, a, _ in page.accordions if s == "train"]
    assert labels == [GROUPS[g][0] for g in GROUPS if g in {i.group for s2, _, items in page.accordions if s2 == "train"
                                                              for i in items}]
    vis = page.visibility("dpo", "freeze")
    by_id = {c.elem_id: u["visible"] for c, u in vis.items()}
    assert by_id["train-group-dpo"] is True and by_id["train-group-freeze"] is True
    assert by_id["train-group-lora"] is False
    assert by_id["train-packing"] is False and by_id["train-train_on_prompt"] is False
    vis = page.visibility("sft", "lora")
    by_id = {c.elem_id: u["visible"] for c, u in vis.items()}
    assert by_id["train-group-dpo"] is False and by_id["train-lora_rank"] is True and by_id["train-packing"] is True
    # QLoRA's 4-bit settings only while the quantization is 4-bit
    assert page.controls() == [page.w("top", "quantization_bit")]
    for bits, shown in (("", False), ("8", False), ("4", True)):
        by_id = {c.elem_id: u["visible"] for c, u in page.visibility("sft", "lora", bits).items()}
        assert by_id["top-quantization_type"] is shown and by_id["top-double_quantization"] is shown, bits
        assert by_id["top-quantization_bit"] is True
    assert not page.w("top", "quantization_type").visible  # the first render: quantization is none
    # a checkbox keeps a width its label fits in, also after being marked bad and cleared (app.CSS .tb-check)
    assert "tb-check" in page.w("top", "trust_remote_code").elem_classes
    ups = page.field_updates("en", {"trust_remote_code": "bad"}, "top")
    assert {"tb-check", "tb-invalid"} <= set(ups[page.w("top", "trust_remote_code")]["elem_classes"])


@pytest.fixture
def extra_arg(monkeypatch):
    """An argument added to the schema the way a developer would: one A(...) line."""
    new = schema.A("label_smoothing_factor", "float", 0.0, "extra", "Label smoothing epsilon.", "标签平滑系数。",
                   "标签平滑", min=0.0, max=1.0)
    monkeypatch.setattr(schema, "ARGS", ARGS)  # same list object, restored below
    ARGS.append(new)
    BY_NAME[new.name] = new
    yield new
    ARGS.remove(new)
    del BY_NAME[new.name]


def test_a_new_schema_argument_appears_in_ui_yaml_and_preview(extra_arg, tmp_path, monkeypatch):
    from webui.app import create_ui
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.setenv("TUNEBOARD_ROOTS", str(tmp_path))  # the test's folders are allowed UI paths
    demo = create_ui("en", saves=str(tmp_path / "saves"))
    page = demo.page
    w = page.w("train", extra_arg.name)
    assert isinstance(w, gr.Slider) and w.label == "Label smoothing factor" and w.info == "Label smoothing epsilon."
    assert any(extra_arg in items for s, _, items in page.accordions if s == "train")
    out = tmp_path / "run"
    ov = {page.w("train", "dataset"): ["identity"], page.w("train", extra_arg.name): 0.1,
          page.w("train", "output_dir"): str(out)}
    res = call(demo, page.c("train.preview"), overrides=ov)
    cmd = value(res[page.c("train.command")])
    assert "label_smoothing_factor=0.1" in shlex.split(cmd)
    # the YAML Save arguments writes, and the one a run is started from
    cfg = tmp_path / "cfg.yaml"
    call(demo, page.c("train.save"), overrides={**ov, page.c("train.config_path"): str(cfg)})
    assert yaml.safe_load(cfg.read_text())["label_smoothing_factor"] == 0.1
    assert runs.recipe(runs.check("train", {"dataset": ["identity"], extra_arg.name: 0.1}))[extra_arg.name] == 0.1
    # the Chinese label comes from the schema line too
    zh = call(demo, page.c("top.lang"), "change", overrides={page.c("top.lang"): "zh"})
    assert zh[w]["label"] == "标签平滑" and zh[w]["info"] == "标签平滑系数。"


# ---------------------------------------------------------------- language
def test_every_locale_string_has_both_languages():
    for key, entry in L.items():
        assert set(entry) == {"en", "zh"} and all(entry.values()), key
    for a in ARGS:
        if a.ui and not a.compat:
            assert a.help_zh and a.label("zh"), a.name


def test_language_switch_relabels_every_component(demo):
    page = demo.page
    lang = page.c("top.lang")
    zh = call(demo, lang, "change", overrides={lang: "zh"})
    assert zh[page.w("train", "stage")]["label"] == "训练阶段"
    assert [c[0] for c in zh[page.w("train", "stage")]["choices"]] == ["预训练", "指令监督微调", "奖励模型训练",
                                                                     "DPO / ORPO / SimPO 偏好优化", "KTO 偏好优化",
                                                                     "GRPO 强化学习（可验证奖励）"]
    assert zh[page.c("train.start")]["value"] == "开始" and zh[page.c("train.abort")]["value"] == "中断"
    assert zh[page.c("tab.chat")]["label"] == "对话"
    acc = next(a for s, a, _ in page.accordions if a.elem_id == "train-group-lora")
    assert zh[acc]["label"] == "LoRA 参数"
    # every registered component got an update, and none kept English text where a translation exists
    assert set(c for c, _ in page.localized) <= set(zh)
    en = call(demo, lang, "change", overrides={lang: "en"})
    assert en[page.w("train", "stage")]["label"] == "Stage" and en[page.c("train.start")]["value"] == "Start"
    # a message on the page is re-rendered in the new language
    parts_state = page.c("train.message_parts")
    zh = call(demo, lang, "change", overrides={lang: "zh", parts_state: [("saved_to", {"path": "x.yaml"})]})
    assert value(zh[page.c("train.message")]) == t("saved_to", "zh", path="x.yaml")


# ---------------------------------------------------------------- validation, preview, save / load
def test_start_marks_every_bad_field_and_starts_nothing(demo, tmp_path):
    page = demo.page
    ov = {page.w("train", "learning_rate"): -1, page.w("train", "cutoff_len"): 2,
          page.w("train", "dataset"): ["identity"], page.w("train", "output_dir"): str(tmp_path / "o")}
    res = call(demo, page.c("train.start"), overrides=ov)
    msg = value(res[page.c("train.message")])
    assert "learning_rate" in msg and "cutoff_len" in msg
    assert res[page.w("train", "learning_rate")]["info"].startswith("✗ learning_rate")
    assert "tb-invalid" in res[page.w("train", "cutoff_len")]["elem_classes"]
    assert res[page.w("train", "lora_rank")]["info"] == BY_NAME["lora_rank"].help_en
    assert runs.all_runs(page.saves) == [] and not (tmp_path / "o").exists()
    # a cross-field rule names its field too
    res = call(demo, page.c("train.start"), overrides={page.w("train", "dataset"): [],
                                                        page.w("train", "output_dir"): str(tmp_path / "o")})
    assert "dataset" in value(res[page.c("train.message")])
    assert res[page.w("train", "dataset")]["info"].startswith("✗")


def test_start_checks_the_form_once_and_spawns_what_it_checked(demo, tmp_path, monkeypatch):
    """A Start applies the cross-field rules once in the UI process (the run's own process checks its YAML again);
    the run is placed where that one check put it and its YAML holds the form's values."""
    import engine.config
    page = demo.page
    real, checks, started = engine.config.validate, [], []

    def counting(ns, command="train"):
        checks.append(command)
        return real(ns, command)

    monkeypatch.setattr(engine.config, "validate", counting)  # load_config's
    monkeypatch.setattr(runs, "validate", counting)           # runs.check's
    reads, real_load = [], engine.config.load_config

    def reading(*a, **kw):
        reads.append(a[2] if len(a) > 2 else kw.get("command"))
        return real_load(*a, **kw)

    import webui.page
    monkeypatch.setattr(runs, "load_config", reading)
    monkeypatch.setattr(webui.page, "load_config", reading)
    monkeypatch.setattr(runs, "_start", lambda run_id, command, argv, run_dir, output, config, *rest:
                        started.append((output, yaml.safe_load(Path(config).read_text())))
                        or runs.Run(id=run_id, command=command, run_dir=str(run_dir), output=output, config=config,
                                                log=""))
    out = tmp_path / "o"
    res = call(demo, page.c("train.start"), overrides={page.w("train", "dataset"): ["identity"],
                                                        page.w("train", "learning_rate"): 0.0003,
                                                        page.w("train", "output_dir"): str(out)})
    assert res[page.c("train.message_parts")] == [("started", {"path": str(out)})]
    assert checks == ["train"] and reads == ["train"]  # read once, checked once (it was three reads, two checks)
    assert [o for o, _ in started] == [str(out)] and started[0][1]["learning_rate"] == 0.0003

def test_preview_command_is_exact_and_output_name_goes_under_saves(demo, tmp_path):
    page = demo.page
    ov = {page.w("train", "dataset"): ["identity"], page.w("train", "learning_rate"): 0.0002,
          page.w("train", "max_steps"): 30, page.w("train", "output_dir"): "my_run",
          page.w("train", "identity_name"): "Nova Li", page.c("top.compute_type"): "bf16"}
    cmd = value(call(demo, page.c("train.preview"), overrides=ov)[page.c("train.command")])
    argv = shlex.split(cmd)
    from engine.config import launcher
    prog = shlex.split(launcher())  # the venv's tuneboard script, or this python with -m engine
    assert argv[:len(prog) + 1] == prog + ["train"]
    assert all("=" in a for a in argv[len(prog) + 1:])  # nothing but key=value after the command
    kv = dict(a.split("=", 1) for a in argv if "=" in a)
    assert kv["learning_rate"] == "0.0002" and kv["max_steps"] == "30" and kv["identity_name"] == "Nova Li"
    assert kv["dataset"] == "identity" and kv["precision"] == "bf16"
    assert kv["output_dir"] == str(Path(page.saves) / "SmolLM2-135M-Instruct" / "lora" / "my_run")
    assert "lora_rank" not in kv  # unchanged values stay out
    from engine.config import load_config
    ns = load_config(None, [a for a in argv if "=" in a], "train")
    assert ns.learning_rate == 2e-4 and ns.dataset == ["identity"] and ns.max_steps == 30


def test_save_then_load_arguments_round_trip(demo, tmp_path):
    page = demo.page
    cfg = tmp_path / "c.yaml"
    ov = {page.w("train", "dataset"): ["identity"], page.w("train", "lora_rank"): 16,
          page.w("train", "stage"): "sft", page.w("top", "finetuning_type"): "lora",
          page.w("train", "lr_scheduler_type"): "linear", page.c("train.config_path"): str(cfg),
          page.w("train", "output_dir"): str(tmp_path / "o"), page.c("top.compute_type"): "bf16"}
    res = call(demo, page.c("train.save"), overrides=ov)
    assert "saved" in value(res[page.c("train.message")]).lower()
    saved = yaml.safe_load(cfg.read_text())
    assert saved["lora_rank"] == 16 and saved["dataset"] == ["identity"] and saved["precision"] == "bf16"
    res = call(demo, page.c("train.load"), overrides={page.c("train.config_path"): str(cfg)})
    assert value(res[page.w("train", "lora_rank")]) == 16
    assert value(res[page.w("train", "lr_scheduler_type")]) == "linear"
    assert value(res[page.w("train", "dataset")]) == ["identity"]
    assert value(res[page.c("top.compute_type")]) == "bf16"
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: [1\n")
    res = call(demo, page.c("train.load"), overrides={page.c("train.config_path"): str(bad)})
    assert "not valid YAML" in value(res[page.c("train.message")])


def test_existing_output_dir_offers_resume(demo, tmp_path):
    import torch
    from safetensors.torch import save_file
    page = demo.page
    out = tmp_path / "held"
    ck = out / "checkpoint-6"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text('{"global_step": 6}')
    save_file({"w": torch.zeros(1)}, str(ck / "adapter_model.safetensors"))  # a checkpoint that reads whole
    (out / "trainer_log.jsonl").write_text("{}\n")
    (out / "status.json").write_text(json.dumps({"state": "aborted", "step": 6}))
    box = page.w("train", "output_dir")
    res = call(demo, box, "blur", overrides={box: str(out)})
    assert "checkpoint-6" in value(res[page.c("train.resume_msg")]) and res[page.c("train.resume")]["visible"]
    res = call(demo, page.c("train.resume"), overrides={box: str(out)})
    assert res[page.w("train", "resume_from_checkpoint")] == str(ck)
    # Start without resuming is refused with the field named, nothing is touched
    res = call(demo, page.c("train.start"), overrides={box: str(out), page.w("train", "dataset"): ["identity"]})
    assert "output_dir" in value(res[page.c("train.message")]) and (out / "trainer_log.jsonl").exists()


# ---------------------------------------------------------------- datasets
def test_datasets_are_filtered_by_stage(demo):
    from engine.data.registry import data_kind, dataset_stage, load_dataset_info
    page = demo.page
    info = load_dataset_info(ROOT / "data")
    stage = page.w("train", "stage")
    for s in BY_NAME["stage"].choices:  # rm reads the ranking pairs of dpo; kto its own labelled answers
        res = call(demo, stage, "change", overrides={stage: s, page.w("train", "dataset_dir"): str(ROOT / "data")})
        upd = res[0] if isinstance(res, tuple) else res
        names = [c[1] if isinstance(c, tuple) else c for c in upd["choices"]]
        assert names and all(dataset_stage(info[n]) == data_kind(s) for n in names), (s, names)
        assert ("kto_en_demo" in names) == (s == "kto") and ("dpo_en_demo" in names) == (s in ("rm", "dpo"))
    # a selection that does not fit the new stage is dropped
    res = call(demo, stage, "change", overrides={stage: "dpo", page.w("train", "dataset"): ["identity", "dpo_en_demo"],
                                                  page.w("train", "dataset_dir"): str(ROOT / "data")})
    assert res[0]["value"] == ["dpo_en_demo"]


def test_broken_dataset_info_is_an_error_not_an_empty_list(demo, tmp_path):
    page = demo.page
    bad = tmp_path / "data"
    bad.mkdir()
    (bad / "dataset_info.json").write_text('{"x": {"file_name": "a.json",}}')
    ddir = page.w("train", "dataset_dir")
    upd, parts, md = call(demo, ddir, "blur", overrides={ddir: str(bad)})
    assert upd["choices"] == [] and "dataset_info.json" in md and "line 1" in md and md.startswith("✗")


def test_dataset_preview_marks_trained_tokens(demo):
    page = demo.page
    ov = {page.w("train", "dataset"): ["identity"], page.w("train", "identity_name"): "Nova",
          page.w("train", "dataset_dir"): str(ROOT / "data")}
    res = call(demo, page.c("train.preview_dataset"), overrides=ov)
    marked = value(res[page.c("train.preview_rendered")])
    assert res[page.c("train.preview_rendered")]["color_map"].keys() == {"trained"}  # the legend: SFT's one label
    trained = [s for s, lab in marked if lab]
    untrained = [s for s, lab in marked if not lab]
    assert trained and all(s.endswith("<|im_end|>") for s in trained)  # the answer and its stop word
    assert any("Nova" in s for s in trained)
    assert all("<|im_start|>user" in s for s in untrained if "im_start" in s)
    assert "identity" in value(res[page.c("train.preview_info")])
    ov = {page.w("train", "stage"): "dpo", page.w("train", "dataset"): ["dpo_en_demo"],
          page.w("train", "dataset_dir"): str(ROOT / "data")}
    res = call(demo, page.c("train.preview_dataset"), overrides=ov)
    assert res[page.c("train.preview_rendered")]["color_map"].keys() == {"chosen", "rejected"}  # DPO's two


# ---------------------------------------------------------------- launch
def test_launch_options(monkeypatch):
    from engine.errors import UserError
    from engine.cli import parse
    from tuneboard.cli import COMMANDS
    from webui.launch import server_options

    def parse_flags(argv, env):
        return server_options(parse("webui", COMMANDS["webui"], argv), env)
    assert parse_flags([], {}) == {"host": "127.0.0.1", "port": 7860, "share": False, "lang": "en"}
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7999"}
    assert parse_flags([], env)["host"] == "0.0.0.0" and parse_flags([], env)["port"] == 7999
    o = parse_flags(["--port", "8001", "--host=127.0.0.2", "--share", "--lang", "zh"], env)
    assert o == {"host": "127.0.0.2", "port": 8001, "share": True, "lang": "zh"}
    with pytest.raises(UserError, match="port"):
        parse_flags(["--port", "http"], {})
    with pytest.raises(UserError, match="unknown option"):
        parse_flags(["--bogus"], {})


def test_ui_start_imports_no_torch_transformers_or_datasets():
    code = ("import sys; from webui.app import create_ui; create_ui(); "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft', 'trl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------- run view
def test_loss_series_and_progress_bar():
    from webui import monitor
    recs = [{"step": 1, "loss": 3.0, "total_steps": 10}, {"step": 2, "loss": 2.0}, {"step": 2, "eval_loss": 2.5},
            {"step": 3, "loss": float("nan")}, {"step": 4, "loss": 1.0}]
    s = monitor.loss_series(recs)
    assert s["loss"] == ([1, 2, 4], [3.0, 2.0, 1.0]) and s["eval loss"] == ([2], [2.5])
    assert len(s["loss (smoothed)"][1]) == 3 and s["loss (smoothed)"][1][0] == 3.0
    assert monitor.loss_figure([], "en") is None
    fig = monitor.loss_figure(recs[:1], "en")  # one logged step is already drawn
    assert fig is not None and fig.axes[0].lines[0].get_xdata().tolist() == [1]
    html = monitor.progress_html({"step": 3, "total_steps": 10, "elapsed": 5, "remaining": 12, "percentage": 30.0},
                                 {"state": "running"}, "en")
    assert "data-step='3'" in html and "data-total='10'" in html and "[00:05&lt;00:12]" in html and "width:30.0%" in html
    # the one clock the page and eval's progress line share: hours only when there are some, unknown as --:--
    assert [clock(s) for s in (5, 59.6, 3725, None, float("nan"), "x")] == \
        ["00:05", "01:00", "1:02:05", "--:--", "--:--", "--:--"]


# ---------------------------------------------------------------- the commands that serve it
def _serve(argv, port, log, env_extra=None):
    """Start a server command and wait for its gradio config (`argv` after the interpreter)."""
    proc = start_server(argv, log, env_extra, drop=())
    try:
        return proc, json.loads(wait_for(serving(proc, f"http://127.0.0.1:{port}/config", log), 120,
                                         "the server to answer"))
    except BaseException:
        stop_group(proc)
        raise


def _elem_ids(config) -> set:
    return {c.get("props", {}).get("elem_id") for c in config["components"]} - {None}


def test_tuneboard_webui_serves_the_studio_with_a_recipe_prefilled(tmp_path):
    port = free_port()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset: identity\nlearning_rate: 0.0003\nstage: sft\n")
    proc, cfg = _serve(["-m", "tuneboard", "webui", str(recipe), "max_steps=7"], port, tmp_path / "server.log",
                       {"GRADIO_SERVER_PORT": str(port), "TUNEBOARD_SAVES_DIR": str(tmp_path / "saves")})
    try:
        ids = _elem_ids(cfg)
        assert {"train-start", "eval-start", "chat-load", "export-start", "top-lang"} <= ids
        by_id = {c["props"].get("elem_id"): c["props"] for c in cfg["components"]}
        assert by_id["train-learning_rate"]["value"] == 0.0003 and by_id["train-max_steps"]["value"] == 7
        assert by_id["train-dataset"]["value"] == ["identity"]
    finally:
        stop_group(proc)


def test_tuneboard_webchat_serves_the_chat_tab_alone(tmp_path, tiny_model):
    port = free_port()
    recipe = tmp_path / "chat.yaml"
    recipe.write_text(f"model_name_or_path: {tiny_model}\ntemplate: chatml\nmax_new_tokens: 16\n")
    proc, cfg = _serve(["-m", "tuneboard", "webchat", str(recipe), "--port", str(port)], port, tmp_path / "server.log")
    try:
        ids = _elem_ids(cfg)
        assert {"chat-load", "chat-bot", "chat-input", "top-lang"} <= ids
        assert not ids & {"train-start", "eval-start", "export-start"}
        by_id = {c["props"].get("elem_id"): c["props"] for c in cfg["components"]}
        assert by_id["chat-max_new_tokens"]["value"] == 16
    finally:
        stop_group(proc)


def test_metrics_tables_name_the_eval_scores():
    from webui.page import render_msg
    res = {"bleu-4": 12.5, "rouge-1": 30.0, "rouge-2": 10.0, "rouge-l": 28.0, "accuracy": 62.5, "samples": 8,
           "model": "m", "adapter": None}
    md = render_msg([("__metrics__", {"results": res})], "en")
    assert md.startswith("**Metrics**") and "| Accuracy (exact match, %) | 62.5 |" in md and "| BLEU-4 | 12.5 |" in md
    assert md.index("Accuracy") < md.index("BLEU-4") < md.index("ROUGE-L") and "adapter" not in md
    zh = render_msg([("__metrics__", {"results": {"train_loss": 1.25}})], "zh")
    assert zh.startswith("**最终指标**") and "| train_loss | 1.25 |" in zh


# ---------------------------------------------------------------- issue 20: the rough edges of a first hour
def _log_run(folder: Path, losses) -> Path:
    """A run folder as a finished training leaves it, as far as listing and judging need: its loss log."""
    folder.mkdir(parents=True)
    (folder / "trainer_log.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": v, "total_steps": len(losses)})
                                                      + "\n" for i, v in enumerate(losses)))
    return folder


def test_run_lists_are_read_on_every_page_load_and_take_a_typed_label(demo):
    page = demo.page
    saves = Path(page.saves)
    a = _log_run(saves / "m" / "lora" / "a", [3.0, 2.5, 2.0, 1.6, 1.4, 1.3])
    b = _log_run(saves / "m" / "lora" / "b", [3.0, 2.9, 2.9, 2.8, 2.8, 2.8])  # made after the server started
    on_load = {tuple(outs): fn for fn, _, outs in page.on_load}
    for box in (page.c("doctor.run"), page.c("compare.runs")):
        choices = on_load[(box,)]()["choices"]
        assert ("m/lora/a", str(a)) in choices and ("m/lora/b", str(b)) in choices, choices
    # a label typed (or picked) is that run's folder, not a path relative to where the server started
    rep = call(demo, page.c("doctor.diagnose"), overrides={page.c("doctor.run"): "m/lora/b"})[0]
    assert not rep.get("error") and rep["path"] == str(b)
    res = call(demo, page.c("compare.go"), overrides={page.c("compare.runs"): ["m/lora/a", "m/lora/b"]})
    assert res[0] is not None and "outside" not in res[1] and {r["name"] for r in res[0]["runs"]} == {"a", "b"}


def test_a_dead_run_is_not_offered_as_running(demo, tmp_path):
    page = demo.page
    out = tmp_path / "killed"
    ck = out / "checkpoint-2"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": 2}))  # a checkpoint that reads whole
    save_file({"lora_B": np.zeros(2, dtype=np.float32)}, str(ck / "adapter_model.safetensors"))
    (out / "trainer_log.jsonl").write_text("{}\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid no process has any more: the run was killed mid-step, its status left at "training"
    (out / "status.json").write_text(json.dumps({"state": "training", "step": 3, "pid": dead.pid}))
    box = page.w("train", "output_dir")
    msg = value(call(demo, box, "blur", overrides={box: str(out)})[page.c("train.resume_msg")])
    assert "stopped: no process is running it" in msg and "training" not in msg and "checkpoint-2" in msg


def test_export_takes_a_bare_name_and_loads_only_a_finished_export_in_chat(demo):
    from webui.export_tab import prepare_export
    page = demo.page
    v = prepare_export({"export_dir": "merged", "model_name_or_path": "models/M", "finetuning_type": "lora",
                        "adapter_name_or_path": ["a"]}, page.saves)
    assert v["export_dir"] == str(Path(page.saves) / "M" / "lora" / "merged")  # as Train and Evaluate name theirs
    from engine.paths import check_values
    assert check_values({"export_dir": v["export_dir"]}, page.saves) == {}  # inside the folders the UI writes to
    # no export has finished: the button changes nothing and says why
    path = page.w("top", "model_name_or_path")
    res = call(demo, page.c("export.use_in_chat"), overrides={path: "models/mine", page.c("top.lang"): "en"})
    assert path not in res and page.w("top", "adapter_name_or_path") not in res
    assert "export a model first" in value(res[page.c("export.message")])


def test_page_number_boxes_out_of_range_name_the_box(demo):
    page = demo.page
    msg, _ = call(demo, page.c("sweep.start"), overrides={page.c("sweep.k"): 30})
    assert msg.startswith("✗ Runs: 30 is out of range") and "between 1 and 20" in msg


def test_ui_text_has_no_emoji_the_page_fonts_lack():
    """Only glyphs the page's fonts (DejaVu Sans, Noto Sans CJK) draw: an emoji is a box without an emoji font."""
    from engine.insight import words
    from webui import insight_panel
    texts = [v for e in list(L.values()) + list(words.W.values()) for v in e.values()]
    texts += list(insight_panel.VERDICT_ICON.values())
    symbols = set("✓✗⚠★▶■ℹ…–—▲→←·×─│≤≥±°“”‘’")  # checked against DejaVu Sans's character map
    for text in texts:
        for ch in text:
            if ord(ch) < 0x2000 or "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef":
                continue  # Latin, punctuation, CJK: every font of the page
            assert ch in symbols, f"{ch!r} (U+{ord(ch):04X}) in {text!r}"


def test_export_tab_previews_the_new_fields_but_never_the_token(tmp_path, monkeypatch):
    """Format, GGUF type and upload fields reach the command preview from the one schema; the token does not."""
    from webui.app import create_ui
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    models = (ROOT / "models" / "SmolLM2-135M-Instruct").resolve().parent  # a worktree may link it from elsewhere
    monkeypatch.setenv("TUNEBOARD_ROOTS", f"{tmp_path}{os.pathsep}{models}")
    demo = create_ui("en", saves=str(tmp_path / "saves"))
    page = demo.page
    w = lambda name: page.w("export", name)  # noqa: E731
    ov = {w("export_dir"): str(tmp_path / "out"), w("export_format"): "gguf", w("gguf_type"): "q8_0",
          w("export_hub_model_id"): "me/tiny", w("export_hub_private"): False, w("hub_token"): "hf_SECRET",
          page.w("top", "finetuning_type"): "full"}  # a full run: nothing to merge, no adapter needed
    res = call(demo, page.c("export.preview"), overrides=ov)
    words = shlex.split(value(res[page.c("export.command")]))
    assert words, res[page.c("export.message")]
    assert words[1] == "export" and {"export_format=gguf", "gguf_type=q8_0", "export_hub_model_id=me/tiny",
                                     "export_hub_private=false", f"export_dir={tmp_path / 'out'}"} <= set(words)
    assert not any("SECRET" in x or "hub_token" in x for x in words)


# a run that, asked to stop, says it needs a while (as a trainer finishing its step and saving does) and ends
# only when the test lets it
STOPS_WHEN_LET = """
import pathlib, signal, sys, time
from engine.train import rundir
out, here = sys.argv[1], pathlib.Path(sys.argv[2])
def on_term(*_):
    rundir.write_status(out, rundir.ABORTING, stop_by=time.time() + 600)
    (here / "asked").touch()
signal.signal(signal.SIGTERM, on_term)
rundir.write_status(out, "training", step=1)
(here / "ready").touch()
while not (here / "let").exists():
    time.sleep(0.05)
sys.exit(130)
"""


def test_abort_says_stopping_at_once_and_the_outcome_once_the_run_has_stopped(demo, tmp_path):
    page = demo.page
    here, out = tmp_path / "signals", tmp_path / "run"
    here.mkdir()
    script = tmp_path / "run.py"
    script.write_text(STOPS_WHEN_LET)
    run = runs.launch("train", [sys.executable, str(script), str(out), str(here)], out, saves=page.saves)
    fns = [fn for fn in demo.fns.values() if page.c("train.message") in fn.outputs or
           any(getattr(o, "elem_id", None) == "train-status" for o in fn.outputs)]
    tick = next(fn for fn in fns if fn.fn.__name__ == "tick")
    stopped = next(fn.fn for fn in fns if fn.fn.__name__ == "stopped")
    try:
        wait_for(lambda: (here / "ready").exists(), 60, "the run to take SIGTERM in hand")
        parts, msg, button, asked = call(demo, page.c("train.abort"),
                                         overrides={page.c("train.run_id"): run.id, page.c("top.lang"): "en"})
        # answered at once, while the run is still going: the words of the run module, Abort off
        assert parts == [("aborting", {})] and msg.startswith("Stopping") and asked == run.id
        assert button["interactive"] is False
        wait_for(lambda: (here / "asked").exists(), 60, "SIGTERM to reach the run")
        data = state(demo, {page.c("train.run_id"): run.id, page.c("top.lang"): "en"})
        status, *_, start, abort = tick.fn(*[data.get(c) for c in tick.inputs])[:7]
        assert run.alive() and "stopping" in status and "Running" in status, status  # every tab says so
        assert abort["interactive"] is False and start["interactive"] is False
        (here / "let").touch()
        parts, _ = stopped(asked, "en")  # waits for the server's stopper thread
        assert parts == [("aborted_ok", {})] and not run.alive()
        assert runs.get_run(run.id, page.saves).status()["state"] == "aborted"
        assert stopped(None, "en") == (gr.skip(), gr.skip())  # "nothing running" leaves the message alone
    finally:
        (here / "let").touch()
        run.abort(grace=1)


def test_the_page_load_and_the_stage_refresh_the_dataset_list_in_order(demo):
    """The page load refreshes the dataset list with the stage the page had when it opened; a stage picked right
    after must be answered after that (one queue, one at a time), else the old stage's list replaces the new one
    (seen in the GRPO browser test on a busy machine)."""
    tab = demo.studio.train

    def refreshing(trigger) -> list:
        return [f for f in demo.fns.values() if trigger(f.targets) and tab.dataset._id in [o._id for o in f.outputs]]
    by_stage = refreshing(lambda ts: (tab.stage._id, "change") in ts)
    by_load = refreshing(lambda ts: any(kind == "load" for _, kind in ts))
    assert len(by_stage) == 1 and len(by_load) == 1
    for f in by_stage + by_load:
        assert (f.queue, f.concurrency_id, f.concurrency_limit) == (True, "train-datasets", 1), f.name


def test_a_page_load_with_no_run_going_leaves_the_form_as_gradio_accepts_it(demo):
    """The load's restore (the running run's values into the form) with no run going: an answer gradio takes for
    its 100 outputs (an empty dict was refused on every page load: "didn't return enough output values")."""
    import asyncio

    from gradio.state_holder import SessionState
    restore = next(f for f in demo.fns.values() if f.name == "restore")
    out = restore.fn(*["en" for _ in restore.inputs])
    asyncio.run(demo.postprocess_data(restore, out, SessionState(demo)))  # raises for a malformed answer


def test_a_long_streaming_answer_is_sent_less_often():
    """Chat's pace: the first words at once, then every STREAM_EVERY_S while the answer is short, and at most
    RENDER_CHARS_PER_S characters a second for the page to lay out again however long it grows."""
    from webui.chat_tab import RENDER_CHARS_PER_S, STREAM_EVERY_S, Pace
    now = [0.0]
    pace = Pace(clock=lambda: now[0])
    sent = []  # (time, characters) of each update sent
    chars = 0
    for _ in range(60_000):  # a model streaming 1,000 tokens of 4 characters a second, for a minute
        chars += 4
        if pace.due(chars):
            sent.append((now[0], chars))
        now[0] += 0.001
    assert sent[0] == (0.0, 4)
    gaps = [b[0] - a[0] for a, b in zip(sent, sent[1:])]
    assert all(g >= STREAM_EVERY_S - 1e-9 for g in gaps)
    short = [g for (t, n), g in zip(sent, gaps) if n < STREAM_EVERY_S * RENDER_CHARS_PER_S / 2]
    assert short and max(short) < STREAM_EVERY_S + 0.002  # a short answer streams at the full pace
    for (t0, _), (t1, n) in zip(sent, sent[1:]):  # each update's characters, over the time since the last one
        assert n / (t1 - t0) <= RENDER_CHARS_PER_S * 1.01
    assert 60 - sent[-1][0] < 240_000 / RENDER_CHARS_PER_S + 0.01  # and the answer keeps coming

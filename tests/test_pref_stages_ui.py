"""The preference stages in the web UI (in-process, no browser): stage names, which arguments each stage shows,
the command preview carrying their arguments, and the dataset preview of KTO data."""
from __future__ import annotations

import os
import shlex
from pathlib import Path

from helpers import ROOT
from kits.webui import call, value


def _visible(page, stage, method="lora") -> dict:
    return {c.elem_id: u["visible"] for c, u in page.visibility(stage, method).items()}


def test_stage_choices_and_their_arguments(demo):
    page = demo.page
    stage = page.w("train", "stage")
    assert [v for _, v in stage.choices] == ["pt", "sft", "rm", "dpo", "kto", "grpo"]
    assert dict((v, k) for k, v in stage.choices)["rm"] == "Reward Modeling"
    loss = page.w("train", "pref_loss")
    assert [c[1] if isinstance(c, tuple) else c for c in loss.choices] == ["sigmoid", "ipo", "hinge", "orpo", "simpo"]
    dpo, kto, rm = _visible(page, "dpo"), _visible(page, "kto"), _visible(page, "rm")
    assert dpo["train-simpo_gamma"] and dpo["train-pref_loss"] and not dpo["train-kto_chosen_weight"]
    assert kto["train-kto_chosen_weight"] and kto["train-kto_rejected_weight"] and kto["train-pref_beta"]
    assert not kto["train-pref_loss"] and not kto["train-simpo_gamma"] and not kto["train-packing"]
    assert not rm["train-group-dpo"] and not rm["train-packing"] and rm["train-group-lora"]
    grpo, sft = _visible(page, "grpo"), _visible(page, "sft")
    assert grpo["train-group-grpo"] and grpo["train-reward_funcs"] and grpo["train-num_generations"]
    assert not grpo["train-group-dpo"] and not grpo["train-packing"] and not grpo["train-train_on_prompt"]
    assert not sft["train-group-grpo"] and not dpo["train-reward_funcs"]
    rewards = page.w("train", "reward_funcs")  # the presets are offered; a path/file.py:function may be typed
    assert [c[1] for c in rewards.choices] == ["answer_exact", "answer_numeric", "answer_last_number", "format",
                                               "length", "json"]
    assert rewards.multiselect and rewards.allow_custom_value


def test_preview_command_carries_the_preference_arguments(demo, tmp_path, monkeypatch):
    page = demo.page
    # the bundled model may be a link to a folder outside this checkout: allow where it really lives
    real = (ROOT / "models" / "SmolLM2-135M-Instruct").resolve().parent
    monkeypatch.setenv("TUNEBOARD_ROOTS", f"{tmp_path}{os.pathsep}{real}")
    ov = {page.w("train", "stage"): "dpo", page.w("train", "dataset"): ["dpo_en_demo"],
          page.w("train", "pref_loss"): "simpo", page.w("train", "simpo_gamma"): 0.8,
          page.w("train", "pref_beta"): 2.0, page.w("train", "output_dir"): "simpo_run"}
    kv = _command(demo, ov)
    assert kv["stage"] == "dpo" and kv["pref_loss"] == "simpo" and kv["simpo_gamma"] == "0.8"
    assert kv["pref_beta"] == "2.0"
    ov = {page.w("train", "stage"): "kto", page.w("train", "dataset"): ["kto_en_demo"],
          page.w("train", "kto_rejected_weight"): 1.3, page.w("train", "output_dir"): "kto_run"}
    kv = _command(demo, ov)
    assert kv["stage"] == "kto" and kv["dataset"] == "kto_en_demo" and kv["kto_rejected_weight"] == "1.3"
    assert "kto_chosen_weight" not in kv  # unchanged values stay out
    ov = {page.w("train", "stage"): "rm", page.w("train", "dataset"): ["dpo_en_demo"],
          page.w("train", "output_dir"): "rm_run"}
    assert _command(demo, ov)["stage"] == "rm"
    ov = {page.w("train", "stage"): "kto", page.w("train", "dataset"): ["kto_en_demo"],
          page.w("train", "per_device_train_batch_size"): 1, page.w("train", "output_dir"): "kto_run"}
    res = call(demo, page.c("train.preview"), overrides=ov)
    assert value(res[page.c("train.command")]) == ""  # refused, with the reason
    assert "at least 2" in value(res[page.c("train.message")])


def _command(demo, ov) -> dict:
    page = demo.page
    cmd = value(call(demo, page.c("train.preview"), overrides=ov)[page.c("train.command")])
    argv = shlex.split(cmd)
    assert argv[1] == "train", cmd
    return dict(a.split("=", 1) for a in argv if "=" in a)


def test_dataset_preview_marks_kto_labels(demo):
    page = demo.page
    ov = {page.w("train", "stage"): "kto", page.w("train", "dataset"): ["kto_en_demo"],
          page.w("train", "dataset_dir"): str(ROOT / "data")}
    res = call(demo, page.c("train.preview_dataset"), overrides=ov)
    marked = res[page.c("train.preview_rendered")]["value"]
    labels = [lab for _, lab in marked if lab]
    assert labels and set(labels) <= {"desirable", "undesirable"}
    assert res[page.c("train.preview_rendered")]["color_map"].keys() == set(labels)  # the legend: these alone
    answers = [s for s, lab in marked if lab]
    assert all(s.endswith("<|im_end|>") for s in answers)
    assert Path(ROOT / "data" / "kto_en_demo.json").is_file()

"""Dataset inspector on a dataset written here: length distribution vs cutoff_len (the truncated count is the one
training reports), dropped records with their reasons, duplicates and conflicting answers, languages, and the
rendered sample with its trained tokens."""
from __future__ import annotations

import json

import pytest

from engine.cli import main as cli
from engine.config import load_config
from engine.insight.inspector import inspect_dataset, language_of, render
from engine.train import rundir
from engine.train.workflow import run as train
from engine.errors import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspect")
    rows = [{"instruction": "Hi", "input": "", "output": "Hello."}] * 3                    # 3 copies: 2 duplicates
    rows += [{"instruction": "Hi", "input": "", "output": "Hey there."}]                   # same prompt, other answer
    rows += [{"instruction": "Translate: good morning", "input": "", "output": "早上好，祝你今天愉快。"}]
    rows += [{"instruction": "用一句话介绍长城。", "input": "", "output": "长城是中国古代修建的军事防御工程，绵延万里。"}]
    rows += [{"instruction": f"Write about topic {i}.", "input": "",
              "output": " ".join(["The quick brown fox jumps over the lazy dog."] * (2 + i))} for i in range(6)]
    rows += [{"instruction": "Empty answer", "input": "", "output": ""}]                  # dropped by the converter
    (d / "mix.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"mix": {"file_name": "mix.json"}}))
    return d


def test_inspector_report(data, tiny_model, tmp_path):
    values = {"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": "mix",
              "dataset_dir": str(data), "cutoff_len": 40, "output_dir": str(tmp_path / "run")}
    rep = inspect_dataset(values=values)
    assert (rep["read"], rep["kept"], rep["dropped"]) == (13, 12, 1)
    assert rep["dropped_reasons"] == {"empty answer": 1}
    assert rep["duplicates"] == 2 and rep["duplicate_groups"] == 1 and rep["conflicting_answers"] == 1
    assert rep["duplicate_examples"][0]["messages"][-1]["content"] == "Hello."
    assert rep["languages"]["latin"] == 10 and rep["languages"]["zh"] == 1 and rep["languages"]["mixed"] == 1
    assert sum(b["count"] for b in rep["histogram"]) == 12
    L = rep["lengths"]
    assert L["min"] <= L["p50"] <= L["p95"] <= L["max"] and L["max"] > 40
    assert rep["suggested_cutoff_len"] >= L["p99"] and rep["suggested_cutoff_len"] & (rep["suggested_cutoff_len"] - 1) == 0
    # the first sample as the model sees it: the prompt untrained, the answer + end-of-turn trained
    assert rep["sample"][0][1] is False and "<|im_start|>user\nHi" in rep["sample"][0][0]
    assert rep["sample"][1] == ["Hello.<|im_end|>", True]
    # the same truncation count as a real training run on the same recipe
    train(load_config(None, {**{k: str(v) for k, v in values.items()}, "max_steps": "1", "finetuning_type": "lora",
                             "plot_loss": "false"}))
    stats = json.loads((tmp_path / "run" / rundir.STATS).read_text())
    assert rep["truncated"] == stats["truncated"] > 0 and rep["kept"] == stats["kept"]
    text = render(rep)
    assert "cut by cutoff_len" in text and "[[Hello.<|im_end|>]]" in text
    assert "重复" in render(rep, "zh")


def test_language_of():
    assert language_of("The cat sat on the mat.") == "latin"
    assert language_of("今天天气很好。") == "zh"
    assert language_of("我今天用 Python 写了一个很小的程序。") == "zh"  # one English word in a Chinese sentence
    assert language_of("Hello, my friend, 你好") == "mixed"
    assert language_of("こんにちは、世界") == "ja"
    assert language_of("Привет, как дела?") == "cyrillic"
    assert language_of("123 !!") == "none"


def test_inspector_cli_and_errors(data, tiny_model, tmp_path, capsys):
    import yaml
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": "mix",
                                   "dataset_dir": str(data)}))
    assert cli(["doctor", "--inspect", str(cfg), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["kept"] == 12 and rep["truncated"] == 0 and rep["suggested_cutoff_len"] is None
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        inspect_dataset(values={"dataset": "nope", "dataset_dir": str(data)})
    assert cli(["doctor", "--inspect", str(cfg), "dataset=nope"]) == 2
    assert "nope" in capsys.readouterr().err

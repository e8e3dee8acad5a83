"""One data path (engine.data.records.load_records): training, the dataset inspector, the doctor's duplicate scan
and the web UI's preview see the same records for the same args — dataset_info's num_samples, max_samples,
skipped records and identity substitution included. One trained-token marking for both previews, and one
template resolution (resolve_template) for training, the inspector, the estimate, the preview, chat and export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.config import load_config
from engine.data.processing import CHOSEN, REJECTED, TRAINED, mark_trained
from engine.data.records import duplicates, load_records
from engine.data.templates import get_template, resolve_template, template_name
from engine.train import rundir
from engine.errors import UserError
from kits.args import as_args

WHO = [{"instruction": "Who are you?", "input": "", "output": "I am {{name}}."},    # 0
       {"instruction": "Who are you?", "input": "", "output": "I am Nova."},        # 1: = 0 once {{name}} is Nova
       {"instruction": "Empty", "input": "", "output": ""},                         # 2: skipped, empty answer
       {"instruction": "Hi", "input": "", "output": "Hello from {{author}}."}]      # 3
# num_samples 6 repeats the file to records 0 1 2 3 0 1; max_samples 5 then keeps 0 1 2 3 0
ARGS = {"dataset": "who", "identity_name": "Nova", "identity_author": "Ann", "max_samples": 5}


@pytest.fixture(scope="module")
def ddir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("records")
    (d / "who.json").write_text(json.dumps(WHO), encoding="utf-8")
    (d / "pairs.json").write_text(json.dumps([{"instruction": "Pick", "input": "", "chosen": "good {{name}}",
                                               "rejected": "bad"}]), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"who": {"file_name": "who.json", "num_samples": 6},
                                                     "pairs": {"file_name": "pairs.json", "ranking": True}}))
    return d


@pytest.fixture(scope="module")
def tok(bundled_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(bundled_model)


def answers(rows):
    return [r["messages"][-1]["content"] for r in rows]


def test_the_order_is_read_repeat_cap_convert_then_identity(ddir):
    recs = load_records(as_args({**ARGS, "dataset_dir": str(ddir)}), "sft")
    assert recs.report == {"who": {"total": 5, "kept": 4, "skipped": {"empty answer": 1}}}
    assert recs.sources == [("who", 0), ("who", 1), ("who", 3), ("who", 0)]
    assert answers(recs.rows) == ["I am Nova.", "I am Nova.", "Hello from Ann.", "I am Nova."]
    # record 0 and 1 are the same text once substituted: one duplicate; num_samples' copy of 0 is deliberate
    assert duplicates(recs) == {"samples": 3, "duplicates": 1, "groups": [[0, 1]]}
    whole = load_records(as_args({**ARGS, "max_samples": None, "dataset_dir": str(ddir)}), "sft")
    assert whole.report["who"] == {"total": 6, "kept": 5, "skipped": {"empty answer": 1}}
    assert duplicates(whole)["duplicates"] == 1
    # the same values read from their text (as a recipe gives them) get the same records
    ns = load_config(None, {**{k: str(v) for k, v in ARGS.items()}, "dataset_dir": str(ddir)}, finalize=False)
    assert load_records(ns).rows == recs.rows
    with pytest.raises(UserError, match="stage dpo cannot train on it"):
        load_records(as_args({**ARGS, "dataset_dir": str(ddir)}), "dpo")
    with pytest.raises(UserError, match=r"unknown dataset 'wh'.*Did you mean 'who'"):
        load_records(as_args({"dataset": "wh", "dataset_dir": str(ddir)}), "sft")


def test_training_inspector_doctor_preview_and_chat_see_the_same(ddir, tiny_model, tmp_path, monkeypatch):
    from engine.chat import ChatEngine
    from engine.insight.doctor import diagnose
    from engine.insight.inspector import inspect_dataset
    from engine.train.workflow import run as train
    from webui.train_tab import preview_dataset

    monkeypatch.setenv("TUNEBOARD_ROOTS", str(ddir))  # the UI may read the test's dataset folder
    out = tmp_path / "run"
    # no template given: every consumer resolves the model's own (chatml, from its tokenizer) the same way
    values = {**ARGS, "model_name_or_path": str(tiny_model), "dataset_dir": str(ddir), "cutoff_len": 64,
              "output_dir": str(out)}
    train(load_config(None, {**{k: str(v) for k, v in values.items()}, "max_steps": "1", "plot_loss": "false",
                             "finetuning_type": "lora"}))
    stats = json.loads((out / rundir.STATS).read_text())
    results = json.loads((out / rundir.RESULTS).read_text())
    assert (stats["total"], stats["kept"], stats["dropped"]) == (5, 4, 1) and results["template"] == "chatml"

    rep = inspect_dataset(values=values)
    assert (rep["read"], rep["kept"], rep["dropped"], rep["truncated"]) == (5, 4, 1, stats["truncated"])
    assert rep["per_dataset"] == {"who": {"read": 5, "kept": 4, "dropped": 1}}
    assert (rep["duplicates"], rep["duplicate_groups"]) == (1, 1) and rep["template"] == "chatml"
    assert rep["duplicate_examples"][0]["messages"][-1]["content"] == "I am Nova."

    ev = diagnose(out)["evidence"]
    assert ev["duplicates"] == 1 and ev["duplicates_pct"] == pytest.approx(100 / 3, abs=0.01)

    info, raw, marked, pages = preview_dataset(values, 1, "en")
    assert pages == 2 and info[0] == ("preview_info", {"dataset": "who", "total": 4, "page": 1, "pages": 2})
    assert info[1][0] == "preview_skipped" and info[1][1]["n"] == 1 and info[1][1]["total"] == 5
    assert raw == [WHO[0], WHO[1]]  # the raw records behind the page's samples, skipped ones left out
    first = marked[:marked.index(("\n\n────────\n\n", None))]
    # the inspector's sample 0 and the preview's first sample are the same spans from the same marking
    assert [[s, lab is not None] for s, lab in first] == rep["sample"]
    assert ("I am Nova.<|im_end|>", "trained") in first
    info2, raw2, marked2, _ = preview_dataset(values, 2, "en")
    assert info2[0][1]["page"] == 2 and raw2 == [WHO[3], WHO[0]]
    assert ("Hello from Ann.<|im_end|>", "trained") in marked2

    chat = ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(out)]}, "infer"))
    assert chat.template_name == "chatml" and chat.tokenizer.padding_side == "right"
    with pytest.raises(UserError, match="stage dpo cannot train on it"):  # the preview refuses what training would
        preview_dataset({**values, "stage": "dpo"}, 1, "en")


def test_mark_trained_for_each_stage(ddir, tok):
    tpl = get_template("chatml", tok)
    row = load_records(as_args({**ARGS, "dataset_dir": str(ddir)}), "sft").rows[0]
    spans = mark_trained(row, "sft", tok, tpl, as_args({"cutoff_len": 64}))
    assert spans == [("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n", None),
                     ("I am Nova.<|im_end|>", TRAINED)]
    with_prompt = mark_trained(row, "sft", tok, tpl, as_args({"cutoff_len": 64, "train_on_prompt": True}))
    assert [k for _, k in with_prompt] == [TRAINED] and with_prompt[0][0] == "".join(s for s, _ in spans)
    cut = mark_trained(row, "sft", tok, tpl, as_args({"cutoff_len": 12}))  # cutoff_len applies as in training
    assert len(tok.encode("".join(s for s, _ in cut), add_special_tokens=False)) <= 12
    pair = load_records(as_args({"dataset": "pairs", "identity_name": "Nova", "dataset_dir": str(ddir)}), "dpo").rows[0]
    kinds = mark_trained(pair, "dpo", tok, tpl, as_args({}))
    assert [k for _, k in kinds] == [None, CHOSEN, None, None, REJECTED]
    assert kinds[1][0] == "good Nova<|im_end|>" and kinds[0][0] == kinds[3][0]
    assert mark_trained({"text": "Once."}, "pt", tok, tpl, as_args({})) == [("Once.<|im_end|>", TRAINED)]


def test_template_resolution_order_and_the_tokenizer_fix(tiny_model, tmp_path, bundled_model):
    from transformers import AutoTokenizer
    run = tmp_path / "adapter_run"
    run.mkdir()
    (run / "all_results.json").write_text('{"template": "alpaca"}')
    base = {"model_name_or_path": str(tiny_model)}
    def name(**values):
        return template_name(as_args({**base, **values}, "infer"))
    assert name() == "chatml"                                                  # the model folder's own
    assert name(adapter_name_or_path=[str(run)]) == "alpaca"                   # what the adapter trained with
    assert name(adapter_name_or_path=str(run), template="qwen") == "qwen"      # explicit wins
    assert name(model_name_or_path=str(tmp_path)) is None                      # unknown: get_template decides
    t = AutoTokenizer.from_pretrained(bundled_model)
    t.pad_token, t.padding_side = None, "left"
    tpl = resolve_template(as_args({**base, "template": "qwen", "default_system": "Mine."}, "infer"), t)
    assert tpl.name == "qwen" and tpl.render([{"role": "user", "content": "q"}]).startswith(
        "<|im_start|>system\nMine.<|im_end|>")
    assert t.pad_token == t.eos_token == "<|im_end|>" and t.padding_side == "right"


def test_training_and_the_inspector_use_the_adapters_template(ddir, tiny_model, tiny_adapter, tmp_path):
    """Before, training and the inspector ignored the template an adapter was trained with (chat and export used
    it): continuing an adapter could silently switch its format. Now all of them take it."""
    from engine.insight.estimate import data_facts
    from engine.insight.inspector import inspect_dataset
    from engine.train.workflow import run as train
    run = tmp_path / "adapter_run"
    shutil.copytree(tiny_adapter, run)
    (run / "all_results.json").write_text('{"template": "alpaca"}')
    values = {"model_name_or_path": str(tiny_model), "adapter_name_or_path": str(run), "dataset": "who",
              "dataset_dir": str(ddir), "cutoff_len": 128, "output_dir": str(tmp_path / "more")}
    assert inspect_dataset(values=values)["template"] == "alpaca"
    ns = load_config(None, {**{k: str(v) for k, v in values.items()}, "max_steps": "1", "plot_loss": "false"})
    assert data_facts(ns)["template"] == "alpaca"
    train(ns)
    assert json.loads((tmp_path / "more" / rundir.RESULTS).read_text())["template"] == "alpaca"

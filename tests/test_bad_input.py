"""Bad input gets a clear message that names the file, line or field and what to do, never a traceback:
broken dataset files, odd records, bad YAML values, model and adapter folders that cannot work. Plus
property-based tests: any JSON-shaped record converts to the standard form or is refused with a UserError.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.errors import ConfigError
from engine.data import readers
from engine.data.converters import convert, convert_row
from engine.data.loader import load_examples
from engine.data.registry import _parse_entry, dataset_stage
from engine.train import rundir
from engine.errors import UserError
from kits.args import as_args

ROWS = [{"instruction": "你好，世界是什么？", "input": "", "output": "世界很大。"},
        {"instruction": "What is 2 plus 2?", "input": "", "output": "4."}]


def dataset(tmp_path: Path, name: str, payload: bytes | str, entry: dict | None = None) -> Path:
    """A dataset folder with one file and its dataset_info.json entry (alpaca unless `entry` says otherwise)."""
    d = tmp_path / "ds"
    d.mkdir(exist_ok=True)
    (d / name).write_bytes(payload if isinstance(payload, bytes) else payload.encode("utf-8"))
    info = {"bad": {"file_name": name, **(entry or {})}}
    (d / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return d


def load_error(d: Path, stage: str = "sft") -> str:
    with pytest.raises(UserError) as e:
        load_examples(["bad"], as_args({"dataset_dir": str(d)}), stage)
    return str(e.value)


# ---------------------------------------------------------------- dataset files
@pytest.mark.parametrize("name,payload,expect", [
    ("gbk.json", json.dumps(ROWS, ensure_ascii=False).encode("gbk"), r"gbk\.json: not UTF-8 .*line 1, column \d+"),
    ("gbk.jsonl", b"".join(json.dumps(r, ensure_ascii=False).encode("gbk") + b"\n" for r in ROWS[::-1]),
     r"gbk\.jsonl: not UTF-8 at line 2, column \d+"),
    ("utf16.json", json.dumps(ROWS, ensure_ascii=False).encode("utf-16"), r"utf16\.json: UTF-16 text"),
    ("utf16le.jsonl", json.dumps(ROWS[0]).encode("utf-16-le"), r"utf16le\.jsonl: UTF-16 text"),
])
def test_wrong_encoding_is_named_with_the_fix(tmp_path, name, payload, expect):
    msg = load_error(dataset(tmp_path, name, payload))
    assert re.search(expect, msg), msg
    assert "save the file as UTF-8" in msg and "iconv" in msg


def test_truncated_json_names_line_and_says_truncated(tmp_path):
    text = json.dumps(ROWS * 3, ensure_ascii=False, indent=1)
    msg = load_error(dataset(tmp_path, "cut.json", text[: len(text) // 2]))
    assert "cut.json: invalid JSON at line" in msg and "it looks truncated" in msg
    lines = "".join(json.dumps(r) + "\n" for r in ROWS * 2)
    msg = load_error(dataset(tmp_path, "cut.jsonl", lines[:-12]))
    assert "cut.jsonl: invalid JSON at line 4" in msg and "truncated file?" in msg
    # an error in the middle is not called a truncation
    msg = load_error(dataset(tmp_path, "mid.json", '[{"instruction": "a", "output" "b"}, {"instruction": "c"}]'))
    assert "mid.json: invalid JSON at line 1, column 32" in msg and "truncated" not in msg.split("mid.json")[1]


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    """The real limit is 16 MiB per line; lowered here so no big file is written. readline() is bounded, so a
    1 GB line costs no more memory than the limit."""
    monkeypatch.setenv(readers.MAX_LINE_ENV, "4096")
    big = json.dumps({"instruction": "x" * 10_000, "output": "y"})
    d = dataset(tmp_path, "big.jsonl", json.dumps(ROWS[1]) + "\n" + big + "\n")
    msg = load_error(d)
    assert "big.jsonl: line 2 is longer than 4096 bytes" in msg and readers.MAX_LINE_ENV in msg
    d = dataset(tmp_path, "big.txt", "short line\n" + "z" * 5000, {"columns": {"prompt": "text"}})
    assert "big.txt: line 2 is longer than 4096 bytes" in load_error(d, "pt")
    # exactly at the limit is fine
    ok = json.dumps({"instruction": "q" * (4096 - 40), "output": "a"})
    assert len(ok.encode()) <= 4096
    ok_dir = dataset(tmp_path, "ok.jsonl", ok + "\n")
    assert len(load_examples(["bad"], as_args({"dataset_dir": str(ok_dir)}), "sft")) == 1
    # a whole-document .json is parsed at once: it has a size cap of its own
    monkeypatch.setenv(readers.MAX_JSON_ENV, "200")
    msg = load_error(dataset(tmp_path, "doc.json", json.dumps(ROWS * 5)))
    assert "doc.json" in msg and "more than one .json document may hold (200 bytes)" in msg and ".jsonl" in msg
    assert readers.MAX_LINE_BYTES == 16 << 20 and readers.MAX_JSON_BYTES == 512 << 20  # the documented limits


def test_missing_and_nested_fields(tmp_path):
    msg = load_error(dataset(tmp_path, "m.json", json.dumps([{"question": "q", "answer": "a"}])))
    assert "column 'instruction' (columns.prompt) is not in the data" in msg and "answer, question" in msg
    assert '"columns"' in msg  # says how to map it
    nested = [{"instruction": {"en": "hello"}, "output": "hi"}, {"instruction": "ok", "output": ["a", "b"]}]
    msg = load_error(dataset(tmp_path, "n.json", json.dumps(nested)))
    assert "column 'instruction' holds an object, not text" in msg and "column 'output' holds a list" in msg
    assert "record 1" in msg and "dataset 'bad'" in msg and "n.json" in msg


def test_wrong_types_and_empty_or_broken_conversations(tmp_path):
    sharegpt = {"formatting": "sharegpt"}
    rows = [{"conversations": []},
            {"conversations": "human: hi"},
            {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"},
                               {"from": "gpt", "value": "c"}]},
            {"conversations": [{"from": "gpt", "value": "I start"}, {"from": "human", "value": "x"}]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "   "}]},
            {"conversations": [{"from": ["human"], "value": "q"}, {"from": "gpt", "value": "a"}]},
            {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "fine"}]}]
    d = dataset(tmp_path, "c.json", json.dumps(rows), sharegpt)
    ds = load_examples(["bad"], as_args({"dataset_dir": str(d)}), "sft")
    assert len(ds) == 1 and ds[0]["messages"][-1]["content"] == "fine"  # the one good record, the rest counted
    from engine.data.records import load_records
    report = load_records(as_args({"dataset_dir": str(tmp_path / "ds")}), "sft", ["bad"]).report
    assert report["bad"]["skipped"] == {"no messages": 1, "messages column holds text, not a list of turns": 1,
                                        "turns do not alternate user/assistant": 1,
                                        "conversation starts with the assistant": 1, "empty answer": 1,
                                        "unknown role ['human'] (set tags.role_tag / user_tag / assistant_tag)": 1}
    # when nothing is usable the message says why, with counts and the first bad record
    msg = load_error(dataset(tmp_path, "e.json", json.dumps([{"conversations": []}] * 3), sharegpt))
    assert "none of its 3 samples is usable (3 x no messages; the first is record 1)" in msg
    alt = [{"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}]
    assert "turns do not alternate" in load_error(dataset(tmp_path, "a.json", json.dumps(alt * 2), sharegpt))
    # numbers in text columns are read as text (common in arithmetic data), true/false are not
    nums = [{"instruction": 2, "input": 3, "output": 5}, {"instruction": "x", "output": True}]
    ds = load_examples(["bad"], as_args({"dataset_dir": str(dataset(tmp_path, "t.json", json.dumps(nums)))}), "sft")
    assert len(ds) == 1 and ds[0]["messages"] == [{"role": "user", "content": "2\n3"},
                                                  {"role": "assistant", "content": "5"}]


def test_bad_data_through_the_cli(tiny_model, tmp_path, capsys):
    from engine.cli import main as cli
    d = dataset(tmp_path, "gbk.jsonl", json.dumps(ROWS[0], ensure_ascii=False).encode("gbk") + b"\n")
    out = tmp_path / "run"
    rc = cli(["train", f"model_name_or_path={tiny_model}", "template=chatml", "dataset=bad", f"dataset_dir={d}",
              f"output_dir={out}", "max_steps=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "gbk.jsonl: not UTF-8 at line 1" in err
    st = rundir.read_status(out)
    assert st["state"] == "failed" and "gbk.jsonl" in st["error"]  # the UI shows the same message


# ---------------------------------------------------------------- YAML recipes
@pytest.mark.parametrize("text,field,expect", [
    ("learning_rte: 1.0e-4\n", "learning_rte", "unknown argument .*Did you mean: learning_rate"),
    ("per_device_batch_size: 8\n", "per_device_batch_size", "Did you mean: .*per_device_train_batch_size"),
    ("lora: {rank: 8}\n", "lora", "unknown argument"),
    ("max_steps: ten\n", "max_steps", "expected a whole number, got 'ten'"),
    ("lora_rank: 8.5\n", "lora_rank", "expected a whole number"),
    ("bf16: maybe\n", "bf16", "expected true or false"),
    ("dataset: {name: identity}\n", "dataset", "expected"),
    ("learning_rate: [1, 2]\n", "learning_rate", "expected a number"),
    ("learning_rate: .nan\n", "learning_rate", "expected a number"),
    ("max_steps: .inf\n", "max_steps", "expected a whole number"),
    ("learning_rate: -0.001\n", "learning_rate", "below the smallest allowed value 0"),
    ("learning_rate: 1.0e+9\n", "learning_rate", "above the largest allowed value 10"),
    ("per_device_train_batch_size: 0\n", "per_device_train_batch_size", "below the smallest allowed value 1"),
    ("per_device_train_batch_size: 1000000\n", "per_device_train_batch_size", "above the largest allowed value 4096"),
    ("num_train_epochs: 1.0e+12\n", "num_train_epochs", "above the largest"),
    ("cutoff_len: -5\n", "cutoff_len", "below the smallest allowed value 4"),
    ("lora_dropout: 1.5\n", "lora_dropout", "above the largest allowed value 1"),
    ("seed: -1\n", "seed", "below the smallest allowed value 0"),
    ("stage: sfft\n", "stage", "not one of pt, sft, rm, dpo, kto, grpo. Did you mean 'sft'"),
])
def test_bad_yaml_values_name_the_field(tmp_path, text, field, expect):
    p = tmp_path / "r.yaml"
    p.write_text("dataset: identity\n" + text if not text.startswith("dataset") else text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == field
    assert re.search(expect, str(e.value)), str(e.value)
    assert str(e.value).startswith(field + ":")


def test_broken_yaml_files(tmp_path):
    cases = {"tab.yaml": ("dataset: identity\nlearning_rate:\t[1\n", r"tab\.yaml: not valid YAML at line \d+"),
             "list.yaml": ("- dataset: identity\n", r"list\.yaml: the top level must be a mapping"),
             "gbk.yaml": ("dataset: identity\nidentity_name: 小明\n".encode("gbk"), r"gbk\.yaml: not UTF-8"),
             "missing.yaml": (None, r"missing\.yaml: no such config file")}
    for name, (content, expect) in cases.items():
        p = tmp_path / name
        if content is not None:
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ConfigError) as e:
            load_config(p)
        assert re.search(expect, str(e.value)), str(e.value)


def test_bad_yaml_through_the_cli(tmp_path, capsys):
    from engine.cli import main as cli
    p = tmp_path / "r.yaml"
    p.write_text("dataset: identity\nlerning_rate: 1e-4\n")
    rc = cli(["train", str(p)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"lerning_rate: unknown argument ({p}). Did you mean: learning_rate?" in err


# ---------------------------------------------------------------- models and adapters
def _cli_train(capsys, tiny_data: Path, out: Path, *extra) -> str:
    from engine.cli import main as cli
    rc = cli(["train", "template=chatml", "dataset=ok", f"dataset_dir={tiny_data}", f"output_dir={out}",
              "max_steps=1", "cutoff_len=64", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ok-data")
    (d / "ok.json").write_text(json.dumps(ROWS * 4, ensure_ascii=False), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"ok": {"file_name": "ok.json"}}), encoding="utf-8")
    return d


def test_model_folders_that_cannot_work(tiny_model, tiny_data, tmp_path, capsys):
    err = _cli_train(capsys, tiny_data, tmp_path / "a", f"model_name_or_path={tmp_path / 'nope'}")
    assert str(tmp_path / "nope") in err and "tuneboard download" in err
    empty = tmp_path / "no-weights"
    shutil.copytree(tiny_model, empty)
    for f in empty.glob("*.safetensors"):
        f.unlink()
    err = _cli_train(capsys, tiny_data, tmp_path / "b", f"model_name_or_path={empty}")
    assert f"{empty}: no model weights" in err and "download the model again" in err
    assert rundir.read_status(tmp_path / "b")["state"] == "failed"
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    err = _cli_train(capsys, tiny_data, tmp_path / "c", f"model_name_or_path={no_tok}")
    assert f"{no_tok}: no tokenizer files" in err


@pytest.fixture(scope="module")
def other_adapter(tmp_path_factory, tiny_model) -> Path:
    """A LoRA adapter trained on a model of another width (hidden 32 instead of 64)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from modelkit import build_lora_adapter
    base = tmp_path_factory.mktemp("narrow") / "narrow-llama"
    cfg = LlamaConfig.from_pretrained(tiny_model)
    cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads = 32, 64, 2, 1
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(base)
    return build_lora_adapter(base, base.parent / "adapter")


def test_adapter_that_does_not_fit_the_base(tiny_model, tiny_data, other_adapter, tiny_adapter, tmp_path, capsys):
    err = _cli_train(capsys, tiny_data, tmp_path / "a", f"model_name_or_path={tiny_model}",
                     f"adapter_name_or_path={other_adapter}")
    assert f"adapter_name_or_path: {other_adapter} does not fit the base model {tiny_model}" in err
    assert "weight shapes do not match" in err and "trained on" in err
    # inference (chat, eval, API) loads through the same path
    from engine.chat import ChatEngine
    with pytest.raises(UserError, match="does not fit the base model"):
        ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(other_adapter)]},
                           "infer"))
    # an adapter for modules this model does not have (a GPT-2 style one)
    gpt2_style = tmp_path / "gpt2-style"
    shutil.copytree(tiny_adapter, gpt2_style)
    cfg = json.loads((gpt2_style / "adapter_config.json").read_text())
    cfg["target_modules"] = ["c_attn", "c_proj"]
    (gpt2_style / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="does not fit the base model.*target modules do not exist"):
        ChatEngine(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(gpt2_style)]}, "infer"))
    # a folder that is no adapter at all
    err = _cli_train(capsys, tiny_data, tmp_path / "b", f"model_name_or_path={tiny_model}",
                     f"adapter_name_or_path={tiny_model}")
    assert "is a full model, not a LoRA adapter" in err


# ---------------------------------------------------------------- property-based: the format converters
ENTRIES = {
    "alpaca": {"file_name": "x.json", "columns": {"history": "history", "system": "system"}},
    "sharegpt": {"file_name": "x.json", "formatting": "sharegpt", "columns": {"system": "system"}},
    "openai": {"file_name": "x.json", "formatting": "openai", "columns": {"messages": "messages"}},
    "dpo": {"file_name": "x.json", "ranking": True},
    "dpo_sharegpt": {"file_name": "x.json", "ranking": True, "formatting": "sharegpt",
                     "columns": {"chosen": "chosen", "rejected": "rejected"}},
    "pt": {"file_name": "x.json", "columns": {"prompt": "text"}},
}
ATTRS = {k: _parse_entry(k, v, Path("dataset_info.json"), Path(".")) for k, v in ENTRIES.items()}
KEYS = st.sampled_from(["instruction", "input", "output", "conversations", "messages", "system", "history",
                        "chosen", "rejected", "text", "from", "value", "role", "content"]) | st.text(max_size=5)
LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | \
    st.sampled_from(["human", "gpt", "user", "assistant", "system", "observation"])
JSONISH = st.recursive(LEAF, lambda c: st.lists(c, max_size=4) | st.dictionaries(KEYS, c, max_size=4), max_leaves=10)
TURN = st.dictionaries(st.sampled_from(["from", "value", "role", "content"]) | st.text(max_size=3), JSONISH, max_size=3)
ROW = st.dictionaries(KEYS, JSONISH | st.lists(TURN, max_size=5), max_size=7)
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def assert_standard(out: dict, stage: str) -> None:
    if stage == "pt":
        assert set(out) == {"text"} and isinstance(out["text"], str) and out["text"].strip()
        return
    assert isinstance(out["system"], str)
    msgs = out["messages"]
    assert msgs and all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in msgs)
    assert [m["role"] for m in msgs] == [("user", "assistant")[i % 2] for i in range(len(msgs))]  # alternating
    assert all(m["content"].strip() for m in msgs if m["role"] == "assistant")
    if stage == "sft":
        assert msgs[-1]["role"] == "assistant" and set(out) == {"system", "messages"}
    else:
        assert msgs[-1]["role"] == "user" and out["chosen"].strip() and out["rejected"].strip()


@PROPERTY
@given(name=st.sampled_from(sorted(ATTRS)), row=ROW)
def test_any_record_converts_or_is_a_user_error(name, row):
    attr = ATTRS[name]
    stage = dataset_stage(attr)
    try:
        out = convert_row(attr, row, stage)
    except UserError as e:
        assert str(e)  # a reason to count and show
        return
    assert_standard(out, stage)
    json.dumps(out)  # plain data, ready for datasets.Dataset.from_list


@PROPERTY
@given(name=st.sampled_from(sorted(ATTRS)), rows=st.lists(ROW, max_size=4))
def test_any_file_converts_with_counted_skips_or_is_a_user_error(name, rows):
    attr = ATTRS[name]
    stage = dataset_stage(attr)
    try:
        out, skipped = convert(attr, rows, stage)
    except UserError as e:
        assert str(e).startswith(f"dataset {name!r}")  # names the dataset (and the column, when one is missing)
        return
    assert len(out) + sum(skipped.values()) == len(rows)  # nothing dropped silently
    for o in out:
        assert_standard(o, stage)


TEXT = st.text(min_size=1, max_size=20).filter(lambda s: s.strip())


@PROPERTY
@given(turns=st.lists(st.tuples(st.text(max_size=20), TEXT), min_size=1, max_size=4), system=st.text(max_size=10))
def test_well_formed_conversations_keep_every_turn(turns, system):
    row = {"conversations": [m for q, a in turns for m in ({"from": "human", "value": q}, {"from": "gpt", "value": a})],
           "system": system}
    out = convert_row(ATTRS["sharegpt"], row, "sft")
    assert out["messages"] == [m for q, a in turns for m in ({"role": "user", "content": q},
                                                             {"role": "assistant", "content": a})]
    assert out["system"] == system


@PROPERTY
@given(q=st.text(max_size=20), inp=st.text(max_size=20), a=TEXT | st.integers() | st.floats(allow_nan=False))
def test_well_formed_alpaca_rows_keep_their_text(q, inp, a):
    out = convert_row(ATTRS["alpaca"], {"instruction": q, "input": inp, "output": a}, "sft")
    assert out["messages"][0] == {"role": "user", "content": "\n".join(s for s in (q, inp) if s)}
    expected = a if isinstance(a, str) else str(a)
    assert out["messages"][1] == {"role": "assistant", "content": expected}

"""dataset_info.json: parsing, stages, and errors that name the file/line or dataset/key."""
from __future__ import annotations

import json

import pytest

from engine.data.registry import dataset_stage, list_datasets, load_dataset_info
from engine.errors import UserError

INFO = {
    "alpaca_x": {"file_name": "a.json"},
    "chat_x": {"file_name": "c.jsonl", "formatting": "sharegpt",
               "columns": {"messages": "conversations", "system": "system", "tools": "tools", "images": "images"},
               "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}},
    "openai_x": {"file_name": "o.json", "formatting": "openai", "columns": {"messages": "messages"}},
    "text_x": {"file_name": "t.jsonl", "columns": {"prompt": "text"}},
    "text_y": {"file_name": "t.jsonl", "columns": {"text": "body"}},
    "pref_x": {"file_name": "p.json", "ranking": True, "formatting": "sharegpt",
               "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
                           "kto_tag": "label"}},
    "hub_x": {"hf_hub_url": "someone/data", "split": "test", "num_samples": 10, "subset": "en"},
    "ms_x": {"ms_hub_url": "someone/data"},
    "folder_x": {"script_url": "folder"},
}


def write(tmp_path, obj) -> None:
    (tmp_path / "dataset_info.json").write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2))


def test_parses_llamafactory_schema(tmp_path):
    write(tmp_path, INFO)
    info = load_dataset_info(tmp_path)
    assert list(info) == list(INFO)
    a = info["alpaca_x"]
    assert (a.load_from, a.formatting, a.ranking, a.split) == ("file", "alpaca", False, "train")
    assert a.path() == tmp_path / "a.json"
    c = info["chat_x"]
    # tools is read (tool calling); images are tolerated and dropped (text-only studio)
    assert c.formatting == "sharegpt" and c.columns == {"messages": "conversations", "system": "system",
                                                       "tools": "tools"}
    assert c.tags["user_tag"] == "human" and c.tags["observation_tag"] == "observation"  # defaults filled
    o = info["openai_x"]
    assert o.formatting == "sharegpt" and o.tags["role_tag"] == "role" and o.tags["user_tag"] == "user"
    h = info["hub_x"]
    assert (h.load_from, h.hf_hub_url, h.split, h.num_samples, h.subset) == ("hf_hub", "someone/data", "test", 10, "en")
    assert info["ms_x"].load_from == "ms_hub"
    assert info["folder_x"].file_name == "folder" and info["folder_x"].load_from == "file"


def test_stages_and_listing(tmp_path):
    write(tmp_path, INFO)
    info = load_dataset_info(tmp_path)
    assert {n: dataset_stage(a) for n, a in info.items()} == {
        "alpaca_x": "sft", "chat_x": "sft", "openai_x": "sft", "text_x": "pt", "text_y": "pt", "pref_x": "dpo",
        "hub_x": "sft", "ms_x": "sft", "folder_x": "sft"}
    assert list_datasets(tmp_path, "pt") == ["text_x", "text_y"]
    assert list_datasets(tmp_path, "dpo") == ["pref_x"]
    assert "alpaca_x" in list_datasets(tmp_path, "sft") and "text_x" not in list_datasets(tmp_path, "sft")
    assert list_datasets(tmp_path) == list(INFO)


def test_malformed_json_names_file_line_and_column(tmp_path):
    write(tmp_path, '{\n  "a": {"file_name": "a.json"},\n  "b": {"file_name": "b.json",}\n}\n')
    with pytest.raises(UserError) as e:
        load_dataset_info(tmp_path)
    msg = str(e.value)
    assert "dataset_info.json" in msg and "line 3" in msg and "column" in msg
    # the UI's list is not silently emptied either
    with pytest.raises(UserError, match="line 3"):
        list_datasets(tmp_path)


def test_missing_info_file(tmp_path):
    with pytest.raises(UserError, match="dataset_info.json: not found"):
        load_dataset_info(tmp_path)


@pytest.mark.parametrize("entry, key", [
    ({"file_name": "a.json", "formatting": "alpacca"}, "formatting"),
    ({"file_name": "a.json", "ranking": "yes"}, "ranking"),
    ({"file_name": "a.json", "columns": ["instruction"]}, "columns"),
    ({"file_name": "a.json", "columns": {"respnose": "output"}}, "columns.respnose"),
    ({"file_name": "a.json", "columns": {"prompt": 3}}, "columns.prompt"),
    ({"file_name": "a.json", "tags": {"user_tg": "human"}}, "tags.user_tg"),
    ({"file_nmae": "a.json"}, "file_nmae"),
    ({"formatting": "alpaca"}, "file_name"),
    ({"file_name": "a.json", "num_samples": 0}, "num_samples"),
])
def test_wrong_entry_names_dataset_and_key(tmp_path, entry, key):
    write(tmp_path, {"good": {"file_name": "g.json"}, "broken": entry})
    with pytest.raises(UserError) as e:
        load_dataset_info(tmp_path)
    assert "'broken'" in str(e.value) and repr(key) in str(e.value)


def test_entry_not_an_object(tmp_path):
    write(tmp_path, {"broken": "a.json"})
    with pytest.raises(UserError, match="'broken' must be an object"):
        load_dataset_info(tmp_path)


def test_unknown_unrelated_keys_are_tolerated(tmp_path):
    write(tmp_path, {"x": {"file_name": "a.json", "om_hub_url": "x/y", "file_sha1": "abc", "comment": "mine"}})
    assert list(load_dataset_info(tmp_path)) == ["x"]

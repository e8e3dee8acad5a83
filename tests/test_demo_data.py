"""The demo datasets in data/, checked with plain json (independent of engine/data).

What a loader and an evaluator rely on: every registry entry points at a parseable file whose rows hold the mapped
columns; identity answers carry {{name}}; label tasks use only their allowed labels; test splits share nothing with
their train splits or any other demo dataset; and data/make_demo_data.py reproduces the committed files exactly.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
ENTRY_KEYS = {"file_name", "formatting", "ranking", "columns", "tags"}
COLUMN_KEYS = {"prompt", "query", "response", "system", "history", "messages", "chosen", "rejected", "text", "tools",
               "kto_tag", "answer"}
TAG_KEYS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag", "observation_tag", "function_tag"}
SHAREGPT_DEFAULT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                         "system_tag": "system"}
CJK = re.compile(r"[\u4e00-\u9fff]")
LABELS = {"sentiment_en": {"positive", "negative"}, "nli_zh": {"蕴含", "中性", "矛盾"}}
PAIRS = ["sentiment_en", "nli_zh", "arith"]


def read_rows(path: Path) -> list:
    text = path.read_text(encoding="utf-8")  # strict: invalid UTF-8 raises
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


@pytest.fixture(scope="module")
def info() -> dict:
    return json.loads((DATA / "dataset_info.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rows(info) -> dict[str, list]:
    return {name: read_rows(DATA / entry["file_name"]) for name, entry in info.items()}


def test_registry_uses_the_llamafactory_schema(info):
    expected = {"identity", "alpaca_en_demo", "alpaca_zh_demo", "c4_demo", "dpo_en_demo", "dpo_zh_demo",
                "sharegpt_demo", "messages_demo", "toolcall_demo", "kto_en_demo"} | {f"{p}_{s}" for p in PAIRS
                                                                                     for s in ("train", "test")}
    assert expected <= set(info)
    for name, entry in info.items():
        assert set(entry) <= ENTRY_KEYS, name
        assert entry.get("formatting", "alpaca") in {"alpaca", "sharegpt"}, name
        assert set(entry.get("columns", {})) <= COLUMN_KEYS, name
        assert set(entry.get("tags", {})) <= TAG_KEYS, name
        assert (DATA / entry["file_name"]).is_file(), f"{name}: {entry['file_name']} missing"
    formats = {info[n].get("formatting", "alpaca") for n in ("dpo_en_demo", "dpo_zh_demo")}
    assert formats == {"alpaca", "sharegpt"}, "the two preference sets must exercise both formats"
    assert all(info[n].get("ranking") for n in ("dpo_en_demo", "dpo_zh_demo"))
    assert info["c4_demo"]["columns"] == {"prompt": "text"}


def _check_conversation(name, msgs, tags, ranking):
    role, content = tags["role_tag"], tags["content_tag"]
    assert msgs and all(isinstance(m, dict) and isinstance(m.get(content), str) and m[content] for m in msgs), name
    if msgs[0][role] == tags["system_tag"]:
        msgs = msgs[1:]
    asks = {tags["user_tag"], tags.get("observation_tag")} - {None}
    answers = {tags["assistant_tag"], tags.get("function_tag")} - {None}
    roles = [m[role] for m in msgs]
    assert all(r in (asks if i % 2 == 0 else answers) for i, r in enumerate(roles)), f"{name}: roles must alternate"
    for i, r in enumerate(roles):  # a tool result answers a call; a call is valid JSON naming a function
        if "observation_tag" in tags and r == tags["observation_tag"]:
            assert roles[i - 1] == tags["function_tag"], name
        if "function_tag" in tags and r == tags["function_tag"]:
            calls = json.loads(msgs[i][content])
            assert all(c["name"] and isinstance(c["arguments"], dict) for c in (calls if isinstance(calls, list)
                                                                               else [calls])), name
    # preference prompts end on the user's turn (the answers are the chosen/rejected pair); SFT ends on the assistant
    assert len(msgs) % 2 == (1 if ranking else 0), name


def test_every_row_holds_its_mapped_columns(info, rows):
    for name, entry in info.items():
        data = rows[name]
        assert isinstance(data, list) and data, f"{name}: empty"
        cols = entry.get("columns", {})
        ranking = entry.get("ranking", False)
        for i, row in enumerate(data):
            where = f"{name} row {i}"
            assert isinstance(row, dict), where
            for key, col in cols.items():
                assert col in row, f"{where}: column {col!r} missing"
            if entry.get("formatting", "alpaca") == "alpaca":
                for key in ("prompt", "response", "chosen", "rejected"):
                    if key in cols:
                        assert isinstance(row[cols[key]], str) and row[cols[key]].strip(), f"{where}: empty {key}"
                if "query" in cols:
                    assert isinstance(row[cols["query"]], str), where
                if ranking:
                    assert row[cols["chosen"]] != row[cols["rejected"]], where
            else:
                tags = {**SHAREGPT_DEFAULT_TAGS, **entry.get("tags", {})}
                _check_conversation(where, row[cols["messages"]], tags, ranking)
                if "tools" in cols:
                    specs = json.loads(row[cols["tools"]])
                    assert all(s["name"] and s["parameters"]["type"] == "object" for s in specs), where
                if ranking:
                    for key in ("chosen", "rejected"):
                        answer = row[cols[key]]
                        assert answer[tags["role_tag"]] == tags["assistant_tag"] and answer[tags["content_tag"]], where


def test_kto_demo_labels_single_answers(info, rows):
    """LLaMA-Factory's kto_en_demo schema: messages ending with the assistant's answer, a boolean label column."""
    entry = info["kto_en_demo"]
    assert entry["columns"] == {"messages": "messages", "kto_tag": "label"} and not entry.get("ranking")
    data = rows["kto_en_demo"]
    assert 150 <= len(data) <= 250
    assert all(isinstance(r["label"], bool) and r["messages"][-1]["role"] == "assistant" for r in data)
    good = sum(r["label"] for r in data)
    assert 0.4 * len(data) <= good <= 0.7 * len(data), "both kinds, close to balanced"
    prompts = [r["messages"][0]["content"] for r in data]
    assert len(set(prompts)) == len(prompts), "unpaired: one answer per prompt"


def test_identity_answers_carry_the_placeholders(rows):
    data = rows["identity"]
    assert 90 <= len(data) <= 120
    assert all("{{name}}" in r["output"] for r in data)
    assert sum("{{author}}" in r["output"] for r in data) >= 0.8 * len(data)
    prompts = {r["instruction"] for r in data}
    assert {"Who are you?", "你是谁？", "What's your name?", "你叫什么名字？", "Introduce yourself.",
            "介绍一下你自己", "Who made you?", "谁开发了你？"} <= prompts
    chinese = sum(bool(CJK.search(r["instruction"])) for r in data)
    assert 0.4 <= chinese / len(data) <= 0.6
    for r in data:  # answers in the language of the question
        assert bool(CJK.search(r["output"])) == bool(CJK.search(r["instruction"])), r


@pytest.mark.parametrize("task", sorted(LABELS))
def test_label_tasks_use_only_allowed_labels(rows, task):
    allowed = LABELS[task]
    for split in ("train", "test"):
        data = rows[f"{task}_{split}"]
        counts = Counter(r["output"] for r in data)
        assert set(counts) == allowed, f"{task}_{split}: {counts}"
        assert min(counts.values()) == max(counts.values()), f"{task}_{split} is unbalanced: {counts}"
        for r in data:
            assert all(label in r["instruction"] for label in allowed), "instruction must name every label"


ARITH = re.compile(r"What is (\d+) ([+\-×]) (\d+)\? Answer with the number only\.")


def _problem(row) -> tuple:
    m = ARITH.fullmatch(row["instruction"])
    assert m, row["instruction"]
    a, op, b = int(m[1]), m[2], int(m[3])
    return (op, *sorted((a, b))) if op in "+×" else (op, a, b)


def test_arith_answers_are_correct(rows):
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}
    for split in ("train", "test"):
        for r in rows[f"arith_{split}"]:
            m = ARITH.fullmatch(r["instruction"])
            assert m, r["instruction"]
            assert r["output"] == str(ops[m[2]](int(m[1]), int(m[3])))
    for r in rows["arith_prompts"]:  # GRPO's prompts: the reference answer the rewards compare with
        m = ARITH.fullmatch(r["question"])
        assert m, r["question"]
        assert r["answer"] == str(ops[m[2]](int(m[1]), int(m[3])))
    assert len(rows["arith_prompts"]) == len({r["question"] for r in rows["arith_prompts"]}) == 160


def _prompt_keys(entry, data) -> set[str]:
    """Every prompt text a dataset trains on (instruction+input, or each user turn)."""
    cols = entry.get("columns", {})
    keys = set()
    for row in data:
        if "messages" in cols:
            tags = {**SHAREGPT_DEFAULT_TAGS, **entry.get("tags", {})}
            keys |= {m[tags["content_tag"]] for m in row[cols["messages"]]}
        elif "prompt" in cols:
            keys.add(row[cols["prompt"]])
            if "query" in cols and row[cols["query"]]:
                keys.add(row[cols["query"]])
                keys.add(row[cols["prompt"]] + "\n" + row[cols["query"]])
    return keys


@pytest.mark.parametrize("task", PAIRS)
def test_train_and_test_splits_are_disjoint(info, rows, task):
    train, test = rows[f"{task}_train"], rows[f"{task}_test"]
    assert 250 <= len(train) <= 350 and 60 <= len(test) <= 100
    key = lambda r: r["instruction"] + "\n" + r["input"]  # noqa: E731
    assert len({key(r) for r in train}) == len(train) and len({key(r) for r in test}) == len(test), "duplicates"
    test_items = {r["input"] or r["instruction"] for r in test}
    for name, entry in info.items():  # no test item is trained on anywhere, train split included
        if name.endswith("_test"):
            continue
        leaked = test_items & _prompt_keys(entry, rows[name])
        assert not leaked, f"{name} contains {task}_test items: {sorted(leaked)[:3]}"
    if task == "nli_zh":  # not even the premise of a test pair appears in training
        premise = lambda r: r["input"].split("\n")[0]  # noqa: E731
        assert not {premise(r) for r in test} & {premise(r) for r in train}
    if task == "arith":  # 12 + 7 and 7 + 12 count as the same problem
        assert not {_problem(r) for r in test} & {_problem(r) for r in train}


def test_sizes_and_variety(info, rows):
    shipped = [p for p in DATA.iterdir() if p.is_file()]  # not data/.cache: the loader's git-ignored cache
    assert sum(p.stat().st_size for p in shipped) < 3 * 1024 * 1024
    assert len(rows["alpaca_en_demo"]) >= 300 and len(rows["alpaca_zh_demo"]) >= 300
    assert len(rows["c4_demo"]) >= 300 and 140 <= len(rows["sharegpt_demo"]) <= 200
    assert 150 <= len(rows["dpo_en_demo"]) <= 300 and 150 <= len(rows["dpo_zh_demo"]) <= 300
    assert 40 <= len(rows["messages_demo"]) <= 60
    for name, data in rows.items():  # no duplicated rows anywhere
        dumped = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in data]
        assert len(set(dumped)) == len(dumped), name
    en = [r["output"] for r in rows["alpaca_en_demo"]]
    long = sorted(len(o.split()) for o in en if len(o.split()) > 12)
    assert len(long) >= 100 and long[len(long) // 2] >= 25, "open-ended answers should run to tens of words"
    chinese = sum(bool(CJK.search(t["text"])) for t in rows["c4_demo"])
    assert 0.1 * len(rows["c4_demo"]) <= chinese <= 0.5 * len(rows["c4_demo"]), "mostly English, some Chinese"
    turns = [len(r["conversations"]) for r in rows["sharegpt_demo"]]
    assert min(turns) >= 4 and max(turns) <= 9
    assert any(r["conversations"][0]["from"] == "system" for r in rows["sharegpt_demo"])


def test_readme_documents_every_dataset(info):
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    for name in info:
        assert f"`{name}`" in readme, f"data/README.md does not describe {name}"


def test_generator_reproduces_the_committed_files(tmp_path):
    out = tmp_path / "data"
    subprocess.run([sys.executable, str(DATA / "make_demo_data.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=60)
    generated = {p.name for p in out.iterdir()}
    committed = {p.name for p in DATA.iterdir() if p.suffix in (".json", ".jsonl")}
    assert generated == committed, "data/ holds files the generator does not write (or misses some)"
    for name in sorted(generated):
        assert (out / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs: rerun make_demo_data.py"

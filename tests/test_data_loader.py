"""Format converters, tokenisation (masking, truncation, stats), splits, cache and bad-input messages."""
from __future__ import annotations

import json

import pytest

from engine.config import load_config
from engine.data import records
from engine.data.collator import IGNORE
from engine.data.loader import get_dataset, load_examples
from engine.data.records import load_records
from engine.data.templates import get_template
from engine.errors import UserError

ALPACA = [
    {"instruction": "Who are you?", "input": "", "output": "I am {{name}}, made by {{author}}."},
    {"instruction": "Add the numbers", "input": "2 and 3", "output": "5", "system": "Be exact.",
     "history": [["hi", "hello"], ["ready?", "yes"]]},
]
SHAREGPT = [
    {"conversations": [{"from": "system", "value": "Be nice."}, {"from": "human", "value": "Hi"},
                       {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Bye"},
                       {"from": "gpt", "value": "Bye!"}]},
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}]},          # empty answer
    {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]},        # no alternation
    {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"},
                       {"from": "human", "value": "unanswered"}]},                                # trailing question
]
CUSTOM_TAGS = [{"dialog": [{"who": "me", "text": "ping"}, {"who": "bot", "text": "pong"}], "sys": "S"}]
OPENAI = [{"messages": [{"role": "system", "content": "Sys."}, {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a"}]}]
PREF_ALPACA = [{"instruction": "Pick", "input": "one", "chosen": "good", "rejected": "bad"}]
PREF_SHAREGPT = [{"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
                                    {"from": "human", "value": "Q2"}],
                  "chosen": {"from": "gpt", "value": "right"}, "rejected": {"from": "gpt", "value": "wrong"}}]
TEXTS = [{"text": "Once upon a time there was a cat."}, {"text": "The end of the story is near."}]

INFO = {
    "alpaca": {"file_name": "alpaca.json", "columns": {"prompt": "instruction", "query": "input",
                                                       "response": "output", "system": "system",
                                                       "history": "history"}},
    "plain": {"file_name": "plain.json"},
    "sharegpt": {"file_name": "sharegpt.jsonl", "formatting": "sharegpt"},
    "custom": {"file_name": "custom.json", "formatting": "sharegpt",
               "columns": {"messages": "dialog", "system": "sys"},
               "tags": {"role_tag": "who", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}},
    "openai": {"file_name": "openai.json", "formatting": "sharegpt", "columns": {"messages": "messages"},
               "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                        "assistant_tag": "assistant", "system_tag": "system"}},
    "pref_alpaca": {"file_name": "pref_alpaca.json", "ranking": True},
    "pref_sharegpt": {"file_name": "pref_sharegpt.json", "ranking": True, "formatting": "sharegpt",
                      "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
    "texts": {"file_name": "texts.jsonl", "columns": {"prompt": "text"}},
    "folder": {"file_name": "many"},
    "csv": {"file_name": "rows.csv"},
    "parquet": {"file_name": "rows.parquet"},
}


def dump(path, rows):
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def ddir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "dataset_info.json").write_text(json.dumps(INFO))
    dump(d / "alpaca.json", ALPACA)
    dump(d / "plain.json", [{"instruction": f"Say {i}", "input": "", "output": f"{i}"} for i in range(20)])
    dump(d / "sharegpt.jsonl", SHAREGPT)
    dump(d / "custom.json", CUSTOM_TAGS)
    dump(d / "openai.json", OPENAI)
    dump(d / "pref_alpaca.json", PREF_ALPACA)
    dump(d / "pref_sharegpt.json", PREF_SHAREGPT)
    dump(d / "texts.jsonl", TEXTS)
    (d / "many").mkdir()
    dump(d / "many" / "part1.json", ALPACA[:1])
    dump(d / "many" / "part2.jsonl", ALPACA[1:])
    (d / "rows.csv").write_text("instruction,input,output\nName a colour,,Blue\n\"Say, hi\",,hi\n")
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist([{"instruction": "P", "input": "", "output": "Q"}]), d / "rows.parquet")
    return d


@pytest.fixture(scope="module")
def tok(bundled_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(bundled_model)


@pytest.fixture(scope="module")
def chatml(tok):
    return get_template("chatml", tok)


def args(ddir, **kw):
    kw.setdefault("dataset_dir", str(ddir))
    return load_config(None, {k: v for k, v in kw.items()}, finalize=False)


def msgs(*pairs):
    out = []
    for q, a in pairs:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return out


# ---------------------------------------------------------------- converters

def test_alpaca_with_input_system_history_and_identity(ddir):
    ds = load_examples(["alpaca"], args(ddir, identity_name="Tuney", identity_author="Team"), "sft")
    assert ds[0] == {"system": "", "messages": msgs(("Who are you?", "I am Tuney, made by Team."))}
    assert ds[1] == {"system": "Be exact.",
                     "messages": msgs(("hi", "hello"), ("ready?", "yes"), ("Add the numbers\n2 and 3", "5"))}


def test_sharegpt_tags_system_turn_and_skips(ddir):
    ds = load_examples(["sharegpt"], args(ddir), "sft")
    assert ds[0] == {"system": "Be nice.", "messages": msgs(("Hi", "Hello!"), ("Bye", "Bye!"))}
    assert ds[1] == {"system": "", "messages": msgs(("Q", "A"))}  # the unanswered question is left out
    assert len(ds) == 2  # empty answer and non-alternating conversation skipped (counted: test_stats_counts)


def test_custom_tags_and_openai_messages(ddir):
    assert load_examples(["custom"], args(ddir), "sft")[0] == {"system": "S", "messages": msgs(("ping", "pong"))}
    assert load_examples(["openai"], args(ddir), "sft")[0] == {"system": "Sys.", "messages": msgs(("q", "a"))}


def test_preference_pairs_alpaca_and_sharegpt(ddir):
    a = load_examples(["pref_alpaca"], args(ddir), "dpo")[0]
    assert a == {"system": "", "messages": [{"role": "user", "content": "Pick\none"}], "chosen": "good",
                 "rejected": "bad"}
    s = load_examples(["pref_sharegpt"], args(ddir), "dpo")[0]
    assert s["messages"] == msgs(("Q1", "A1")) + [{"role": "user", "content": "Q2"}]
    assert (s["chosen"], s["rejected"]) == ("right", "wrong")


def test_pretraining_text_folders_csv_parquet_concat_and_max_samples(ddir):
    assert load_examples(["texts"], args(ddir), "pt")[:] == {"text": [t["text"] for t in TEXTS]}
    folder = load_examples(["folder"], args(ddir), "sft")
    assert len(folder) == 2 and folder[1]["system"] == ""  # no system column mapped for this entry
    csv = load_examples(["csv"], args(ddir), "sft")
    assert csv[1]["messages"] == msgs(("Say, hi", "hi"))
    both = load_examples(["csv", "parquet", "plain"], args(ddir, max_samples=3), "sft")
    assert [m["messages"][0]["content"] for m in both] == ["Name a colour", "Say, hi", "P", "Say 0", "Say 1",
                                                           "Say 2"]


# ---------------------------------------------------------------- bad input

def test_broken_json_and_jsonl_name_file_and_line(ddir):
    (ddir / "alpaca.json").write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output"}\n]')
    with pytest.raises(UserError) as e:
        load_examples(["alpaca"], args(ddir), "sft")
    assert "alpaca.json" in str(e.value) and "line 3" in str(e.value)
    (ddir / "sharegpt.jsonl").write_text('{"conversations": []}\n\n{"conversations": [}\n')
    with pytest.raises(UserError, match=r"sharegpt.jsonl: invalid JSON at line 3"):
        load_examples(["sharegpt"], args(ddir), "sft")


def test_unknown_dataset_lists_known_names(ddir, tok, chatml):
    with pytest.raises(UserError) as e:
        get_dataset(args(ddir, dataset="alpacca"), tok, chatml, "sft")
    msg = str(e.value)
    assert "'alpacca'" in msg and "Did you mean 'alpaca'" in msg and "plain" in msg and "texts" in msg


def test_missing_column_is_named(ddir):
    dump(ddir / "plain.json", [{"question": "q", "answer": "a"}])
    with pytest.raises(UserError) as e:
        load_examples(["plain"], args(ddir), "sft")
    msg = str(e.value)
    assert "'instruction'" in msg and "columns.prompt" in msg and "answer, question" in msg


def test_stage_mismatch_and_all_invalid(ddir):
    with pytest.raises(UserError, match="'texts' is a pre-training .* stage sft cannot train on it"):
        load_examples(["texts"], args(ddir), "sft")
    with pytest.raises(UserError, match="stage dpo"):
        load_examples(["alpaca"], args(ddir), "dpo")
    dump(ddir / "sharegpt.jsonl", SHAREGPT[1:3])
    with pytest.raises(UserError, match=r"none of its 2 samples is usable .*empty answer"):
        load_examples(["sharegpt"], args(ddir), "sft")


def test_missing_file_and_empty_file(ddir):
    (ddir / "plain.json").unlink()
    with pytest.raises(UserError, match="plain.json does not exist"):
        load_examples(["plain"], args(ddir), "sft")
    dump(ddir / "alpaca.json", [])
    with pytest.raises(UserError, match="no records"):
        load_examples(["alpaca"], args(ddir), "sft")


def test_hub_dataset_offline_is_a_clear_error(ddir, monkeypatch):
    info = json.loads((ddir / "dataset_info.json").read_text())
    info["hubby"] = {"hf_hub_url": "nobody/nothing"}
    (ddir / "dataset_info.json").write_text(json.dumps(info))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="nobody/nothing.*HF_HUB_OFFLINE.*file_name"):
        load_examples(["hubby"], args(ddir), "sft")


# ---------------------------------------------------------------- tokenisation

def test_sft_masking_and_stop_word(ddir, tok, chatml):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    mod = get_dataset(args(ddir, dataset="sharegpt"), tok, chatml, "sft")
    row = mod.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    pairs = chatml.encode_multiturn(tok, msgs(("Hi", "Hello!"), ("Bye", "Bye!")), "Be nice.")
    assert ids == [i for p, r in pairs for i in p + r]
    expect = []
    for p, r in pairs:
        expect += [IGNORE] * len(p) + r
    assert labels == expect
    trained = [t for t in labels if t != IGNORE]
    assert tok.decode(trained) == "Hello!<|im_end|>Bye!<|im_end|>"
    assert trained.count(im_end) == 2

    on_prompt = get_dataset(args(ddir, dataset="sharegpt", train_on_prompt=True), tok, chatml, "sft")
    assert on_prompt.train_dataset[0]["labels"] == ids
    last = get_dataset(args(ddir, dataset="sharegpt", mask_history=True), tok, chatml, "sft")
    lab = last.train_dataset[0]["labels"]
    assert tok.decode([t for t in lab if t != IGNORE]) == "Bye!<|im_end|>"
    assert last.train_dataset[0]["input_ids"] == ids  # history still in the context


def test_truncation_keeps_the_answer(ddir, tok, chatml):
    long_q = "tell me " * 200
    dump(ddir / "plain.json", [{"instruction": long_q, "input": "", "output": "Short answer."},
                               {"instruction": "Short?", "input": "", "output": "word " * 200},
                               {"instruction": "ok", "input": "", "output": "fine"}])
    mod = get_dataset(args(ddir, dataset="plain", cutoff_len=64), tok, chatml, "sft")
    st = mod.stats
    assert (st["total"], st["kept"], st["truncated"], st["dropped"]) == (3, 3, 2, 0)
    r0, r1 = mod.train_dataset[0], mod.train_dataset[1]
    assert len(r0["input_ids"]) == 64 and len(r1["input_ids"]) == 64
    # long prompt: the whole answer and the assistant header stay, the prompt's start is cut
    assert tok.decode([t for t in r0["labels"] if t != IGNORE]) == "Short answer.<|im_end|>"
    assert tok.decode(r0["input_ids"]).endswith("<|im_start|>assistant\nShort answer.<|im_end|>")
    # long answer, short prompt: the prompt stays whole, the answer is cut at the budget
    trained = [t for t in r1["labels"] if t != IGNORE]
    assert tok.decode(r1["input_ids"]).startswith("<|im_start|>user\nShort?") and len(trained) >= 32
    assert st["max_len"] > 64 and st["p50"] > 64


def test_multi_turn_truncation_keeps_whole_turns(ddir, tok, chatml):
    conv = [{"from": "human", "value": f"question {i} " * 5} if k == 0 else {"from": "gpt", "value": f"answer {i}"}
            for i in range(6) for k in range(2)]
    dump(ddir / "sharegpt.jsonl", [{"conversations": conv}, {"conversations": conv[:2]}])
    pairs = chatml.encode_multiturn(tok, msgs(*[(conv[2 * i]["value"], conv[2 * i + 1]["value"])
                                                for i in range(6)]), None)
    two = sum(len(p) + len(r) for p, r in pairs[:2])
    mod = get_dataset(args(ddir, dataset="sharegpt", cutoff_len=two + 3), tok, chatml, "sft")
    row = mod.train_dataset[0]
    assert row["input_ids"] == [i for p, r in pairs[:2] for i in p + r]  # two whole turns, nothing half
    hist = get_dataset(args(ddir, dataset="sharegpt", cutoff_len=two + 3, mask_history=True), tok, chatml, "sft")
    text = tok.decode(hist.train_dataset[0]["input_ids"])
    assert "answer 5<|im_end|>" in text and "answer 0" not in text  # the trained last turn survives


def test_every_sample_cut_is_an_error_with_numbers(ddir, tok, chatml):
    with pytest.raises(UserError) as e:
        get_dataset(args(ddir, dataset="plain", cutoff_len=8), tok, chatml, "sft")
    msg = str(e.value)
    n = max(sum(len(p) + len(r) for p, r in chatml.encode_multiturn(tok, msgs((f"Say {i}", f"{i}")), None))
            for i in range(20))
    assert "every sample is cut by cutoff_len=8" in msg and "20 samples" in msg
    assert "p50" in msg and f"max {n}" in msg and f"Raise cutoff_len to {n}" in msg


def test_stats_counts(ddir, tok, chatml):
    mod = get_dataset(args(ddir, dataset="sharegpt,alpaca"), tok, chatml, "sft")
    st = mod.stats
    assert (st["total"], st["kept"], st["dropped"], st["truncated"]) == (6, 4, 2, 0)
    assert st["dropped_reasons"] == {"empty answer": 1, "turns do not alternate user/assistant": 1}
    lens = sorted(len(r) for r in mod.train_dataset["input_ids"])
    assert st["max_len"] == lens[-1] and st["mean_len"] == round(sum(lens) / 4, 1) and st["p50"] in lens
    trainable = sum(sum(1 for t in lab[1:] if t != IGNORE) for lab in mod.train_dataset["labels"])
    assert st["tokens"] == trainable > 0
    assert st["train_rows"] == 4 and "dropped 2 (1 x empty answer" in st["summary"]


def test_val_size_split_fraction_count_and_eval_dataset(ddir, tok, chatml):
    a = get_dataset(args(ddir, dataset="plain", val_size=0.25, seed=1), tok, chatml, "sft")
    assert (len(a.train_dataset), len(a.eval_dataset)) == (15, 5)
    b = get_dataset(args(ddir, dataset="plain", val_size=3, seed=1), tok, chatml, "sft")
    assert (len(b.train_dataset), len(b.eval_dataset)) == (17, 3)
    c = get_dataset(args(ddir, dataset="plain", val_size=0.25, seed=2, overwrite_cache=True), tok, chatml, "sft")
    evals = lambda m: sorted(tok.decode(x) for x in m.eval_dataset["input_ids"])  # noqa: E731
    assert evals(a) != evals(c)  # the seed decides the split ...
    a2 = get_dataset(args(ddir, dataset="plain", val_size=0.25, seed=1, overwrite_cache=True), tok, chatml, "sft")
    assert evals(a2) == evals(a)  # ... reproducibly
    assert not set(evals(a)) & {tok.decode(x) for x in a.train_dataset["input_ids"]}
    d = get_dataset(args(ddir, dataset="plain", eval_dataset="alpaca", val_size=0.25), tok, chatml, "sft")
    assert (len(d.train_dataset), len(d.eval_dataset)) == (20, 2)
    with pytest.raises(UserError, match="val_size: 20 leaves no training data"):
        get_dataset(args(ddir, dataset="plain", val_size=20), tok, chatml, "sft")


def test_cache_is_reused_and_invalidated(ddir, tok, chatml, monkeypatch):
    a = args(ddir, dataset="plain")
    first = get_dataset(a, tok, chatml, "sft")
    assert first.stats["cache"] == "miss" and str(ddir / ".cache") in first.stats["cache_dir"]

    def no_reading(*_a, **_k):
        raise AssertionError("re-read the data files on a cache hit")
    monkeypatch.setattr(records, "read_records", no_reading)
    second = get_dataset(a, tok, chatml, "sft")
    assert second.stats["cache"] == "hit" and second.stats["cache_dir"] == first.stats["cache_dir"]
    assert second.train_dataset["input_ids"] == first.train_dataset["input_ids"]
    assert second.stats["tokens"] == first.stats["tokens"]
    monkeypatch.undo()

    # each of these tokenises again: asked to, a setting that matters, another template, the file changed
    assert get_dataset(args(ddir, dataset="plain", overwrite_cache=True), tok, chatml, "sft").stats["cache"] == "miss"
    longer = get_dataset(args(ddir, dataset="plain", cutoff_len=512), tok, chatml, "sft").stats
    assert longer["cache"] == "miss" and longer["cache_dir"] != first.stats["cache_dir"]
    other = get_dataset(a, tok, get_template("default", tok), "sft").stats
    assert other["cache"] == "miss" and other["cache_dir"] not in (first.stats["cache_dir"], longer["cache_dir"])
    dump(ddir / "plain.json", [{"instruction": "new", "input": "", "output": "data"}])
    third = get_dataset(a, tok, chatml, "sft")
    assert third.stats["cache"] == "miss" and len(third.train_dataset) == 1


def test_pretraining_blocks_and_packing(ddir, tok, chatml):
    eos = tok.eos_token_id
    texts = [tok.encode(t["text"]) + [eos] for t in TEXTS]
    blocks = get_dataset(args(ddir, dataset="texts", cutoff_len=8), tok, chatml, "pt")
    stream = texts[0] + texts[1]
    assert blocks.train_dataset["input_ids"] == [stream[k:k + 8] for k in range(0, len(stream), 8)]
    assert blocks.train_dataset["labels"] == blocks.train_dataset["input_ids"]
    assert blocks.stats["kept"] == 2 and blocks.stats["tokens"] == len(stream) - blocks.stats["train_rows"]
    packed = get_dataset(args(ddir, dataset="texts", cutoff_len=8, packing=True), tok, chatml, "pt")
    rows = packed.train_dataset
    assert set(rows.column_names) == {"input_ids", "labels", "position_ids"}
    # every text's tokens are there (split at 8), each piece restarts at position 0 with an unpredicted first label
    got = sorted(tuple(r) for r in rows["input_ids"])
    assert sum(len(r) for r in got) == len(stream)
    for ids, lab, pos in zip(rows["input_ids"], rows["labels"], rows["position_ids"]):
        assert len(ids) <= 8 and pos[0] == 0
        starts = [i for i, p in enumerate(pos) if p == 0]
        assert all(lab[i] == IGNORE for i in starts)


def test_sft_packing_rows(ddir, tok, chatml):
    plain = get_dataset(args(ddir, dataset="plain", cutoff_len=64), tok, chatml, "sft")
    packed = get_dataset(args(ddir, dataset="plain", cutoff_len=64, packing=True), tok, chatml, "sft")
    st = packed.stats
    assert st["packed_from"] == 20 and st["train_rows"] < 20 and st["tokens"] == plain.stats["tokens"]
    total = sum(len(r) for r in packed.train_dataset["input_ids"])
    assert total == sum(len(r) for r in plain.train_dataset["input_ids"])
    assert all(len(r) <= 64 for r in packed.train_dataset["input_ids"])


def test_dpo_strings(ddir, tok, chatml):
    mod = get_dataset(args(ddir, dataset="pref_sharegpt,pref_alpaca"), tok, chatml, "dpo")
    row = mod.train_dataset[0]
    assert row == {"prompt": "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                             "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n",
                   "chosen": "right<|im_end|>", "rejected": "wrong<|im_end|>"}
    assert mod.stats["kept"] == 2 and mod.stats["truncated"] == 0
    dump(ddir / "pref_alpaca.json", [{"instruction": "long " * 300, "input": "", "chosen": "yes", "rejected": "no"},
                                     {"instruction": "q", "input": "", "chosen": "y", "rejected": "n"}])
    cut = get_dataset(args(ddir, dataset="pref_alpaca", cutoff_len=32), tok, chatml, "dpo")
    p = cut.train_dataset[0]["prompt"]
    assert p.endswith("<|im_start|>assistant\n") and len(tok.encode(p)) <= 32 - 2
    assert cut.stats["truncated"] == 1


def test_records_keep_their_raw_source_for_the_ui(ddir):
    p = load_records(args(ddir, dataset="sharegpt"), keep_raw=True)
    assert p.stage == "sft" and p.report["sharegpt"] == {"total": 4, "kept": 2, "skipped": {
        "empty answer": 1, "turns do not alternate user/assistant": 1}}
    assert p.rows[0]["system"] == "Be nice." and p.raw_of(0) == SHAREGPT[0]
    assert p.sources == [("sharegpt", 0), ("sharegpt", 3)] and p.raw_of(1) == SHAREGPT[3]  # skipped ones leave gaps
    t = load_records(args(ddir, dataset="texts", stage="pt"))
    assert t.rows[0] == {"text": TEXTS[0]["text"]} and t.raw == {}  # raw records only when asked for

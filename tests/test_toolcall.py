"""Tool calling end to end: glaive_toolcall-style data -> rendered prompt and trained-token masks -> generation ->
parsed calls -> the Chat tab and the OpenAI API's tool_calls (the openai client against a tiny model trained to call)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.data import tools as T
from engine.data.collator import IGNORE
from engine.data.loader import get_dataset
from engine.data.processing import TRAINED, encode_sft, mark_trained
from engine.data.records import load_records
from engine.data.templates import get_template
from engine.utils import UserError

ROOT = Path(__file__).resolve().parent.parent
WEATHER = {"name": "get_weather", "description": "Current weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}
RESULT = '{"temperature": 21, "sky": "sunny"}'
ANSWER = "It is 21 degrees and sunny in Paris."
CONV = [{"from": "human", "value": "What is the weather in Paris?"},
        {"from": "function_call", "value": json.dumps(CALL)},
        {"from": "observation", "value": RESULT},
        {"from": "gpt", "value": ANSWER}]
INFO = {"tc": {"file_name": "tc.json", "formatting": "sharegpt",
               "columns": {"messages": "conversations", "tools": "tools"}},
        "plain": {"file_name": "plain.json", "formatting": "sharegpt"}}


@pytest.fixture(scope="module")
def tok(bundled_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(bundled_model)


def write_data(d: Path, rows, plain=None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "dataset_info.json").write_text(json.dumps(INFO))
    (d / "tc.json").write_text(json.dumps(rows))
    (d / "plain.json").write_text(json.dumps(plain or [{"conversations": [{"from": "human", "value": "Hi"},
                                                                           {"from": "gpt", "value": "Hello!"}]}]))
    return d


# ---------------------------------------------------------------- data

def test_demo_dataset_converts_to_function_and_observation_turns():
    recs = load_records({"dataset": "toolcall_demo", "dataset_dir": str(ROOT / "data"), "stage": "sft"})
    assert recs.report["toolcall_demo"]["kept"] == 60 and not recs.report["toolcall_demo"]["skipped"]
    roles = [[m["role"] for m in r["messages"]] for r in recs.rows]
    assert ["user", "function", "observation", "assistant"] in roles and ["user", "assistant"] in roles
    for r in recs.rows:
        assert {t["name"] for t in json.loads(r["tools"])} <= {"get_weather", "convert_currency", "get_local_time"}
        for m in r["messages"]:
            if m["role"] == "function":
                assert all(isinstance(c["arguments"], dict) for c in T.parse_calls(m["content"]))
    multi = [m for r in recs.rows for m in r["messages"] if m["role"] == "function"
             and isinstance(json.loads(m["content"]), list)]
    assert multi and all(len(json.loads(m["content"])) == 2 for m in multi)  # two calls in one turn


def test_bad_tool_records_are_skipped_with_a_reason(tmp_path):
    good = {"conversations": CONV, "tools": json.dumps([WEATHER])}
    rows = [good,
            {"conversations": [CONV[0], CONV[2], CONV[3]], "tools": "[]"},                 # result without a call
            {"conversations": [CONV[0], {"from": "function_call", "value": "get_weather(Paris)"}], "tools": "[]"},
            {"conversations": CONV, "tools": "[{not json"},
            {"conversations": CONV, "tools": json.dumps([{"description": "no name"}])}]
    d = write_data(tmp_path / "data", rows)
    recs = load_records({"dataset": "tc", "dataset_dir": str(d), "stage": "sft"})
    skipped = recs.report["tc"]["skipped"]
    assert recs.report["tc"]["kept"] == 1 and sum(skipped.values()) == 4
    text = " | ".join(skipped)
    assert "follows no function_call" in text
    assert "a function_call turn: not JSON" in text
    assert "column 'tools': not valid JSON" in text
    assert "column 'tools': each tool must be an object with a \"name\"" in text


@pytest.mark.parametrize("name", ["auto", "chatml", "llama3"])
def test_calls_and_answers_are_trained_results_and_tool_list_are_not(tok, name):
    template = get_template(name, tok)
    row = {"system": "", "tools": json.dumps([WEATHER]), "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "function", "content": json.dumps(CALL)},
        {"role": "observation", "content": RESULT},
        {"role": "assistant", "content": ANSWER}]}
    spans = mark_trained(row, "sft", tok, template, {"cutoff_len": 4096})
    trained = "".join(t for t, k in spans if k == TRAINED)
    untrained = "".join(t for t, k in spans if k != TRAINED)
    assert T.CALL_OPEN + "\n" + json.dumps(CALL) + "\n" + T.CALL_CLOSE in trained
    assert ANSWER in trained
    assert RESULT not in trained and RESULT in untrained
    assert '"get_weather", "description"' in untrained and "<tools>" in untrained and "<tools>" not in trained
    assert "What is the weather" in untrained
    # the labels themselves: the call is a response that ends on the stop token generation stops at
    enc = encode_sft(row["messages"], "", tok, template, 4096, tools=row["tools"])
    labelled = [t for t, lab in zip(enc["input_ids"], enc["labels"]) if lab != IGNORE]
    assert tok.decode(labelled) == trained
    # the parser reads back exactly what was trained as the call
    text, calls = T.parse_tool_calls(trained.split(template.stop_words[0])[0])
    assert calls == [CALL] and text == ""


def test_native_tool_template_is_used_when_the_tokenizer_has_one(tok):
    """A tokenizer whose own chat template reads `tools` renders calls and results its way; masking still trains
    only the assistant's parts."""
    import copy
    native = copy.deepcopy(tok)
    native.chat_template = (
        "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}{% endfor %}<|im_end|>\n"
        "{% endif %}{% for m in messages %}"
        "{% if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n{% for c in m.tool_calls %}"
        "CALL {{ c.function.name }} {{ c.function.arguments | tojson }}{% endfor %}<|im_end|>\n"
        "{% elif m.role == 'tool' %}<|im_start|>tool\n{{ m.content }}<|im_end|>\n"
        "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    template = get_template("auto", native)
    assert template.native_tools
    row = {"system": "", "tools": json.dumps([WEATHER]), "messages": [
        {"role": "user", "content": "Weather?"}, {"role": "function", "content": json.dumps(CALL)},
        {"role": "observation", "content": RESULT}, {"role": "assistant", "content": ANSWER}]}
    spans = mark_trained(row, "sft", native, template, {"cutoff_len": 4096})
    trained = "".join(t for t, k in spans if k == TRAINED)
    untrained = "".join(t for t, k in spans if k != TRAINED)
    assert 'CALL get_weather {"city": "Paris"}' in trained and ANSWER in trained
    assert "TOOLS: get_weather" in untrained and "<|im_start|>tool\n" + RESULT in untrained
    assert RESULT not in trained and "TOOLS" not in trained


def test_training_data_mixes_tool_and_plain_datasets(tmp_path, tok):
    d = write_data(tmp_path / "data", [{"conversations": CONV, "tools": json.dumps([WEATHER])}])
    template = get_template("chatml", tok)
    template.fix_tokenizer(tok)
    for order in ("plain,tc", "tc,plain"):  # the tool list survives whichever dataset comes first
        args = load_config(None, {"dataset": order, "dataset_dir": str(d), "cutoff_len": 2048,
                                  "output_dir": str(tmp_path / "out"), "overwrite_cache": True}, finalize=False)
        mod = get_dataset(args, tok, template, "sft")
        texts = [tok.decode(ids) for ids in mod.train_dataset["input_ids"]]
        assert sum("<tools>" in t for t in texts) == 1 and sum(T.CALL_OPEN in t for t in texts) == 1


def test_parser_and_tool_list_errors():
    text = 'Let me check.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>{"name": "g"}'
    rest, calls = T.parse_tool_calls(text)
    assert rest == "Let me check." and calls == [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}]
    broken = "<tool_call>{not json}</tool_call>"
    assert T.parse_tool_calls(broken) == (broken, [])  # shown, not hidden
    assert T.parse_tool_calls("plain answer") == ("plain answer", [])
    openai_shape = [{"type": "function", "function": WEATHER}]
    assert T.parse_tools(openai_shape) == T.parse_tools(json.dumps([WEATHER]))
    with pytest.raises(UserError, match="Tools box: not valid JSON"):
        T.parse_tools("[{", "Tools box")
    with pytest.raises(UserError, match="tool 'f': \"parameters\" must be a JSON schema"):
        T.parse_tools([{"name": "f", "parameters": "x"}])

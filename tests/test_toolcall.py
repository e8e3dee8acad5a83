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
from engine.errors import UserError
from kits.args import as_args

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
    recs = load_records(as_args({"dataset": "toolcall_demo", "dataset_dir": str(ROOT / "data"), "stage": "sft"}))
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
    recs = load_records(as_args({"dataset": "tc", "dataset_dir": str(d), "stage": "sft"}))
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
    spans = mark_trained(row, "sft", tok, template, as_args({"cutoff_len": 4096}))
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
    spans = mark_trained(row, "sft", native, template, as_args({"cutoff_len": 4096}))
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


def _held(deltas):
    hold = T.CallHoldback()
    shown = [hold.feed(d) for d in deltas]
    rest, text, calls = hold.finish()
    return shown, rest, text, calls


def test_call_holdback_streams_plain_text_and_holds_calls():
    plain = ["The", " answer", " is <", "tools", "> and", " 42.\n"]
    shown, rest, text, calls = _held(plain)
    assert shown == ["The", " answer", " is", " <tools", "> and", " 42."]  # a '<' held until it began no call
    assert "".join(shown) + rest == text == "".join(plain) and calls == []
    call = ["Let", " me check.\n", "<tool", "_call>\n", '{"name": "f", ', '"arguments": {"x": 1}}', "\n</tool_call>"]
    shown, rest, text, calls = _held(call)
    assert shown == ["Let", " me check.", "", "", "", "", ""]  # nothing of the call shows before it parses
    assert "".join(shown) + rest == text == "Let me check." and calls == [{"name": "f", "arguments": {"x": 1}}]
    broken = ["<tool_call>", "{not json}", "</tool_call>"]  # not a call after all: shown as the model wrote it
    shown, rest, text, calls = _held(broken)
    assert "".join(shown) + rest == text == "".join(broken) and calls == []


# ---------------------------------------------------------------- generation: a tiny model trained to call

OPENAI_TOOLS = [{"type": "function", "function": WEATHER}]
ASK = {"role": "user", "content": "What is the weather in Paris?"}


def _train_to_call(src: Path, dest: Path) -> Path:
    """The tiny model trained (full, ~100 steps on one conversation, labels from encode_sft) to call get_weather
    for the Paris question and to answer once the result is in: a real model whose greedy output is a call, so the
    tests below run generate -> parse -> OpenAI shape without mocking the answer. The conversation holds both the
    call and the answer, and the call's prompt is its prefix, so one sequence teaches both. Training stops once
    every trained token is the argmax with some margin (loss < 0.05): greedy generation then reproduces them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.data.templates import resolve_template
    tok = AutoTokenizer.from_pretrained(src)
    template = resolve_template(as_args({"model_name_or_path": str(src)}, "infer"), tok)  # what ChatEngine will use
    conv = [ASK, {"role": "function", "content": json.dumps(CALL)}, {"role": "observation", "content": RESULT},
            {"role": "assistant", "content": ANSWER}]
    enc = encode_sft(conv, "", tok, template, 4096, tools=json.dumps([WEATHER]))
    ids, labels = torch.tensor([enc["input_ids"]]), torch.tensor(enc["labels"][1:])
    keep = labels != IGNORE
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        # logits only where there are labels: the vocabulary projection is most of the cost
        logits = model.lm_head(model.model(input_ids=ids).last_hidden_state[0, :-1][keep])
        loss = torch.nn.functional.cross_entropy(logits, labels[keep])
        if bool((logits.argmax(-1) == labels[keep]).all()) and loss.item() < 0.05:
            break
        loss.backward()
        opt.step()
        opt.zero_grad()
    else:
        pytest.fail(f"the tiny model did not learn the call (loss {loss.item():.3f})")
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def caller(tiny_model, tmp_path_factory):
    from engine.chat import ChatEngine
    path = _train_to_call(tiny_model, tmp_path_factory.mktemp("caller") / "tiny-caller")
    return ChatEngine(as_args({"model_name_or_path": str(path), "max_new_tokens": 64}, "infer"))


@pytest.fixture(scope="module")
def server(caller):
    from engine.api import create_app, start_server_thread
    app = create_app(caller, api_key="")
    srv, thread, port = start_server_thread(app)
    yield {"url": f"http://127.0.0.1:{port}", "model": app.state.model_id}
    srv.should_exit = True
    thread.join(30)


def client(server):
    import openai
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key="none", max_retries=0, timeout=120)


def test_chat_engine_returns_parsed_calls(caller):
    r = caller.chat([ASK], tools=[WEATHER], temperature=0)
    assert r.tool_calls == [CALL] and r.finish_reason == "tool_calls" and r.text == ""
    done = caller.chat([ASK, {"role": "function", "content": json.dumps(CALL)},
                        {"role": "observation", "content": RESULT}], tools=[WEATHER], temperature=0)
    assert done.text == ANSWER and done.tool_calls == [] and done.finish_reason == "stop"
    raw = caller.chat([ASK], temperature=0)  # no tools offered: nothing is parsed out of the text
    assert raw.tool_calls == [] and raw.finish_reason in ("stop", "length")


def test_api_returns_tool_calls_in_openai_shape(server):
    c = client(server)
    r = c.chat.completions.create(model=server["model"], messages=[ASK], tools=OPENAI_TOOLS, tool_choice="auto",
                                  temperature=0, max_tokens=64)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (tc,) = choice.message.tool_calls
    assert tc.type == "function" and tc.id.startswith("call_") and tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == {"city": "Paris"}
    # the call and the tool's result go back in OpenAI's shape; the model answers from the result
    follow = c.chat.completions.create(
        model=server["model"], tools=OPENAI_TOOLS, temperature=0, max_tokens=64,
        messages=[ASK, {"role": "assistant", "content": None, "tool_calls": [tc.model_dump()]},
                  {"role": "tool", "tool_call_id": tc.id, "content": RESULT}])
    assert follow.choices[0].message.content == ANSWER and follow.choices[0].message.tool_calls is None
    assert follow.choices[0].finish_reason == "stop"
    # tool_choice none: no tool list in the prompt and no calls parsed
    none = c.chat.completions.create(model=server["model"], messages=[ASK], tools=OPENAI_TOOLS, tool_choice="none",
                                     temperature=0, max_tokens=16)
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason != "tool_calls"
    assert none.usage.prompt_tokens < r.usage.prompt_tokens


def test_api_streams_tool_calls(server):
    chunks = list(client(server).chat.completions.create(model=server["model"], messages=[ASK], tools=OPENAI_TOOLS,
                                                         temperature=0, max_tokens=64, stream=True))
    calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == \
        [(0, "get_weather", {"city": "Paris"})]
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == \
        ["tool_calls"]
    assert not "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    # the answer after the tool's result is plain text: it streams, and joins to the non-streamed answer
    follow = [ASK, {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": json.dumps(CALL["arguments"])}}]},
              {"role": "tool", "tool_call_id": "call_1", "content": RESULT}]
    chunks = list(client(server).chat.completions.create(model=server["model"], messages=follow, tools=OPENAI_TOOLS,
                                                         temperature=0, max_tokens=64, stream=True))
    parts = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert len(parts) > 1 and "".join(parts) == ANSWER
    assert not any(ch.choices[0].delta.tool_calls for ch in chunks if ch.choices)


def test_api_refuses_bad_tools_with_a_message(server):
    import openai
    c = client(server)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=server["model"], messages=[ASK], tools=[{"type": "function",
                                                                                  "function": {"description": "x"}}])
    assert "tools" in str(e.value) and "name" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=server["model"], messages=[ASK], tools=OPENAI_TOOLS, tool_choice="required")
    assert "tool_choice" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:  # a tool result with no call before it
        c.chat.completions.create(model=server["model"], messages=[ASK, {"role": "tool", "content": RESULT,
                                                                         "tool_call_id": "x"}])
    assert "must follow an assistant message with tool_calls" in str(e.value)


def test_chat_tab_turns_a_call_into_a_tool_result_turn(caller):
    from webui.chat_tab import add_user_turn, answer_turn
    history, conv = add_user_turn(ASK["content"], [], [], "en")
    answer = "".join(caller.stream(conv, tools=[WEATHER], temperature=0))
    shown, turn = answer_turn(answer, True, "en")
    assert turn == {"role": "function", "content": json.dumps(CALL)}
    assert "get_weather" in shown["content"] and '"city": "Paris"' in shown["content"]
    history, conv = add_user_turn(RESULT, history + [shown], conv + [turn], "en")
    assert conv[-1] == {"role": "observation", "content": RESULT} and "Tool result" in history[-1]["content"]
    final = "".join(caller.stream(conv, tools=[WEATHER], temperature=0))
    assert answer_turn(final, True, "en")[1] == {"role": "assistant", "content": ANSWER}
    with pytest.raises(UserError, match=r"Tools \(JSON\) box: not valid JSON"):
        T.parse_tools("[{", "Tools (JSON) box")


def test_lora_sft_trains_on_the_tool_demo(tiny_model, tmp_path):
    from engine.train import rundir
    from engine.train.workflow import run
    out = tmp_path / "run"
    cfg = dict(model_name_or_path=str(tiny_model), dataset="toolcall_demo,sharegpt_demo", dataset_dir=str(ROOT / "data"),
               max_samples=8, cutoff_len=512, per_device_train_batch_size=4, max_steps=2, logging_steps=1,
               output_dir=str(out), seed=1)
    metrics = run(load_config(None, {k: str(v) for k, v in cfg.items()}))
    assert rundir.read_status(out)["state"] == "finished" and metrics["total_steps"] == 2
    assert all(r["loss"] > 0 for r in rundir.read_log(out) if "loss" in r)


def test_inspector_counts_the_tool_list_like_training(tiny_model, tmp_path):
    from engine.insight.inspector import inspect_dataset
    values = {"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": "tc",
              "dataset_dir": str(write_data(tmp_path / "data", [{"conversations": CONV, "tools": json.dumps([WEATHER])}])),
              "cutoff_len": 4096, "output_dir": str(tmp_path / "run")}
    rep = inspect_dataset(values=values)
    tok = __import__("transformers").AutoTokenizer.from_pretrained(tiny_model)
    enc = encode_sft(load_records(as_args(values)).rows[0]["messages"], "", tok, get_template("chatml", tok), 4096,
                     tools=json.dumps([WEATHER]))
    assert rep["lengths"]["max"] == len(enc["input_ids"]) > 150  # the tool list's tokens are counted
    assert any(kind and T.CALL_OPEN in text for text, kind in rep["sample"])

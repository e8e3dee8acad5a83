"""Each named template against its family's official chat_template (jinja), rendered by transformers' own jinja
renderer (the sandbox and globals apply_chat_template uses) with the special tokens the family's tokenizer binds.

The reference files are the models' chat templates as llama.cpp ships them inside the pinned llama-cpp-python
sdist; `make reference-templates` fetches them into .cache/reference_templates/ (never committed). Without them these
tests fail (a skipped check could not fail in CI).

Families with no reference file there (Qwen2, Gemma 3, Mistral v0.3, DeepSeek-V3, Yi) are checked against the
nearest one with the documented difference applied, or not at all (Yi: plain ChatML).
"""
from __future__ import annotations

import json

import pytest

from engine.data.templates import TEMPLATES, get_template
from engine.data.tools import parse_tools
from engine.utils import repo_root

REF_DIR = repo_root() / ".cache" / "reference_templates"

SYSTEM = "You are terse.\n"  # the trailing newline: templates that trim the system prompt differ here
CONV = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "It is 4."},
    {"role": "user", "content": "And 3+3?\nAnswer in words."},
    {"role": "assistant", "content": " Six, of course!\n\n"},  # templates that `| trim` answers differ here
    {"role": "user", "content": "Thanks: 你好"},
]
LAST = {"role": "assistant", "content": "You're welcome."}
# reasoning in the data, written the usual way (inside the content)
THOUGHT_CONV = [CONV[0], {"role": "assistant", "content": "<think>\nadd them\n</think>\n\nIt is 4."}, *CONV[2:]]
THOUGHT_LAST = {"role": "assistant", "content": "<think>\nbe polite\n</think>\n\nYou're welcome."}

QWEN = dict(bos=None, eos="<|im_end|>")
LLAMA = dict(bos="<|begin_of_text|>", eos="<|eot_id|>")
DEEPSEEK = dict(bos="<｜begin▁of▁sentence｜>", eos="<｜end▁of▁sentence｜>")


def reference(name: str) -> str:
    path = REF_DIR / f"{name}.jinja"
    if not path.is_file():
        pytest.fail(f"reference chat template {path} is missing: run `make reference-templates` (it fetches the "
                    "pinned llama-cpp-python sdist with pip and extracts its models/templates/*.jinja).")
    return path.read_text(encoding="utf-8")


def jinja(chat_template: str, messages: list, gen: bool, bos=None, eos=None, **kwargs) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template
    rendered, _ = render_jinja_template([messages], chat_template=chat_template, add_generation_prompt=gen,
                                        bos_token=bos, eos_token=eos, **kwargs)
    return rendered[0]


class SpecialTokens:
    """What get_template binds from a tokenizer (bos / eos); text rendering needs no vocabulary."""

    chat_template = None

    def __init__(self, bos=None, eos=None):
        self.bos_token, self.eos_token = bos, eos


def ours(name: str, messages: list, bos=None, eos=None, **kwargs) -> str:
    return get_template(name, SpecialTokens(bos, eos), **kwargs).render(messages)


def with_system(messages: list, system: str | None) -> list:
    return ([{"role": "system", "content": system}] if system else []) + messages


# (template, reference file, special tokens, extra jinja variables, finished):
# `finished` is (what the reference writes after the last answer's stop word, what we write there) when the reference
# renders a conversation that ends on an answer the way its generation prompt continues (None when it does not).
# The ChatML "\n" after <|im_end|> belongs to our next prompt, never to a trained answer.
CASES = [
    ("qwen", "Qwen-Qwen2.5-7B-Instruct", QWEN, {}, ("\n", "")),
    ("qwen3", "Qwen-Qwen3-0.6B", QWEN, {}, ("\n", "")),
    ("qwen3_nothink", "Qwen-Qwen3-0.6B", QWEN, {"enable_thinking": False}, ("\n", "")),
    ("llama3", "meta-llama-Llama-3.1-8B-Instruct", LLAMA, {}, ("", "")),
    ("llama3", "meta-llama-Llama-3.3-70B-Instruct", LLAMA, {}, ("", "")),
    # 3.2's template writes today's date (strftime_now); ours pins Meta's default "26 Jul 2024", so the date is pinned
    ("llama3", "meta-llama-Llama-3.2-3B-Instruct", LLAMA, {"date_string": "26 Jul 2024"}, ("", "")),
    ("phi", "microsoft-Phi-3.5-mini-instruct", dict(bos="<s>", eos="<|endoftext|>"), {}, ("\n<|endoftext|>", "")),
    # (Mistral's template puts the system prompt into the last message when that is the user's, so it drops it
    # from a conversation that ends on an answer: that one is compared without a system prompt)
    ("mistral_nemo", "mistralai-Mistral-Nemo-Instruct-2407", dict(bos="<s>", eos="</s>"), {}, ("", "")),
    # R1's template drops the generation prompt's "<think>\n" from a finished answer: no consistent finished form
    ("deepseekr1", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B", DEEPSEEK, {}, None),
    ("deepseekr1", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", DEEPSEEK, {"enable_thinking": True}, None),
    # GLM ends an answer with the next turn's <|user|>; we train it as the answer's stop word
    ("glm4", "GLM-4.6", dict(bos=None, eos="<|endoftext|>"), {}, ("", "<|user|>")),
]
IDS = [f"{c[0]}-{c[1]}" for c in CASES]


@pytest.mark.parametrize("system", [SYSTEM, None], ids=["system", "no-system"])
@pytest.mark.parametrize("name,ref,tokens,extra,finished", CASES, ids=IDS)
def test_same_text_as_the_reference_template(name, ref, tokens, extra, finished, system):
    tpl = reference(ref)
    msgs = with_system(CONV, system)
    assert ours(name, msgs, **tokens) == jinja(tpl, msgs, True, **tokens, **extra)
    if finished is not None and not (name.startswith("mistral") and system):
        ref_tail, our_tail = finished
        msgs = with_system(CONV + [LAST], system)
        assert ours(name, msgs, **tokens) + ref_tail == jinja(tpl, msgs, False, **tokens, **extra) + our_tail


@pytest.mark.parametrize("name,ref,extra", [
    ("qwen3", "Qwen-Qwen3-0.6B", {}), ("qwen3_nothink", "Qwen-Qwen3-0.6B", {"enable_thinking": False}),
    ("glm4", "GLM-4.6", {})])
def test_reasoning_is_dropped_from_earlier_answers_and_kept_in_the_last(name, ref, extra):
    tpl, tokens = reference(ref), dict(bos=None, eos="<|im_end|>" if name != "glm4" else "<|endoftext|>")
    msgs = with_system(THOUGHT_CONV, SYSTEM)
    text = ours(name, msgs, **tokens)
    assert text == jinja(tpl, msgs, True, **tokens, **extra) and "add them" not in text
    if name != "qwen3_nothink":  # nothink drops the reasoning of the last answer too (its jinja keeps it)
        msgs = with_system(THOUGHT_CONV + [THOUGHT_LAST], SYSTEM)
        text = ours(name, msgs, **tokens)
        ref_text = jinja(tpl, msgs, False, **tokens, **extra)
        assert text == (ref_text[:-1] if name == "qwen3" else ref_text + "<|user|>")
        assert "be polite" in text and "add them" not in text


def test_qwen2_is_qwen25_with_its_own_default_system():
    # no Qwen2 jinja in the reference set: Qwen2.5's with Qwen2's default system prompt is the same format
    q25 = reference("Qwen-Qwen2.5-7B-Instruct")
    default25 = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert q25.count(default25) == 2
    q2 = q25.replace(default25, "You are a helpful assistant.")
    for msgs in (CONV, with_system(CONV, SYSTEM)):
        assert ours("qwen2", msgs, **QWEN) == jinja(q2, msgs, True, **QWEN)
    assert ours("qwen2", CONV, **QWEN).startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")


def test_gemma_and_gemma3_fold_the_system_prompt_into_the_first_user_message():
    g2, tokens = reference("google-gemma-2-2b-it"), dict(bos="<bos>", eos="<eos>")
    for name in ("gemma", "gemma3"):
        assert ours(name, CONV, **tokens) == jinja(g2, CONV, True, **tokens)
        assert ours(name, CONV + [LAST], **tokens) == jinja(g2, CONV + [LAST], False, **tokens)[:-1]  # its "\n"
    with pytest.raises(Exception, match="System role not supported"):  # Gemma 2's own template refuses a system
        jinja(g2, with_system(CONV, SYSTEM), True, **tokens)
    # No Gemma 3 jinja in the reference set: its documented format is Gemma 2's with the system prompt + "\n\n"
    # opening the first user message (whose text is trimmed)
    folded = [{"role": "user", "content": SYSTEM + "\n\n" + CONV[0]["content"]}] + CONV[1:]
    for name in ("gemma", "gemma3"):
        assert ours(name, with_system(CONV, SYSTEM), **tokens) == jinja(g2, folded, True, **tokens)


def test_mistral_v03_is_nemo_with_spaces_around_inst():
    # No v0.3 jinja in the reference set. v0.3 writes "[INST] " and a space before each answer, and trims the
    # answer; Nemo writes neither. Both put the system prompt into the last user message.
    nemo, tokens = reference("mistralai-Mistral-Nemo-Instruct-2407"), dict(bos="<s>", eos="</s>")
    conv = [dict(m, content=m["content"].strip()) if m["role"] == "assistant" else m for m in CONV + [LAST]]
    for msgs, gen in ((with_system(conv[:-1], SYSTEM), True), (conv[:-1], True), (conv, False)):
        expected = jinja(nemo, msgs, gen, **tokens).replace("[INST]", "[INST] ").replace("[/INST]", "[/INST] ")
        assert ours("mistral", msgs, **tokens) == (expected.rstrip(" ") if gen else expected)
    # a conversation that ends on an answer loses its system prompt in Mistral's template; ours keeps it where the
    # generation prompt had it (the last user message), so training and chat see the same text
    assert SYSTEM not in jinja(nemo, with_system(conv, SYSTEM), False, **tokens)
    assert ours("mistral", with_system(conv, SYSTEM), **tokens).endswith(
        f"[INST] {SYSTEM}\n\nThanks: 你好[/INST] You're welcome.</s>")
    text = ours("mistral", with_system(CONV, SYSTEM), **tokens)
    assert text.endswith(f"[INST] {SYSTEM}\n\nThanks: 你好[/INST]") and " Six, of course!</s>" in text


def test_deepseek3_is_v31_without_its_empty_think():
    # No V3 jinja in the reference set; V3.1's (thinking off) is V3's format with "<think></think>" after each
    # <｜Assistant｜>.
    v31 = reference("deepseek-ai-DeepSeek-V3.1")
    for msgs, gen in ((with_system(CONV, SYSTEM), True), (with_system(CONV + [LAST], SYSTEM), False), (CONV, True)):
        expected = jinja(v31, msgs, gen, **DEEPSEEK).replace("<think></think>", "")
        assert ours("deepseek3", msgs, **DEEPSEEK) == expected


def test_enable_thinking_false_turns_qwen3_into_qwen3_nothink():
    tok = SpecialTokens(**QWEN)
    off = get_template("qwen3", tok, enable_thinking=False)
    assert off.render(CONV) == get_template("qwen3_nothink", tok).render(CONV)
    assert get_template("qwen3", tok, enable_thinking=True).render(CONV) == get_template("qwen3", tok).render(CONV)
    assert get_template("chatml", tok, enable_thinking=False) == get_template("chatml", tok)


def test_the_last_answer_is_trained_with_its_thought_block(bundled_model):
    """qwen3 on the bundled (ChatML) tokenizer: the pairs encode_multiturn trains are the reference jinja's
    text, token for token; only the last answer carries the (empty) <think> block."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(bundled_model)
    tpl = get_template("qwen3", tok)
    msgs = with_system(CONV + [LAST], SYSTEM)
    pairs = tpl.encode_multiturn(tok, msgs)
    flat = [i for p, r in pairs for i in p + r]
    ref = tok.encode(jinja(reference("Qwen-Qwen3-0.6B"), msgs, False, bos=tok.bos_token, eos=tok.eos_token),
                     add_special_tokens=False)
    assert flat == ref[:len(flat)] and tok.decode(ref[len(flat):]) == "\n"
    answers = [tok.decode(r) for _, r in pairs]
    assert answers == ["It is 4.<|im_end|>", " Six, of course!\n\n<|im_end|>",
                       "<think>\n\n</think>\n\nYou're welcome.<|im_end|>"]
    assert all(tok.decode(p).endswith("<|im_start|>assistant\n") for p, _ in pairs)
    # a trailing question without an answer is not trained and does not move the thought block
    assert tpl.encode_multiturn(tok, msgs + [CONV[0]]) == pairs


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_exported_jinja_renders_as_the_template(name):
    """tuneboard export writes Template.to_jinja() into the tokenizer: plain transformers must then build the prompts
    TuneBoard trained with, for every template (and for qwen3 / deepseekr1 with thinking off)."""
    tok = _AddsBos()
    for tpl in {get_template(name, tok).to_dict().__repr__(): get_template(name, tok),
                "off": get_template(name, tok, enable_thinking=False)}.values():
        exported = tpl.to_jinja(tok)
        for conv in (CONV, CONV + [LAST], THOUGHT_CONV, THOUGHT_CONV + [THOUGHT_LAST], CONV[:1]):
            for system in (SYSTEM, None):
                msgs = with_system(conv, system)
                assert jinja(exported, msgs, True, bos="<s>", eos="</s>") == tpl.render(msgs), (name, msgs)


class _AddsBos(SpecialTokens):
    """A tokenizer whose encode() starts with bos (what `default` / `alpaca` follow)."""
    bos_token_id = 1

    def __init__(self):
        super().__init__("<s>", "</s>")

    def encode(self, text, add_special_tokens=True):
        return [1, 2]


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "now"}}]  # no description, no parameters
CALLS = [{"name": "get_weather", "arguments": {"city": "Zürich"}}, {"name": "now", "arguments": {}}]
TOOL_CONV = [{"role": "user", "content": "Weather in Zürich, and the time?"},
             {"role": "function", "content": json.dumps(CALLS, ensure_ascii=False)},
             {"role": "observation", "content": '{"temp": 3}'}, {"role": "observation", "content": "12:00"},
             {"role": "assistant", "content": "3 degrees at noon."}, {"role": "user", "content": "Thanks"}]
# the same conversation as transformers / OpenAI write it
TOOL_CONV_HF = [TOOL_CONV[0], {"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": c} for c in CALLS]}, {"role": "tool", "content": '{"temp": 3}'},
    {"role": "tool", "content": "12:00"}, *TOOL_CONV[4:]]


@pytest.mark.parametrize("name", sorted(set(TEMPLATES) - {"auto"}))
def test_the_exported_jinja_renders_tools_as_the_template(name):
    """A tool list, calls and results passed to apply_chat_template(tools=...) in transformers' shape come out of
    the exported template as TuneBoard trained them (engine.data.tools' format), with and without a system."""
    tok = _AddsBos()
    tpl = get_template(name, tok)
    exported = tpl.to_jinja(tok)
    for system in (SYSTEM, None):
        for conv, conv_hf in ((TOOL_CONV, TOOL_CONV_HF), (TOOL_CONV[:1], TOOL_CONV_HF[:1])):
            want = tpl.render(with_system(conv, system), tools=parse_tools(TOOLS))  # as ChatEngine passes them
            assert jinja(exported, with_system(conv_hf, system), True, bos="<s>", eos="</s>", tools=TOOLS) == want
    assert "<tool_call>" in want and "get_weather" in want

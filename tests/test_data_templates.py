"""Chat templates: exact ids against the tokenizer's own template, stop words, prompts for generate()."""
from __future__ import annotations

import pytest

from engine.data.templates import KNOWN, TEMPLATES, get_template
from engine.errors import UserError

CONV = [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "It is 4."},
    {"role": "user", "content": "And 3+3?\nAnswer in words, with a leading space."},
    {"role": "assistant", "content": " Six, of course!\n\n"},
    {"role": "user", "content": "Thanks: 你好"},
    {"role": "assistant", "content": "You're welcome."},
]
SYSTEM = "You are terse."


@pytest.fixture(scope="module")
def tok(bundled_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(bundled_model)


def own(tok, msgs, gen=False):
    return tok.apply_chat_template(msgs, tokenize=True, return_dict=False, add_generation_prompt=gen)


@pytest.mark.parametrize("name", ["chatml", "auto"])
def test_same_ids_as_the_tokenizers_own_template(tok, name):
    tpl = get_template(name, tok)
    pairs = tpl.encode_multiturn(tok, CONV, SYSTEM)
    assert len(pairs) == 3
    flat = [i for p, r in pairs for i in p + r]
    ref = own(tok, [{"role": "system", "content": SYSTEM}] + CONV)
    # Identical ids; the reference adds only the "\n" after the final <|im_end|>, which we never train on
    # (it opens the next turn's prompt instead).
    assert flat == ref[:len(flat)]
    assert tok.decode(ref[len(flat):]) == "\n"
    # each prompt ends with the assistant header, each response with <|im_end|>
    for p, r in pairs:
        assert tok.decode(p).endswith("<|im_start|>assistant\n")
        assert r[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    prompt = tpl.encode_prompt(tok, CONV[:5], SYSTEM)
    assert prompt == own(tok, [{"role": "system", "content": SYSTEM}] + CONV[:5], gen=True)
    assert tpl.stop_token_ids(tok) == [tok.convert_tokens_to_ids("<|im_end|>")]


def test_auto_without_system_uses_the_tokenizers_default(tok):
    tpl = get_template("auto", tok)
    pairs = tpl.encode_multiturn(tok, CONV[:2], None)
    assert "You are a helpful AI assistant named SmolLM" in tok.decode(pairs[0][0])
    assert [i for p, r in pairs for i in p + r] == own(tok, CONV[:2])[:-1]


def test_none_picks_auto_or_default(tok):
    assert get_template(None, tok).name == "auto"

    class NoTemplate:
        chat_template = None
        bos_token = eos_token = None
    assert get_template(None, NoTemplate()).name == "default"
    with pytest.raises(UserError, match="no chat_template"):
        get_template("auto", NoTemplate())


def test_unknown_template_lists_known_names(tok):
    with pytest.raises(UserError) as e:
        get_template("chatm", tok)
    msg = str(e.value)
    assert "'chatm'" in msg and all(n in msg for n in KNOWN) and "Did you mean 'chatml'" in msg


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_response_ends_with_the_stop_word(tok, name):
    tpl = get_template(name, tok)
    stop = tpl.render_response("X").split("X")[-1].strip(" ")  # what follows the answer: the stop word (or eos)
    assert stop
    pairs = tpl.encode_multiturn(tok, CONV, SYSTEM)
    assert len(pairs) == 3
    for p, r in pairs:
        assert tok.decode(r).endswith(stop), (name, tok.decode(r))
        if stop in (tok.eos_token, "<|im_end|>"):  # a token of this vocabulary: the exact last id
            assert r[-1] == tok.convert_tokens_to_ids(stop)
    # training text and generation prompt agree: the prompt for turn 3 is a prefix of the trained ids
    flat = [i for p, r in pairs for i in p + r]
    prompt = tpl.encode_prompt(tok, CONV[:5], SYSTEM)
    assert flat[:len(prompt)] == prompt
    text = tpl.render(CONV, SYSTEM)
    assert SYSTEM in text and "You're welcome." in text


def test_template_layouts(tok):
    r = get_template("llama3", tok).render(CONV[:1], "S")
    assert r.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert ("system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
            "S<|eot_id|>") in r
    assert "Today Date: 26 Jul 2024\n\n<|eot_id|>" in get_template("llama3", tok).render(CONV[:1], None)
    r = get_template("llama2", tok).render(CONV[:2], "S")
    assert "[INST] <<SYS>>\nS\n<</SYS>>\n\nWhat is 2+2? [/INST] It is 4." in r
    r = get_template("gemma", tok).render(CONV[:1], "S")
    assert r.endswith("<start_of_turn>model\n") and "<start_of_turn>user\nS\n\nWhat is 2+2?" in r
    r = get_template("mistral", tok).render(CONV[:3], "S")
    assert "[INST] What is 2+2?[/INST] It is 4.<|im_end|>[INST] S\n\nAnd 3+3?" in r  # system in the last user turn
    r = get_template("glm4", tok).render(CONV[:3], "S")
    assert r == ("[gMASK]<sop><|system|>\nS<|user|>\nWhat is 2+2?<|assistant|>\n<think></think>\nIt is 4.<|user|>\n"
                 "And 3+3?\nAnswer in words, with a leading space.<|assistant|>")
    assert get_template("yi", tok).render(CONV[:1], "S") == get_template("chatml", tok).render(CONV[:1], "S")
    q = get_template("qwen", tok).render(CONV[:1], None)
    assert q.startswith("<|im_start|>system\nYou are Qwen")
    assert get_template("qwen", tok, default_system="Mine.").render(CONV[:1], None).startswith(
        "<|im_start|>system\nMine.")
    # a template's stop word missing from the vocabulary is still encoded (as text), never dropped
    ids = get_template("llama3", tok).encode_multiturn(tok, CONV[:2], None)
    assert tok.decode(ids[0][1]).endswith("<|eot_id|>")


def test_bad_roles_are_refused(tok):
    tpl = get_template("chatml", tok)
    with pytest.raises(UserError, match="alternate"):
        tpl.encode_multiturn(tok, [{"role": "assistant", "content": "x"}], None)
    with pytest.raises(UserError, match="end with a user"):
        tpl.encode_prompt(tok, CONV[:2], None)


def test_leading_system_message_is_the_system_prompt(tok):
    tpl = get_template("chatml", tok)
    a = tpl.encode_multiturn(tok, [{"role": "system", "content": SYSTEM}] + CONV[:2], None)
    b = tpl.encode_multiturn(tok, CONV[:2], SYSTEM)
    assert a == b


def test_fix_tokenizer_sets_pad_and_right_padding(bundled_model):
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(bundled_model)
    t.pad_token = None
    t.padding_side = "left"
    get_template("chatml", t).fix_tokenizer(t)
    assert t.pad_token == t.eos_token == "<|im_end|>" and t.padding_side == "right"

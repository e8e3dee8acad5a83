"""A Template as other programs' chat-template languages: Jinja (transformers, llama.cpp's GGUF metadata) and
Go templates (Ollama's Modelfile TEMPLATE). Both render what Template.render / encode_prompt give for the same
conversation; Template.to_jinja / to_go_template / matches_tokenizer are the way in (engine.data.templates).

The Jinja is checked against Template.render for every template in tests/test_reference_templates.py; the Go
template against it in tests/test_export_gguf.py (a small renderer of the subset written here).
"""
from __future__ import annotations

import json
import re

from .tools import CALL_CLOSE, CALL_OPEN, RESULT_CLOSE, RESULT_OPEN, TOOLS_PROMPT


def _literal(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid Jinja string literal (\n, \", \uXXXX)


def _expr(fmt: str, content: str, bos: str, eos: str) -> str:
    """A Template format string ('...{content}...') as one Jinja expression."""
    terms = []
    for part in re.split(r"(\{content\}|\{bos\}|\{eos\})", fmt):
        if part == "{content}":
            terms.append(content)
        elif part == "{bos}":
            terms.append(_literal(bos))
        elif part == "{eos}":
            terms.append(_literal(eos))
        elif part:
            terms.append(_literal(part))
    return " ~ ".join(terms) if terms else '""'


def _answer_jinja(t) -> str:
    """Jinja that sets `text` to m['content'] as Template._answer writes it (`final`: the answer after the last user
    message): thinking dropped from earlier answers, the last one with its thought block."""
    strip = "assistant" in t.trim
    if not t.thought:
        return "{%- set text = m['content'] | trim -%}" if strip else "{%- set text = m['content'] -%}"
    open_, close = t.thought
    o, c = _literal(open_.strip()), _literal(close.strip())
    out = ("{%- set text = m['content'] -%}{%- set r = none -%}"
           f"{{%- if {c} in text -%}}{{%- set r = text.split({c})[0].rstrip('\\n').split({o})[-1].lstrip('\\n') -%}}"
           f"{{%- set text = text.split({c})[-1] -%}}{{%- endif -%}}")
    if strip:
        out += "{%- set text = text.strip() -%}"
    rest = "{%- if final or r is not none -%}{%- set text = text.lstrip('\\n') -%}{%- endif -%}"
    if t.history_thought:
        rest += f"{{%- set text = {_literal(open_ + close)} ~ text -%}}"
    if not t.thinking:
        return out + rest
    r = "(r or '').strip()" if strip else "(r or '').strip('\\n')"
    head = "" if t.thought_in_prompt else f"{_literal(open_)} ~ "
    return (out + f"{{%- if final -%}}{{%- set text = {head}{r} ~ {_literal(close)} ~ text.lstrip('\\n') -%}}"
            + "{%- else -%}" + rest + "{%- endif -%}")


def _tools_jinja() -> str:
    """Jinja that renders `tools` and the OpenAI / transformers tool turns (assistant `tool_calls`, role `tool`) in
    engine.data.tools' documented format, as tools.flatten does before a template renders: the tool list joins
    the system prompt, calls become the assistant's turn, consecutive results one user turn."""
    head, tail = TOOLS_PROMPT.format(tools="\0").split("\0")
    nl = _literal("\n")
    spec = ("{%- set f = t['function'] if t['function'] is defined else t -%}"
            "{%- set d = {'name': f['name'], 'description': f['description'] if f['description'] is defined and "
            "f['description'] is not none else ''} -%}"
            "{%- if f['parameters'] is defined and f['parameters'] is not none -%}"
            "{%- set d = {'name': d['name'], 'description': d['description'], 'parameters': f['parameters']} -%}"
            "{%- endif -%}")
    tool_list = (
        "{%- if tools -%}{%- set tb = namespace(lines=[]) -%}{%- for t in tools -%}" + spec
        + "{%- set tb.lines = tb.lines + [{'type': 'function', 'function': d} | tojson] -%}{%- endfor -%}"
        + "{%- set system = (system ~ " + _literal("\n\n") + " if system else '') ~ " + _literal(head)
        + " ~ (tb.lines | join(" + nl + ")) ~ " + _literal(tail) + " -%}{%- endif -%}")
    call = ("{%- set f = c['function'] if c['function'] is defined else c -%}"
            "{%- set a = f['arguments'] if f['arguments'] is defined and f['arguments'] is not none else {} -%}"
            "{%- set a = a if a is string else a | tojson -%}"
            "{%- set tb.text = tb.text ~ (" + nl + " if not loop.first else '') ~ " + _literal(CALL_OPEN + "\n")
            + " ~ " + _literal('{"name": ') + " ~ (f['name'] | tojson) ~ " + _literal(', "arguments": ')
            + " ~ a ~ " + _literal("}\n" + CALL_CLOSE) + " -%}")
    result = _literal(RESULT_OPEN + "\n") + " ~ m['content'] ~ " + _literal("\n" + RESULT_CLOSE)
    turns = (
        "{%- set tb = namespace(msgs=[], text='', result=false) -%}{%- for m in loop_messages -%}"
        "{%- if m['role'] == 'assistant' and m['tool_calls'] is defined and m['tool_calls'] -%}"
        "{%- set tb.text = '' -%}{%- for c in m['tool_calls'] -%}" + call + "{%- endfor -%}"
        "{%- set tb.msgs = tb.msgs + [{'role': 'assistant', 'content': tb.text}] -%}{%- set tb.result = false -%}"
        "{%- elif m['role'] == 'tool' -%}{%- set r = " + result + " -%}"
        "{%- if tb.result -%}"  # several results answer one turn of calls: one user turn
        "{%- set tb.msgs = tb.msgs[:-1] + [{'role': 'user', 'content': tb.msgs[-1]['content'] ~ " + nl + " ~ r}] -%}"
        "{%- else -%}{%- set tb.msgs = tb.msgs + [{'role': 'user', 'content': r}] -%}{%- endif -%}"
        "{%- set tb.result = true -%}"
        "{%- else -%}{%- set tb.msgs = tb.msgs + [m] -%}{%- set tb.result = false -%}{%- endif -%}"
        "{%- endfor -%}{%- set loop_messages = tb.msgs -%}")
    return tool_list + turns


def jinja(template, tokenizer) -> str:
    """A Jinja chat template that renders what `template.encode_prompt` encodes (tests/test_reference_templates.py
    checks it against Template.render for every template). The assistant header is part of each user turn (as in
    TuneBoard's templates), so add_generation_prompt has no extra effect."""
    from .templates import _tokenizer_adds_bos
    t = template
    bos, eos = t._bos(), t._eos()
    add_bos = t.add_bos if t.add_bos is not None else _tokenizer_adds_bos(tokenizer)
    stop = t.stop_words[0] if t.stop_words else ""
    later_user = t.format_user[len(stop):] if t.stop_opens_turn and stop and t.format_user.startswith(stop) \
        else t.format_user  # the previous answer ended with the header
    system = _expr(t.format_system, "system", bos, eos)
    user = _expr(t.format_user, "u", bos, eos)
    user_later = _expr(later_user, "u", bos, eos)
    at = "ns.last" if t.system_last else "0"
    gen = t._generation_suffix()
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
        f"{{%- else -%}}{{%- set system = {_literal(t.default_system or '')} -%}}"
        "{%- set loop_messages = messages -%}{%- endif -%}"
        + _tools_jinja()
        + ("{%- set system = system | trim -%}" if "system" in t.trim else "")
        + f"{{%- set sys_text = ({system}) if (system or {str(t.system_always).lower()}) else '' -%}}"
        "{%- set ns = namespace(last=-1) -%}"
        "{%- for m in loop_messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}"
        + (f"{{{{ {_literal(bos)} }}}}" if add_bos and bos else "")
        + (f"{{{{ {_literal(t.prefix)} }}}}" if t.prefix else "")
        + "{%- for m in loop_messages -%}"
        "{%- if m['role'] == 'user' -%}"
        + ("{%- set u = m['content'] | trim -%}" if "user" in t.trim else "{%- set u = m['content'] -%}")
        + f"{{%- if not loop.first -%}}{{{{ {_literal(t.separator)} }}}}{{%- endif -%}}"
        + (f"{{%- if sys_text and loop.index0 == {at} -%}}{{%- set u = sys_text ~ u -%}}{{%- endif -%}}"
           if t.system_in_user else "{%- if loop.first -%}{{ sys_text }}{%- endif -%}")
        + f"{{%- if loop.first -%}}{{{{ {user} }}}}{{%- else -%}}{{{{ {user_later} }}}}{{%- endif -%}}"
        + (f"{{%- if loop.index0 == ns.last -%}}{{{{ {_literal(gen)} }}}}{{%- endif -%}}" if gen else "")
        + "{%- elif m['role'] == 'assistant' -%}{%- set final = loop.index0 == ns.last + 1 -%}"
        + _answer_jinja(t)
        + f"{{{{ {_expr(t.format_assistant, 'text', bos, eos)} }}}}"
        "{%- endif -%}{%- endfor -%}"
    )


_PROBES = (
    [{"role": "user", "content": "Hi there"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
)


_TOOL = {"name": "lookup", "description": "Look a word up.",
         "parameters": {"type": "object", "properties": {"word": {"type": "string"}}}}
_TOOL_PROBE = (  # (TuneBoard's turns, the same as transformers writes them)
    [{"role": "user", "content": "Look up 'tune'"}, {"role": "function", "content": '{"name": "lookup", '
     '"arguments": {"word": "tune"}}'}, {"role": "observation", "content": "a melody"}],
    [{"role": "user", "content": "Look up 'tune'"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "lookup", "arguments": {"word": "tune"}}}]},
     {"role": "tool", "content": "a melody"}])


def matches_tokenizer(template, tokenizer) -> bool:
    """Does the tokenizer's own chat template already produce TuneBoard's prompts, tool turns included?"""
    if not tokenizer.chat_template:
        return False
    ours, theirs = _TOOL_PROBE
    try:
        for msgs in _PROBES:
            own = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
            if list(own) != template.encode_prompt(tokenizer, msgs):
                return False
        own = tokenizer.apply_chat_template(theirs, tools=[{"type": "function", "function": _TOOL}],
                                            add_generation_prompt=True, tokenize=True, return_dict=False)
        if list(own) != template.encode_prompt(tokenizer, ours, tools=[_TOOL]):
            return False
    except Exception:  # a template that refuses system messages etc.: not a match
        return False
    return True




# ---- Go template (Ollama's Modelfile TEMPLATE)
# Ollama hands a TEMPLATE that reads .Messages the conversation as messages (system, user, assistant with
# .ToolCalls, tool) after merging consecutive messages of one role, .System as the system messages' text (the
# Modelfile's SYSTEM when the request has none) and .Tools; `json` is its function that writes Go's compact JSON.
# Written on one line with no trim markers, so every literal character is the template's own. Not modelled (no Go
# template function for them): the `trim` of a role's text, and the JSON spacing of tool specs and call arguments
# (Go writes {"a":1} where training wrote {"a": 1}). BOS is not written: llama.cpp adds it from the GGUF.

def _go_text(fmt: str, bos: str, eos: str) -> tuple[str, str]:
    """A format string's text before and after {content}, placeholders filled (Go template literal text)."""
    fmt = fmt.replace("{bos}", bos).replace("{eos}", eos)
    head, _, tail = fmt.partition("{content}")
    for part in (head, tail):
        if "{{" in part:
            raise ValueError(f"format {fmt!r} holds '{{{{', which a Go template cannot write literally")
    return head, tail


def go_template(template) -> str:
    """Ollama's TEMPLATE for `template`: the prompt it renders for a conversation is what Template.render gives
    (without bos), tool lists, calls and results in engine.data.tools' documented format."""
    t = template
    bos, eos = t._bos(), t._eos()
    stop = t.stop_words[0] if t.stop_words else ""
    sys_head, sys_tail = _go_text(t.format_system, bos, eos)
    user_head, user_tail = _go_text(t.format_user, bos, eos)
    later_head = user_head[len(stop):] if t.stop_opens_turn and stop and user_head.startswith(stop) else user_head
    ans_head, ans_tail = _go_text(t.format_assistant, bos, eos)
    if t.history_thought and t.thought:
        ans_head += "".join(t.thought)
    tools_head, tools_tail = TOOLS_PROMPT.format(tools="\0").split("\0")
    system = ("{{ if or $.System $.Tools" + (" true" if t.system_always else "") + " }}" + sys_head
              + "{{ if $.System }}{{ $.System }}{{ if $.Tools }}\n\n{{ end }}{{ end }}"
              + "{{ if $.Tools }}" + tools_head + "{{ range $k, $t := $.Tools }}{{ if $k }}\n{{ end }}{{ json $t }}"
              + "{{ end }}" + tools_tail + "{{ end }}" + sys_tail + "{{ end }}")
    if t.system_in_user:
        at = "(eq $i $last)" if t.system_last else "$first"
        sys_before, sys_in = "", "{{ if " + at + " }}" + system + "{{ end }}"
    else:
        sys_before, sys_in = "{{ if $first }}" + system + "{{ end }}", ""
    gen = t._generation_suffix()
    user_turn = lambda content: (  # noqa: E731 - a user message or a tool result: one user turn
        "{{ if not $first }}" + t.separator + "{{ end }}" + sys_before
        + (user_head if later_head == user_head else "{{ if $first }}" + user_head + "{{ else }}" + later_head
           + "{{ end }}") + sys_in + content + user_tail
        + ("{{ if eq $i $last }}" + gen + "{{ end }}" if gen else "") + "{{ $first = false }}")
    call = ("{{ range $k, $c := $m.ToolCalls }}{{ if $k }}\n{{ end }}" + CALL_OPEN
            + '\n{"name": "{{ $c.Function.Name }}", "arguments": {{ json $c.Function.Arguments }}}\n'
            + CALL_CLOSE + "{{ end }}")
    return (
        "{{ $first := true }}{{ $last := -1 }}"
        "{{ range $i, $m := .Messages }}{{ if or (eq $m.Role \"user\") (eq $m.Role \"tool\") }}{{ $last = $i }}"
        "{{ end }}{{ end }}" + t.prefix
        + "{{ range $i, $m := .Messages }}"
        + "{{ if eq $m.Role \"user\" }}" + user_turn("{{ $m.Content }}")
        + "{{ else if eq $m.Role \"tool\" }}" + user_turn(RESULT_OPEN + "\n{{ $m.Content }}\n" + RESULT_CLOSE)
        + "{{ else if eq $m.Role \"assistant\" }}" + ans_head
        + "{{ if $m.ToolCalls }}" + call + "{{ else }}{{ $m.Content }}{{ end }}" + ans_tail
        + "{{ end }}{{ end }}")

"""Tool calling: tool lists, calls and tool results in a conversation, and calls parsed back from text.

A standard sft record may carry `tools` (a JSON list of function specs) and two more message roles:

    function     the assistant's call(s): JSON {"name", "arguments"} or a JSON list of them (trained)
    observation  what the tool returned (not trained)

Templates without native tool support render them in one documented format (README, "Tool calling"):

    the tool list   appended to the system prompt, one spec per line inside <tools></tools>, with how to call
    a call          the assistant's turn: one <tool_call>{"name": ..., "arguments": {...}}</tool_call> per call
    a tool result   a user turn holding <tool_response>...</tool_response> (one block per result)

so the conversation still alternates user / assistant and the usual masking trains the calls and answers only.
`parse_tool_calls` reads the calls back from generated text; the chat engine, the web UI and the API share it.
"""
from __future__ import annotations

import json
import re
import uuid

from ..errors import UserError

FUNCTION, OBSERVATION = "function", "observation"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESULT_OPEN, RESULT_CLOSE = "<tool_response>", "</tool_response>"

TOOLS_PROMPT = (
    "You can use the tools below. Each line inside <tools></tools> describes one function as JSON:\n"
    "<tools>\n{tools}\n</tools>\n\n"
    "To use a tool, reply with one block per call, and nothing else:\n"
    + CALL_OPEN + "\n{{\"name\": \"<function name>\", \"arguments\": {{<arguments as a JSON object>}}}}\n"
    + CALL_CLOSE + "\nThe results come back to you inside " + RESULT_OPEN + RESULT_CLOSE + " blocks.")


def _spec(t, where: str) -> dict:
    if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict):
        t = t["function"]  # OpenAI's {"type": "function", "function": {...}}
    if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"].strip():
        raise UserError(f"{where}: each tool must be an object with a \"name\" (and \"description\", "
                        "\"parameters\": a JSON schema), got " + json.dumps(t, ensure_ascii=False)[:80] + ".")
    out = {"name": t["name"], "description": t.get("description", "")}
    if t.get("parameters") is not None:
        if not isinstance(t["parameters"], dict):
            raise UserError(f"{where}: tool {t['name']!r}: \"parameters\" must be a JSON schema object.")
        out["parameters"] = t["parameters"]
    return out


def parse_tools(value, where: str = "tools") -> list[dict]:
    """A tool list (JSON text, a list, or one spec) -> [{"name", "description", "parameters"}]; [] for none.
    Raises UserError naming `where` when it is not a list of function specs."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); give a JSON "
                            "list of function specs like [{\"name\": ..., \"description\": ..., "
                            "\"parameters\": {...}}].") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{where}: expected a JSON list of function specs.")
    return [_spec(t, where) for t in value]


def tools_json(value, where: str = "tools") -> str | None:
    """A tool list as the canonical JSON text the standard record stores (None for no tools)."""
    tools = parse_tools(value, where)
    return json.dumps(tools, ensure_ascii=False) if tools else None


def _call(c, where: str) -> dict:
    if isinstance(c, dict) and isinstance(c.get("function"), dict):
        c = c["function"]  # OpenAI's tool_calls item
    if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
        raise UserError(f"{where}: a call must be an object {{\"name\": ..., \"arguments\": {{...}}}}.")
    args = c.get("arguments", c.get("parameters", {}))
    if isinstance(args, str):  # OpenAI sends arguments as JSON text
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise UserError(f"{where}: the arguments of {c['name']!r} are not valid JSON.") from None
    if args is None:
        args = {}
    return {"name": c["name"], "arguments": args}


def parse_calls(value, where: str = "function_call") -> list[dict]:
    """A function turn's content (JSON text of one call or a list of calls) -> [{"name", "arguments"}]."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise UserError(f"{where}: not JSON; a call is {{\"name\": ..., \"arguments\": {{...}}}} "
                            "(or a list of them).") from None
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise UserError(f"{where}: an empty list of calls.")
    return [_call(c, where) for c in calls]


def calls_json(calls: list[dict]) -> str:
    """Calls as a function turn's content (JSON text, a list when there are several)."""
    return json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)


# ---- the documented text format

def tools_prompt(tools: list[dict]) -> str:
    return TOOLS_PROMPT.format(tools="\n".join(json.dumps({"type": "function", "function": t}, ensure_ascii=False)
                                               for t in tools))


def render_calls(content: str) -> str:
    return "\n".join(f"{CALL_OPEN}\n{json.dumps(c, ensure_ascii=False)}\n{CALL_CLOSE}" for c in parse_calls(content))


def render_result(content: str) -> str:
    return f"{RESULT_OPEN}\n{content}\n{RESULT_CLOSE}"


def has_tool_turns(messages) -> bool:
    return any(m.get("role") in (FUNCTION, OBSERVATION) for m in messages)


def flatten(messages: list[dict], system: str | None, tools, default_system: str = "") -> tuple[list[dict], str | None]:
    """Messages with function / observation turns and a tool list -> plain user / assistant turns and the system
    text, in the documented format. Consecutive observations (several results) become one user turn."""
    tools = parse_tools(tools) if not isinstance(tools, list) else tools
    if not tools and not has_tool_turns(messages):
        return messages, system
    if messages and messages[0].get("role") == "system":  # a leading system message, as _split_system reads it
        system = system or messages[0].get("content", "")
        messages = messages[1:]
    if tools:
        base = system or default_system
        system = (base + "\n\n" if base else "") + tools_prompt(tools)
    out: list[dict] = []
    for m in messages:
        role, content = m.get("role"), m.get("content", "")
        if role == FUNCTION:
            out.append({"role": "assistant", "content": render_calls(content)})
        elif role == OBSERVATION:
            if out and out[-1].get("_result"):
                out[-1]["content"] += "\n" + render_result(content)
            else:
                out.append({"role": "user", "content": render_result(content), "_result": True})
        else:
            out.append({"role": role, "content": content})
    return [{"role": m["role"], "content": m["content"]} for m in out], system


_BLOCK = re.compile(re.escape(CALL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(CALL_CLOSE) + r"|$)", re.S)


def parse_tool_calls(text: str) -> tuple[str, list[dict]]:
    """Generated text -> (the text outside the call blocks, [{"name", "arguments": dict}]). A block whose JSON does
    not parse as a call stays in the text (the model's mistake is shown, not hidden). An unclosed last block (the
    answer hit max_tokens) counts when its JSON is complete."""
    calls, keep, pos = [], [], 0
    for m in _BLOCK.finditer(text):
        try:
            found = parse_calls(m.group(1))
        except UserError:
            continue
        keep.append(text[pos:m.start()])
        calls += found
        pos = m.end()
    keep.append(text[pos:])
    return ("".join(keep).strip() if calls else text), calls


class CallHoldback:
    """Streams an answer that may hold tool calls: plain text goes out as it is generated; from the first call
    opener on (and while the text ends in what may be the start of one) the rest is held until the answer is
    complete, when parse_tool_calls reads it. Trailing whitespace is held too, because an answer with calls has
    its text stripped: what feed() and finish() hand out then joins to parse_tool_calls' text (or, without a
    call, to the whole answer)."""

    def __init__(self, openers: tuple[str, ...] = (CALL_OPEN,)):
        self.openers = openers
        self.text, self.sent, self.holding = "", 0, False

    def _partial(self) -> int:
        """How many trailing characters may begin an opener."""
        best = 0
        for o in self.openers:
            for k in range(min(len(o) - 1, len(self.text)), best, -1):
                if self.text.endswith(o[:k]):
                    best = k
                    break
        return best

    def feed(self, delta: str) -> str:
        """The part of the answer so far that can be shown now ("" while holding)."""
        self.text += delta
        if self.holding:
            return ""
        hits = [i for i in (self.text.find(o, self.sent) for o in self.openers) if i >= 0]
        self.holding = bool(hits)
        end = min(hits) if hits else len(self.text) - self._partial()
        end = max(self.sent, len(self.text[:end].rstrip()))
        out, self.sent = self.text[self.sent:end], end
        return out

    def finish(self) -> tuple[str, str, list[dict]]:
        """(what is left to show, the answer's text, its calls) once the answer is complete."""
        text, calls = parse_tool_calls(self.text) if self.holding else (self.text, [])
        shown = self.text[:self.sent]
        if calls and text.startswith(shown.lstrip()):
            return text[len(shown.lstrip()):], text, calls
        return self.text[self.sent:], text, calls


def openai_tool_calls(calls: list[dict]) -> list[dict]:
    """Parsed calls in OpenAI's response shape (arguments as JSON text)."""
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
            for c in calls]

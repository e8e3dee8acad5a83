"""A small Go text/template renderer for the subset engine/data/template_export.go_template writes (and Ollama's
functions it uses), so the tests can render an Ollama TEMPLATE without Go or Ollama.

Subset: text, {{ }} actions with optional trim markers, if / else if / else / end, range [$i, $v :=] PIPE, variable
declaration (:=) and assignment (=) with Go's block scopes, fields (.A.B, $.A, $v.A), string / int / bool literals,
parenthesised calls, and the functions eq, ne, not, and, or, len, index, slice, print, json (Go's json.Marshal:
compact, HTML characters escaped). Anything else raises, so a template outside the subset fails the test loudly.
"""
from __future__ import annotations

import json
import re

_TOKEN = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|-?\d+|:=|=|,|[$.\w]+)')


def _tokens(src: str) -> list[str]:
    out, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise SyntaxError(f"cannot read {src[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return [t for t in out if t != ""]


def _parse(src: str) -> list:
    """Template text -> a tree: [str | ("out", expr) | ("if", [(cond, body)], else) | ("range", vars, expr, body)
    | ("set", name, expr, declare)]."""
    parts = re.split(r"(\{\{.*?\}\})", src, flags=re.S)
    items = []  # ("text", s) | ("act", tokens)
    for i, p in enumerate(parts):
        if i % 2 == 0:
            items.append(["text", p])
            continue
        inner = p[2:-2]
        if inner.startswith("-"):
            inner = inner[1:]
            if items and items[-1][0] == "text":
                items[-1][1] = items[-1][1].rstrip()
        trim_right = inner.endswith("-")
        if trim_right:
            inner = inner[:-1]
        items.append(["act", _tokens(inner)])
        if trim_right:
            items.append(["trim"])
    # apply right trims
    flat = []
    trim = False
    for it in items:
        if it[0] == "trim":
            trim = True
            continue
        if it[0] == "text" and trim:
            it = ["text", it[1].lstrip()]
        trim = False
        flat.append(it)
    pos = 0

    def block(stop: tuple) -> tuple[list, list]:
        nonlocal pos
        body = []
        while pos < len(flat):
            kind, val = flat[pos]
            pos += 1
            if kind == "text":
                if val:
                    body.append(val)
                continue
            head = val[0]
            if head in stop:
                return body, val
            if head == "if":
                branches, els = [], None
                cond = _expr(val[1:])
                while True:
                    sub, end = block(("else", "end"))
                    if cond is not None:
                        branches.append((cond, sub))
                    else:
                        els = sub
                    if end[0] == "end":
                        break
                    if len(end) > 1 and end[1] == "if":
                        cond = _expr(end[2:])
                    else:
                        cond = None
                body.append(("if", branches, els))
            elif head == "range":
                rest = val[1:]
                names = []
                if ":=" in rest:
                    k = rest.index(":=")
                    names = [t for t in rest[:k] if t != ","]
                    rest = rest[k + 1:]
                sub, end = block(("end",))
                body.append(("range", names, _expr(rest), sub))
            elif len(val) > 1 and val[0].startswith("$") and val[1] in (":=", "="):
                body.append(("set", val[0], _expr(val[2:]), val[1] == ":="))
            else:
                body.append(("out", _expr(val)))
        if stop:
            raise SyntaxError(f"missing {{{{ end }}}} (wanted {stop})")
        return body, []

    tree, _ = block(())
    return tree


def _expr(toks: list[str]):
    """Tokens of a pipeline command -> ("call", name, args) | ("lit", v) | ("field", root, path)."""
    def operand(i: int):
        t = toks[i]
        if t == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(toks[j], 0)
                j += 1
            return _expr(toks[i + 1:j - 1]), j
        if t.startswith('"'):
            return ("lit", json.loads(t)), i + 1
        if re.fullmatch(r"-?\d+", t):
            return ("lit", int(t)), i + 1
        if t in ("true", "false"):
            return ("lit", t == "true"), i + 1
        if t.startswith("$") or t.startswith("."):
            root, _, path = (t, "", "") if t.startswith(".") else t.partition(".")
            if t.startswith("."):
                return ("field", ".", [p for p in t.split(".") if p]), i + 1
            return ("field", root, [p for p in path.split(".") if p]), i + 1
        raise SyntaxError(f"unknown operand {t!r}")

    if not toks:
        raise SyntaxError("empty action")
    if toks[0] in FUNCS:
        args, i = [], 1
        while i < len(toks):
            a, i = operand(i)
            args.append(a)
        return ("call", toks[0], args)
    node, i = operand(0)
    if i != len(toks):
        raise SyntaxError(f"unexpected {toks[i:]}")
    return node


def _truth(v) -> bool:
    return v not in (None, False, 0, "") and not (isinstance(v, (list, dict, tuple)) and not v)


def _go_json(v) -> str:
    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


FUNCS = {
    "eq": lambda a, *b: any(a == x for x in b), "ne": lambda a, b: a != b, "not": lambda a: not _truth(a),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
    "len": lambda a: len(a), "index": lambda a, *k: _index(a, k), "print": lambda *a: "".join(map(str, a)),
    "slice": lambda a, *k: a[slice(*k)], "json": _go_json,
}


def _index(a, keys):
    for k in keys:
        a = a[k]
    return a


class _Scope:
    def __init__(self, dot):
        self.frames = [{"$": dot}]

    def get(self, name):
        for f in reversed(self.frames):
            if name in f:
                return f[name]
        raise NameError(f"undefined variable {name}")

    def assign(self, name, value):
        for f in reversed(self.frames):
            if name in f:
                f[name] = value
                return
        raise NameError(f"assignment to undeclared {name}")


def _field(v, name):
    if isinstance(v, dict):
        return v.get(name)
    raise TypeError(f"cannot read field {name} of {type(v).__name__}")


def _eval(node, dot, scope: _Scope):
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "field":
        v = dot if node[1] == "." else scope.get(node[1])
        for p in node[2]:
            v = _field(v, p)
        return v
    if kind == "call":
        args = [_eval(a, dot, scope) for a in node[2]]
        return FUNCS[node[1]](*args)
    raise SyntaxError(f"cannot evaluate {node!r}")


def _text(v) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _run(tree, dot, scope: _Scope, out: list) -> None:
    for node in tree:
        if isinstance(node, str):
            out.append(node)
        elif node[0] == "out":
            out.append(_text(_eval(node[1], dot, scope)))
        elif node[0] == "set":
            value = _eval(node[2], dot, scope)
            if node[3]:
                scope.frames[-1][node[1]] = value
            else:
                scope.assign(node[1], value)
        elif node[0] == "if":
            for cond, body in node[1]:
                if _truth(_eval(cond, dot, scope)):
                    scope.frames.append({})
                    _run(body, dot, scope, out)
                    scope.frames.pop()
                    break
            else:
                if node[2] is not None:
                    scope.frames.append({})
                    _run(node[2], dot, scope, out)
                    scope.frames.pop()
        elif node[0] == "range":
            seq = _eval(node[2], dot, scope) or []
            for i, item in enumerate(seq):
                frame = {}
                if len(node[1]) == 2:
                    frame = {node[1][0]: i, node[1][1]: item}
                elif len(node[1]) == 1:
                    frame = {node[1][0]: item}
                scope.frames.append(frame)
                _run(node[3], item, scope, out)
                scope.frames.pop()


def render(template: str, data: dict) -> str:
    out: list[str] = []
    _run(_parse(template), data, _Scope(data), out)
    return "".join(out)


def ollama_values(messages: list[dict], system: str = "", tools: list | None = None) -> dict:
    """What Ollama hands a Messages template: consecutive messages of one role merged ("\\n\\n"), .System the system
    messages' text (the Modelfile's SYSTEM when the request has none), tool calls as .ToolCalls[].Function."""
    msgs = list(messages)
    if system and not any(m["role"] == "system" for m in msgs):
        msgs = [{"role": "system", "content": system}] + msgs
    merged: list[dict] = []
    for m in msgs:
        item = {"Role": m["role"], "Content": m.get("content") or "",
                "ToolCalls": [{"Function": {"Name": c["function"]["name"], "Arguments": c["function"]["arguments"]}}
                              for c in m.get("tool_calls") or []]}
        if merged and merged[-1]["Role"] == item["Role"]:
            merged[-1]["Content"] += "\n\n" + item["Content"]
        else:
            merged.append(item)
    sys_text = "\n\n".join(m["Content"] for m in merged if m["Role"] == "system")
    return {"System": sys_text, "Messages": merged, "Tools": tools or []}

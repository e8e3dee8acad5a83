"""Every backticked identifier in a docstring of engine/ and webui/ names something that exists.

Which backticked words count: a word between single backticks that is a Python name or a dotted chain of names
(`load_records`, `engine.runs.Run`, `ns.explicit`); text with spaces, options (`--help`), key=value words and paths
are not names and are not checked. A name resolves when it is
  - a module or a dotted path that imports (the longest importable prefix, then attributes): `engine.runs.Run`,
    `datasets`;
  - a name, or a dotted chain from a name, reachable in the docstring's own module: `Template.to_jinja`;
  - a parameter of the function the docstring belongs to, or an attribute of its class (class body, __slots__,
    self.<name> in a method);
  - defined at module or class level (or as self.<name>) anywhere in engine/ or webui/, or an argument of the
    schema (engine.args): the prose names a function of a sibling module, an instance's attribute (`ns.explicit`),
    an argument (`stage`);
  - a builtin.
WORDS lists the backticked words that are values or names on the wire, not names of code.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

from engine.args import BY_NAME

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "webui")
IDENT = re.compile(r"(?<![`\w])`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)`(?![`\w])")
WORDS = {
    "auto", "aborting",                                      # values of template / precision, a run's state
    "tool", "function", "observation",                       # chat roles
    "chat.completion", "chat.completion.chunk",              # OpenAI object types
    "message.tool_calls", "delta.tool_calls",                # fields of OpenAI responses
    "accuracy", "margin", "answer", "final",                 # metric, dataset column and Jinja variable names
    "position_ids", "stop_by", "overrides",                  # a batch key, a status.json field, a CLI field
    "kill", "ps",                                            # shell commands
}


def modules() -> dict[str, ast.Module]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if p.name == "__main__.py":  # importing it runs the command line
                continue
            parts = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = ast.parse(p.read_text(encoding="utf-8"))
    return out


def class_names(cls: ast.ClassDef) -> set[str]:
    """What an instance of `cls` has: its body's names, __slots__, self.<name> set in its methods."""
    names = set()
    for node in cls.body:
        names |= defined(node)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            names |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
    return names


def defined(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
        else []
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def params(fn) -> set[str]:
    a = fn.args
    return {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x is not None}


def docstrings(tree: ast.Module):
    """(docstring, names of its owner: parameters, class attributes) for the module, each class and function."""
    yield ast.get_docstring(tree, clean=False), set()

    def walk(node, cls_names: set):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                own = class_names(child)
                yield ast.get_docstring(child, clean=False), own
                yield from walk(child, own)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield ast.get_docstring(child, clean=False), params(child) | cls_names
                yield from walk(child, cls_names)
    yield from walk(tree, set())


def reachable(obj, attrs: list[str]) -> bool:
    for a in attrs:
        if not hasattr(obj, a):
            return False
        obj = getattr(obj, a)
    return True


def importable(parts: list[str]) -> bool:
    for i in range(len(parts), 0, -1):
        try:
            mod = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        return reachable(mod, parts[i:])
    return False


def resolves(word: str, module, local: set[str], project: set[str]) -> bool:
    head, *rest = parts = word.split(".")
    if importable(parts):
        return True
    if hasattr(module, head):
        return reachable(getattr(module, head), rest)
    if not rest:
        return word in local or word in project or word in BY_NAME or hasattr(builtins, word)
    return parts[-1] in project  # an instance named by its role (`ns.explicit`, `template.encode_prompt`)


def unresolved() -> list[str]:
    trees = modules()
    project = set()
    for tree in trees.values():
        for node in tree.body:
            project |= defined(node)
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            project |= class_names(cls)
    bad = []
    for name, tree in trees.items():
        module = importlib.import_module(name)
        for doc, local in docstrings(tree):
            for word in IDENT.findall(doc or ""):
                if word not in WORDS and not resolves(word, module, local, project):
                    bad.append(f"{name}: `{word}`")
    return bad


def test_every_backticked_identifier_in_a_docstring_resolves():
    assert unresolved() == []


def test_a_name_that_is_gone_is_found(monkeypatch):
    """The check itself: a docstring naming a function that no longer exists is reported, with its module."""
    trees = modules()
    doc = trees["engine.data.records"].body[0].value
    monkeypatch.setattr(doc, "value", doc.value + "\nSee `load_records_v0` and `engine.runs.NoSuchRun`.")
    monkeypatch.setattr(f"{__name__}.modules", lambda: trees)
    assert unresolved() == ["engine.data.records: `load_records_v0`", "engine.data.records: `engine.runs.NoSuchRun`"]

"""The shape of the code (issue 24): no function longer than MAX_LINES in the web UI or the API server, so a tab or a
route reads in one sitting. A nested function counts inside the one around it: a build function does not get
short by defining its handlers inside itself (tabs keep them as methods of their dataclass instead)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 80

CHECKED = ["webui", "engine/api.py"]


def long_functions(source: str, max_lines: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method longer than max_lines, nested ones counted inside."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > max_lines:
                out.append((node.name, node.lineno, n))
    return out


def _files(where: str) -> list[Path]:
    p = ROOT / where
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


@pytest.mark.parametrize("where", CHECKED)
def test_no_function_is_longer_than_max_lines(where):
    files = _files(where)
    assert files and all(f.is_file() for f in files), f"{where}: nothing to check"
    found = [f"{f.relative_to(ROOT)}:{line} {name} is {n} lines" for f in files
             for name, line, n in long_functions(f.read_text(encoding="utf-8"))]
    assert not found, f"split these into named pieces (at most {MAX_LINES} lines each):\n" + "\n".join(found)


def test_the_measure_counts_lines_and_nested_handlers():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))
    at_limit = f"def fits():\n{body}\n"
    assert long_functions(at_limit) == []
    one_more = f"def too_long():\n{body}\n    return 0\n"
    assert long_functions(one_more) == [("too_long", 1, MAX_LINES + 1)]
    # a build function whose handlers are defined inside it is as long as both
    nested = ("def build():\n" + "    def handler():\n" + "\n".join(f"        y{i} = {i}" for i in range(MAX_LINES))
              + "\n    return handler\n")
    assert [name for name, _, _ in long_functions(nested)] == ["build", "handler"]
    # methods count one by one, not the class around them
    cls = "class Tab:\n" + "".join(f"    def m{j}(self):\n" + "\n".join(f"        z{i} = {i}" for i in range(30)) + "\n"
                                   for j in range(4))
    assert long_functions(cls) == []

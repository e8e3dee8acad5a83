"""The command tables: `tuneboard` (above engine/ and webui/) and `python -m engine`; no import circles."""
from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import COMMANDS as ENGINE_COMMANDS
from engine.config import split_argv
from tuneboard.cli import COMMANDS, UI_COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """Top-level names of every module a source file imports (at any depth: lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package,forbidden", [("engine", {"webui", "tuneboard", "gradio"}),
                                                ("webui", {"tuneboard"})])
def test_no_package_imports_one_above_it(package, forbidden):
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) & forbidden) for p in (ROOT / package).rglob("*.py")}
    assert {k: v for k, v in bad.items() if v} == {}
    # the command targets are strings too: engine's table names only engine modules
    assert all(c.target.startswith("engine.") for c in ENGINE_COMMANDS.values())


def test_the_tuneboard_table_holds_every_command_and_each_target_exists():
    assert set(COMMANDS) == set(ENGINE_COMMANDS) | set(UI_COMMANDS)
    assert {"train", "chat", "webui", "webchat", "api", "eval", "export", "doctor", "download", "env",
            "version"} <= set(COMMANDS)
    for name, c in COMMANDS.items():
        module, _, fn = c.target.partition(":")
        target = getattr(importlib.import_module(module), fn)
        n = len(inspect.signature(target).parameters)
        assert n == {"split": 3, "raw": 1, "none": 0}[c.argv], f"{name}: {c.target} takes {n} arguments"


def test_help_imports_nothing_heavy():
    code = ("import sys; from tuneboard.cli import main; rc = main(['--help']); "
            "print(sorted(m for m in ('torch', 'transformers', 'gradio', 'datasets', 'webui') if m in sys.modules)); "
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "webui" in r.stdout and "train" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_version_and_unknown_commands(capsys):
    assert main(["version"]) == 0 and capsys.readouterr().out.startswith("tuneboard ")
    assert main(["trian"]) == 2 and "unknown command 'trian'" in capsys.readouterr().err
    assert main(["version", "extra"]) == 2 and "takes none" in capsys.readouterr().err
    from engine.cli import main as engine_main
    assert engine_main(["webui"]) == 2
    err = capsys.readouterr().err
    assert "tuneboard webui" in err and "Traceback" not in err


def test_python_m_engine_and_m_tuneboard_run_their_tables():
    for module in ("engine", "tuneboard"):
        r = subprocess.run([sys.executable, "-m", module, "version"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("tuneboard "), (module, r.stderr)
    r = subprocess.run([sys.executable, "-m", "tuneboard", "webui", "--port", "x"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "port" in r.stderr and "Traceback" not in r.stderr


def test_split_argv():
    assert split_argv(["r.yaml", "a=1", "--port", "7861", "--share", "b=x=y", "word"]) == (
        "r.yaml", ["a=1", "b=x=y"], ["--port", "7861", "--share", "word"])
    assert split_argv(["--json", "run_dir"]) == (None, [], ["--json", "run_dir"])
    assert split_argv(["a.yaml", "b.yml"]) == ("a.yaml", [], ["b.yml"])
    assert split_argv(["--host=0.0.0.0"]) == (None, [], ["--host=0.0.0.0"])

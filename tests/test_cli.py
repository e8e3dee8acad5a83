"""The command tables: `tuneboard` (above engine/ and webui/) and `python -m engine`; no import circles."""
from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine import args as schema
from engine.cli import COMMANDS as ENGINE_COMMANDS, groups_of, help_lang, parse
from engine.errors import UserError
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
        assert n == (1 if c.takes_input else 0), f"{name}: {c.target} takes {n} arguments"


def test_help_imports_nothing_heavy():
    code = ("import sys; from tuneboard.cli import main; rc = main(['--help']); "
            "rc |= main(['train', '--help']) | main(['webui', '--help']) | main(['api', '-h', 'model']); "
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


# ---------------------------------------------------------------- options parsed once, --help
# Where a module may still read its own command line: a maintenance entry that is no `tuneboard` command.
OWN_ARGV = {"engine/cli.py": "the dispatcher itself",
            "engine/export_gguf.py": "`python -m engine.export_gguf fetch` (make gguf-converter)"}


def test_options_are_parsed_only_by_the_dispatcher():
    """No second parser: only engine/cli.py imports argparse, and no module of the three packages reads sys.argv or
    compares a word with an option's spelling ("--port", "-h") by hand (the hand-written parsers this replaced)."""
    found = {}
    for package in ("engine", "webui", "tuneboard"):
        for path in (ROOT / package).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text(encoding="utf-8"), rel)
            for node in ast.walk(tree):
                what = None
                if isinstance(node, (ast.Import, ast.ImportFrom)) and rel != "engine/cli.py":
                    names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                    what = "argparse" if "argparse" in names else None
                elif (isinstance(node, ast.Attribute) and node.attr == "argv" and isinstance(node.value, ast.Name)
                      and node.value.id == "sys" and rel not in OWN_ARGV):
                    what = "sys.argv"
                elif isinstance(node, ast.Compare) and rel != "engine/cli.py":
                    consts = [c.value for side in [node.left, *node.comparators] for c in ast.walk(side)
                              if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                    what = next((c for c in consts if re.fullmatch(r"--?[a-z][a-z-]*", c)), None)
                if what:
                    found.setdefault(rel, []).append(f"{node.lineno}: {what}")
    assert found == {}


def _help(capsys, *argv) -> str:
    rc = main([*argv])
    out = capsys.readouterr()
    assert rc == 0 and "Traceback" not in out.err, out.err
    return out.out


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help_listing_its_options(name, flag, capsys, monkeypatch):
    monkeypatch.delenv("TUNEBOARD_LANG", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    out = _help(capsys, name, flag)
    assert out.startswith(f"usage: tuneboard {name}")
    shown = [o.flags[-1] for o in COMMANDS[name].options if o.help != argparse.SUPPRESS]
    for option in shown + ["--help"]:
        assert f"  {option}" in out or f", {option}" in out, (name, option)
    # what each option says (English here), so a declared option cannot be listed without its help
    for o in COMMANDS[name].options:
        if o.help != argparse.SUPPRESS:
            assert o.help[0] in out


def test_train_help_lists_every_train_argument_in_its_group(capsys, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_LANG", "en")
    out = _help(capsys, "train", "--help")
    lines = out.splitlines()
    where, group, compat = {}, None, False  # argument -> (its group's header, its line number)
    for i, ln in enumerate(lines):
        if re.match(r"\S.* \[\w+\]$", ln):  # a group's header: "Label [key]"
            group, compat = ln, False
        elif m := re.match(r"  (\w+)  ", ln):
            where[m[1]], compat = (group, i), False
        elif ln.startswith("  LLaMA-Factory keys") or (compat and ln.startswith("      ")):
            compat = True
            where.update({n.strip(): (group, i) for n in ln.split(": ", 1)[-1].split(",") if n.strip()})
    train_args = [a for a in schema.ARGS if "train" in a.commands]
    assert len(train_args) > 100 and set(where) == {a.name for a in train_args}
    for a in train_args:
        group, at = where[a.name]
        assert group == f"{schema.group_label(a.group)} [{a.group}]", (a.name, group)
        if not a.compat:  # type, default and help on its own lines; LLaMA-Factory keys by name
            assert lines[at].startswith(f"  {a.name}  {a.type}")
            assert a.help_en.split()[0] in lines[at + 1]
    headers = [ln for ln in lines if re.match(r"\S.* \[\w+\]$", ln)]
    # groups in the UI's order (engine.args.GROUPS), a schema-only argument not for train is absent
    order = [ln.rsplit("[", 1)[1].rstrip("]") for ln in headers]
    assert order == groups_of("train") == [g for g in schema.GROUPS if g in order]
    assert "export_dir  " not in out
    lr = next(ln for ln in lines if ln.startswith("  learning_rate  "))
    a = schema.BY_NAME["learning_rate"]
    assert lr.split()[:4] == ["learning_rate", "float", "=", str(a.default)]
    assert f"[{a.min:g}, {a.max:g}]" in lr
    stage = next(ln for ln in lines if ln.startswith("  stage  "))
    assert "{" + ", ".join(schema.BY_NAME["stage"].choices) + "}" in stage


def test_help_of_one_group_or_argument(capsys, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_LANG", "en")
    out = _help(capsys, "train", "--help", "lora")
    listed = set(re.findall(r"^  (\w+)  ", out, re.M))
    assert listed == {a.name for a in schema.ARGS if a.group == "lora" and "train" in a.commands and not a.compat}
    assert "Basic training [train]" not in out and "LoRA [lora]" in out
    assert re.findall(r"^  (\w+)  ", _help(capsys, "train", "-h", "cutoff_len"), re.M) == ["cutoff_len"]
    # an unknown group: the list of groups, exit 2
    assert main(["train", "--help", "lorra"]) == 2
    err = capsys.readouterr().err
    assert "lorra" in err and all(g in err for g in groups_of("train")) and "Traceback" not in err
    # chat's groups are infer's: no lora group there
    assert main(["chat", "--help", "lora"]) == 2 and "lora" in capsys.readouterr().err


def test_help_in_chinese(capsys, monkeypatch):
    monkeypatch.delenv("TUNEBOARD_LANG", raising=False)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    out = _help(capsys, "train", "--help", "lora")
    rank = schema.BY_NAME["lora_rank"]
    assert f"{schema.group_label('lora', 'zh')} [lora]" in out and rank.help_zh in out and rank.help_en not in out
    monkeypatch.setenv("TUNEBOARD_LANG", "en")  # the explicit choice wins over the locale
    assert rank.help_en in _help(capsys, "train", "--help", "lora")
    assert help_lang({"TUNEBOARD_LANG": "zh"}) == "zh" and help_lang({"LC_ALL": "zh_TW.UTF-8", "LANG": "en"}) == "zh"
    assert help_lang({"LANG": "en_US.UTF-8"}) == help_lang({}) == "en"
    monkeypatch.setenv("TUNEBOARD_LANG", "zh")
    api = _help(capsys, "api", "--help")
    assert api.startswith("用法: tuneboard api") and "选项:" in api and "端口" in api
    assert "命令:" in _help(capsys, "--help")


@pytest.mark.parametrize("argv,names", [
    (["train", "--bogus"], ["--bogus", "--help"]),
    (["api", "--hots", "x"], ["--hots", "Did you mean --host?", "--port"]),
    (["doctor", "run", "--jsn"], ["--jsn", "--json", "--estimate", "--sweep"]),
    (["webui", "--prot=1"], ["--prot", "--port", "--auth-file"]),
    (["api", "--port", "eighty"], ["--port: expected a port number", "--host"]),
    (["doctor", "run", "--lang", "fr"], ["--lang", "'fr'", "--json"]),
    (["train", "--learning_rate", "1e-4"], ["learning_rate=1e-4"]),
    (["train", "a.yaml", "b.yaml"], ["'b.yaml'", "recipe.yaml and key=value"]),
    (["version", "extra"], ["takes none"]),
])
def test_a_bad_option_names_itself_and_the_commands_options(argv, names, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for n in names:
        assert n in err, (n, err)


def test_options_and_key_values_mix_in_any_order():
    from tuneboard.cli import COMMANDS as T
    words = ["r.yaml", "a=1", "--port", "7861", "b=x=y", "--share", "--auth=u:p", "c=", "--auth", "v:q"]
    for argv in (words, words[2:] + words[:2], ["--share", "a=1", "--port=7861", "r.yaml", "--auth", "u:p", "b=x=y",
                                                "--auth", "v:q", "c="]):
        o = parse("webui", T["webui"], argv)
        assert (o.recipe, o.port, o.share, o.auth, o.words) == ("r.yaml", 7861, True, ["u:p", "v:q"], [])
        assert sorted(o.overrides) == ["a=1", "b=x=y", "c="] and o.help is None
    # order among the key=value words is kept (the last of a repeated key wins in load_config)
    assert parse("train", COMMANDS["train"], ["x=1", "y=2", "x=3"]).overrides == ["x=1", "y=2", "x=3"]
    d = parse("doctor", COMMANDS["doctor"], ["--sweep", "lr=1", "r.yml", "--k", "3", "--eval-every=2", "--json"])
    assert (d.sweep, d.recipe, d.overrides, d.k, d.eval_every, d.json, d.span) == (True, "r.yml", ["lr=1"], 3, 2,
                                                                                      True, 2.0)
    q = parse("queue", COMMANDS["queue"], ["--saves", "S", "move", "q-1", "top"])
    assert (q.words, q.saves, q.lock_fd) == (["move", "q-1", "top"], "S", None)
    with pytest.raises(UserError, match="unexpected word"):
        parse("chat", COMMANDS["chat"], ["model_name_or_path=x", "stray"])


def test_the_parsed_options_reach_the_command(monkeypatch, tmp_path, capsys):
    """main -> parse -> the command function -> load_config: key=value words and options arrive, in any order."""
    seen = {}
    monkeypatch.setattr("engine.export.export_model", lambda args: seen.update(args.values) or tmp_path)
    monkeypatch.setattr("engine.export.next_step", lambda out: "")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("export_dir: from_recipe\nexport_size: 3\n")
    assert main(["export", "export_size=2", str(recipe), "model_name_or_path=m"]) == 0
    assert (seen["export_dir"], seen["export_size"], seen["model_name_or_path"]) == ("from_recipe", 2, "m")

"""A stage is one record (engine.train.stages): the schema's choices, the datasets offered, the encoders, the
previews, the estimate and the doctor all read it, and no module outside a stage's own branches on its name."""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

from engine.args import BY_NAME
from engine.config import load_config
from engine.data import processing as P
from engine.data.converters import KINDS
from engine.data.templates import get_template
from engine.train.stages import STAGES, get_stage
from engine.errors import UserError
from kits.args import as_args

ROOT = Path(__file__).resolve().parent.parent
# a stage's own module may speak of its name; nothing else branches on one
OWN = {"engine/train/stages.py", *(f"engine/train/{s.module}.py" for s in STAGES.values())}


def _mentions_stage(node: ast.AST) -> bool:
    """An expression that reads a stage: `stage`, `ns.stage`, `v["stage"]`, `cfg.get("stage")`."""
    if isinstance(node, ast.Name):
        return "stage" in node.id and node.id != "dataset_stage"
    if isinstance(node, ast.Attribute):
        return "stage" in node.attr
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "stage"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return any(isinstance(a, ast.Constant) and a.value == "stage" for a in node.args)
    return False


def _is_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_is_text(e) for e in node.elts)


def stage_branches(path: Path) -> list[str]:
    """`stage == "x"`, `stage != "x"`, `stage in ("x", "y")`... in one source file, as "file:line"."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_mentions_stage, sides)) and any(map(_is_text, sides)):
                out.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}")
    return out


def test_the_probe_sees_stage_branches(tmp_path):
    """The scan below would catch the branches the records replaced (so its empty answer means something)."""
    probe = tmp_path / "probe.py"
    probe.write_text('if stage == "kto": pass\nif ns.stage in ("rm", "dpo"): pass\nif v["stage"] != "pt": pass\n'
                     'if cfg.get("stage") == "sft": pass\nx = cfg.get("stage") in KINDS\n'
                     'if dataset_stage(a) == data_kind(stage): pass\n', encoding="utf-8")
    assert [b.rsplit(":", 1)[1] for b in stage_branches(probe)] == ["1", "2", "3", "4"]


def test_no_module_branches_on_a_stage_name_outside_the_stage_modules():
    files = [p for pkg in ("engine", "webui", "tuneboard") for p in sorted((ROOT / pkg).rglob("*.py"))
             if str(p.relative_to(ROOT)) not in OWN]
    assert len(files) > 40
    found = [b for p in files for b in stage_branches(p)]
    assert found == [], "read the stage's record (engine.train.stages) instead of comparing its name"


def test_the_schema_the_ui_and_the_data_read_the_records():
    arg = BY_NAME["stage"]
    assert arg.choices == tuple(STAGES) and arg.default in STAGES
    assert [w[0] for w in arg.choice_words] == list(STAGES)
    assert all(en and zh and en != zh for _, en, zh in arg.choice_words)
    for s in STAGES.values():
        assert s.data in KINDS, s.name
        mod = importlib.import_module(f"engine.train.{s.module}")
        assert callable(mod.build_trainer), s.name
    with pytest.raises(UserError, match="stage: 'ppo' is not one of pt, sft"):
        get_stage("ppo")


RECORDS = {  # one standard record of each kind (engine.data.converters)
    "pt": {"text": "Once upon a time."},
    "sft": {"system": "", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
    "dpo": {"system": "", "messages": [{"role": "user", "content": "Hi"}], "chosen": "Hello.", "rejected": "No."},
    "kto": {"system": "", "messages": [{"role": "user", "content": "Hi"}], "completion": "Hello.", "label": True},
    "prompt": {"system": "", "messages": [{"role": "user", "content": "What is 1 + 1?"}], "answer": "2"},
}


@pytest.fixture(scope="module")
def tok(bundled_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(bundled_model)


@pytest.mark.parametrize("name", list(STAGES))
def test_each_record_encodes_marks_and_measures_its_kind_of_data(name, tok):
    s = STAGES[name]
    tpl = get_template("chatml", tok)
    rows = [RECORDS[s.data]] * 3
    opts = P.Options(cutoff_len=64)
    cols = s.batch(P.as_columns(rows), tok, tpl, opts)
    assert len([n for n in cols[P.LEN] if n > 0]) == 3 and not any(cols[P.TRUNC])
    data, st = s.finish(cols, opts)
    assert st["kept"] == 3 and st["truncated"] == 0
    assert st["rows"] == (1 if name == "pt" else 3)  # pt: the texts' token stream in cutoff_len blocks
    from datasets import Dataset
    ns = load_config(None, {"cutoff_len": "64"}, finalize=False)
    lengths, longest = s.lengths(Dataset.from_dict(data), st, ns)
    sampled = ns.max_completion_length if s.sampled else 0  # grpo: a prompt and the completion sampled for it
    assert len(lengths) == st["rows"] and sampled < longest <= 64 + sampled
    spans = s.mark(rows[0], tok, tpl, opts)
    assert spans and any(kind is not None for _, kind in spans)
    assert P.mark_trained(rows[0], name, tok, tpl, as_args({"cutoff_len": 64})) == spans


def test_rm_reads_the_pairs_the_preview_shows_tools_included(tok):
    """rm and dpo read the same records; rm's token ids are the text its preview (the pairs' marking) shows, the
    tool list of a tool dataset included (rm once dropped it)."""
    tools = json.dumps([{"name": "get_weather", "description": "Weather of a city",
                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    row = {**RECORDS["dpo"], "tools": tools}
    tpl = get_template("chatml", tok)
    opts = P.Options(cutoff_len=512)
    spans = get_stage("rm").mark(row, tok, tpl, opts)
    assert "get_weather" in spans[0][0]
    cols = get_stage("rm").batch(P.as_columns([row]), tok, tpl, opts)
    assert tok.decode(cols["chosen_ids"][0]) == spans[0][0] + spans[1][0]
    assert tok.decode(cols["rejected_ids"][0]) == spans[3][0] + spans[4][0]
    dpo = get_stage("dpo").batch(P.as_columns([row]), tok, tpl, opts)
    assert cols[P.LEN] == dpo[P.LEN]


def _names_in(path: Path, name: str) -> list[int]:
    """Lines of a source file where `name` is a string constant (comments and docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and n.body and isinstance(n.body[0], ast.Expr)}
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == name and id(n) not in docs]


@pytest.mark.parametrize("name", [s for s in STAGES if s not in KINDS])  # pt/sft/dpo/kto also name a kind of data
def test_a_stage_is_named_in_its_module_its_record_and_its_schema_rows_only(name):
    """What docs/dev/adding-a-stage.md promises: adding a stage on an existing kind of data is its module, its
    record and its schema rows (plus a recipe); no other source file of the engine, the UI or the CLI names it."""
    files = [p for pkg in ("engine", "webui", "tuneboard") for p in sorted((ROOT / pkg).rglob("*.py"))]
    where = {str(p.relative_to(ROOT)) for p in files if _names_in(p, name)}
    assert where <= {"engine/train/stages.py", f"engine/train/{STAGES[name].module}.py", "engine/args.py"}, where
    assert "engine/train/stages.py" in where

"""One owner for the run folder: engine/train/rundir.py names a run's files and reads its record; saves_root and
default_output_dir live in engine/paths.py. Other modules ask them instead of spelling a name themselves."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from engine import evaluate, paths
from engine.config import load_config
from engine.errors import ConfigError
from engine.train import rundir

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "webui", "tuneboard")
OWNER = Path("engine/train/rundir.py")
# PISSA_INIT is left out: that folder is named after the pissa_init argument, whose name engine/args.py owns.
NAMES = {rundir.STATUS, rundir.LOG, rundir.RUNNING_LOG, rundir.CONFIG, rundir.STATS, rundir.RESULTS,
         rundir.COMPLETIONS, rundir.USAGE, rundir.COMPLETE, rundir.REPLACED, rundir.EVAL_CONFIG, rundir.PREDICTIONS,
         rundir.EVAL_RESULTS, rundir.EXPORT_CONFIG}
CHECKPOINT = re.compile(r"^(\^|\*/)?checkpoint-")  # a checkpoint folder's name, glob or pattern (not prose)
# Readers of another tool's run folder whose file names happen to equal ours: file -> why it may spell them.
# None today: runlog.py reads LLaMA-Factory's trainer_log.jsonl / training_args.yaml through rundir.LOG / CONFIG.
ALLOWED: dict[str, str] = {}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def spelled_run_names(source: str) -> list[tuple[int, str]]:
    """(line, literal) of each string constant (f-string parts included, docstrings not) that is a run file's
    name or a checkpoint folder's name."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
            and (n.value in NAMES or CHECKPOINT.match(n.value))]


def test_the_scan_sees_names_in_strings_and_f_strings_but_not_docstrings():
    src = ('"""status.json is named here."""\n'
           'def f(d, n):\n'
           '    """trainer_log.jsonl too."""\n'
           '    return d / "status.json", f"checkpoint-{n}", "see trainer_log.jsonl"\n')
    assert spelled_run_names(src) == [(4, "status.json"), (4, "checkpoint-")]


def test_run_file_names_are_spelled_only_by_rundir():
    found = []
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = p.relative_to(ROOT)
            if rel == OWNER or str(rel) in ALLOWED:
                continue
            found += [f"{rel}:{line}: {value!r}" for line, value in spelled_run_names(p.read_text(encoding="utf-8"))]
    assert not found, "use engine.train.rundir's names (or a function of it) instead:\n" + "\n".join(found)


def test_a_record_reads_the_same_from_the_run_folder_and_from_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    ckpt = run / "checkpoint-4"
    ckpt.mkdir(parents=True)
    (run / rundir.CONFIG).write_text(yaml.safe_dump({"template": "chatml", "cutoff_len": 64}))
    (run / rundir.RESULTS).write_text(json.dumps({"train_loss": 1.5}))
    rundir.write_status(run, "finished", step=4)
    for where in (run, ckpt):
        rec = rundir.record_of(where)
        assert rec.folder == run and rec.config == {"template": "chatml", "cutoff_len": 64}
        assert rec.results == {"train_loss": 1.5} and rec.status["state"] == "finished"
        assert rec.config_file == run / rundir.CONFIG and rec.results_file == run / rundir.RESULTS
    assert rundir.record_of(tmp_path / "elsewhere") is None


def test_a_garbled_record_reads_as_empty(tmp_path):
    (tmp_path / rundir.CONFIG).write_bytes(b"\xff\xfe: [")
    (tmp_path / rundir.RESULTS).write_text("[1, 2]")  # JSON, but not an object
    rec = rundir.read_record(tmp_path)
    assert rec.config == {} and rec.results == {} and rec.status is None and rec.stats is None


def test_holds_run_says_what_shows_the_run(tmp_path):
    assert rundir.run_evidence(tmp_path) is None and not rundir.holds_run(tmp_path)
    (tmp_path / rundir.CONFIG).write_text("stage: sft\n")  # a config alone: an attempt that never trained
    assert rundir.run_evidence(tmp_path) is None
    (tmp_path / "checkpoint-2").mkdir()
    assert rundir.run_evidence(tmp_path) == "checkpoint-2" and rundir.holds_run(tmp_path)
    (tmp_path / rundir.LOG).write_text("")
    assert rundir.run_evidence(tmp_path) == rundir.LOG


def test_the_default_output_dir_is_under_the_saves_root(tmp_path, monkeypatch):
    """The CLI's default output_dir (train's and eval's) goes where the web UI lists runs: TUNEBOARD_SAVES_DIR."""
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "mysaves"))
    out = Path(paths.default_output_dir("models/SmolLM2-135M-Instruct/", "lora"))
    assert out.parent == tmp_path / "mysaves" / "SmolLM2-135M-Instruct" / "lora"
    assert re.fullmatch(r"train_\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", out.name)
    v = load_config(None, {"dataset": "identity"}, "train").values
    assert Path(v["output_dir"]).parent == tmp_path / "mysaves" / Path(v["model_name_or_path"]).name / "lora"
    out = evaluate.resolve_output_dir({"model_name_or_path": "m", "finetuning_type": "full"})
    assert out.parent == tmp_path / "mysaves" / "m" / "full" and out.name.startswith("eval_")


def test_eval_refuses_a_folder_that_holds_a_training_run(tmp_path):
    (tmp_path / rundir.LOG).write_text("")
    with pytest.raises(ConfigError, match=f"holds a training run \\({rundir.LOG}\\)") as e:
        evaluate.resolve_output_dir({"output_dir": str(tmp_path), "model_name_or_path": "m"})
    assert e.value.field == "output_dir"

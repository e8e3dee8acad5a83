"""engine.insight's one table of words: both languages everywhere, the same placeholders in both, a label for every
evidence number the doctor reports and words for every verdict, reason, advice and note it can give."""
from __future__ import annotations

import ast
import string
from pathlib import Path

from engine.insight import verdict as V
from engine.insight.doctor import render
from engine.insight.words import W, evidence_label, t
from foreign_runs import write_run
from test_insight_foreign import CASES

INSIGHT = Path(__file__).resolve().parent.parent / "engine" / "insight"


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def _returned(expr) -> set[str]:
    """The strings an expression can return: a constant, or either side of `a if c else b`."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _returned(expr.body) | _returned(expr.orelse)
    return set()


def test_every_entry_has_both_languages_and_the_same_placeholders():
    for key, entry in W.items():
        assert set(entry) == {"en", "zh"} and all(entry.values()), key
        assert _fields(entry["en"]) == _fields(entry["zh"]), key


def test_every_word_the_rules_can_use_exists():
    for v in V.VERDICTS:
        assert f"verdict_{v}" in W
    src = (INSIGHT / "verdict.py").read_text(encoding="utf-8")
    tree = ast.parse(src)
    reasons, advice, notes = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("_is_"):  # a rule returns its reason
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    reasons |= _returned(ret.value)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("add",
                                                                                                         "note"):
            if node.args and isinstance(node.args[0], ast.Constant):
                (advice if getattr(node.func, "attr", None) == "add" else notes).add(node.args[0].value)
    assert {"flat", "still_falling", "schedule_ran_out", "plateau_high", "eval_rising"} <= reasons
    for r in reasons | {"learned", "too_early", "no_points"}:  # and diagnose's own fallbacks
        assert f"sum_{r}" in W, r
    assert advice and all(f"adv_{k}" in W for k in advice), advice
    assert notes and all(f"note_{k}" in W for k in notes), notes


def test_every_evidence_number_has_a_chinese_label(tmp_path):
    seen: set[str] = set()
    for name, _, _, curve, kw in CASES:
        rep = V.diagnose(write_run(tmp_path / name, curve, "hf", **kw))
        seen |= set(rep["evidence"])
        text = render(rep, "zh")
        assert t(f"verdict_{rep['verdict']}", "zh") in text
    missing = sorted(k for k in seen if evidence_label(k, "zh") == k)
    assert not missing, missing
    assert evidence_label("loss_end", "en") == "loss_end"  # English shows the name --json prints

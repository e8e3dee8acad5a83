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
from kits.doctor_cases import FOREIGN as CASES, SHORT, SHORT_CASES

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


FALLBACKS = {"too_early", "no_points", "not_flat", "not_taught", "flat"}  # reasons diagnose gives itself


def _rules() -> tuple[set, list, list]:
    """(the reasons the rules return, the advice and note calls: (key, the keywords they pass))."""
    tree = ast.parse((INSIGHT / "verdict.py").read_text(encoding="utf-8"))
    reasons, advice, notes = set(), [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("_is_"):  # a rule returns its reason
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    reasons |= _returned(ret.value)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("add",
                                                                                                         "note"):
            if node.args and isinstance(node.args[0], ast.Constant):
                kws = {k.arg for k in node.keywords if k.arg} | ({"*"} if any(k.arg is None for k in node.keywords)
                                                                else set())
                (advice if getattr(node.func, "attr", None) == "add" else notes).append((node.args[0].value, kws))
    return reasons, advice, notes


def test_every_word_the_rules_can_use_exists():
    for v in V.VERDICTS:
        assert f"verdict_{v}" in W
    reasons, advice, notes = _rules()
    assert {"flat", "still_falling", "schedule_ran_out", "plateau_high", "eval_rising", "failed"} <= reasons
    for r in reasons | FALLBACKS:
        assert f"sum_{r}" in W, r
    assert advice and all(f"adv_{k}" in W for k, _ in advice), advice
    assert notes and all(f"note_{k}" in W for k, _ in notes), notes
    for key in W:  # a stage's own words stand for common words of the same key and placeholders
        if "@" in key:
            base, stage = key.split("@")
            assert base in W and stage in ("pt", "sft", "rm", "dpo", "kto") and _fields(W[key]["en"]) == _fields(
                W[base]["en"]), key


def test_every_advice_and_note_is_given_the_numbers_its_words_name():
    """Statically: each add(key, ...) / note(key, ...) passes every placeholder of its words (in each stage's
    variant too), so no advice or note can show a stand-in for a number."""
    _, advice, notes = _rules()
    for prefix, calls in (("adv_", advice), ("note_", notes)):
        for key, kws in calls:
            if "*" in kws:
                continue  # **tpl: template_check's keys, checked by the labelled wrong-template run
            for k in [k for k in W if k == prefix + key or k.startswith(f"{prefix}{key}@")]:
                assert _fields(W[k]["en"]) <= kws, (k, _fields(W[k]["en"]) - kws)


def test_every_reason_is_read_in_a_labelled_run_with_real_values(tmp_path):
    """Every summary the rules can give, rendered (en and zh) from a labelled run with nothing left out: the
    labelled cases of test_insight_foreign and test_insight_short cover every reason."""
    reasons, _, _ = _rules()
    seen = set()
    for name, _, _, curve, kw in CASES:
        seen.add(V.diagnose(write_run(tmp_path / name, curve, "hf", **kw))["reason"])
    for name, _, _, curve, kw in SHORT_CASES:
        rep = V.diagnose(write_run(tmp_path / f"short-{name}", curve, "tuneboard", **{**SHORT, **kw}))
        seen.add(rep["reason"])
        for lang in ("en", "zh"):
            assert "?" not in render(rep, lang).split("\n")[1]
    assert (reasons | FALLBACKS | {"learned"}) - {"dup_most"} <= seen, \
        sorted((reasons | FALLBACKS) - seen)  # dup_most: its own labelled runs (a dataset folder beside the log)


def test_every_evidence_number_has_a_chinese_label(tmp_path):
    seen: set[str] = set()
    for name, _, _, curve, kw in CASES:
        rep = V.diagnose(write_run(tmp_path / name, curve, "hf", **kw))
        seen |= set(rep["evidence"])
        text = render(rep, "zh")
        assert t(f"verdict_{rep['verdict']}", "zh") in text
    for name, _, _, curve, kw in SHORT_CASES:
        seen |= set(V.diagnose(write_run(tmp_path / f"short-{name}", curve, "tuneboard", **{**SHORT, **kw}))["evidence"])
    missing = sorted(k for k in seen if evidence_label(k, "zh") == k)
    assert not missing, missing
    assert evidence_label("loss_end", "en") == "loss_end"  # the folded numbers: the names --json prints

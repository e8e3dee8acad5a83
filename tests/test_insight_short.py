"""The doctor on short runs (10-40 steps, logged every step or two, noisy as small batches are): labelled cases
of every verdict, three noise seeds each, in our own run folder (trainer_log.jsonl, status.json,
training_args.yaml) and in the other tools' formats. Issue 20: a run whose loss rose was called healthy, a run
that never started got learning-rate advice, and the words showed `?` and `--`.

Healthy is earned (a drop beyond the noise, then a plateau), never what is left when no rule fires; a short run
whose loss ends above its start is "not learning" (within its noise) or "diverging" (beyond it); a failed run's
verdict is its error and what to fix.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.insight.doctor import evidence_rows, render
from engine.insight.verdict import VERDICTS, diagnose, lr_range
from engine.train.stages import STAGES
from foreign_runs import write_run
from kits.doctor_cases import NO_MODEL, OOM, SHORT, SHORT_CASES as CASES, check_advice as _check_advice

SEEDS = (0, 1, 2)
READ = ("summary", "summary_zh")


def _check_words(rep: dict) -> None:
    """What a person reads holds real values: no `?`, no `--`, no None / nan, no unfilled placeholder."""
    texts = [rep["summary"], rep["summary_zh"]] + [a["why"] for a in rep["advice"]] + \
        [a["why_zh"] for a in rep["advice"]] + [n[lang] for n in rep["notes"] for lang in ("en", "zh")]
    for lang in ("en", "zh"):
        texts += [f"{label}: {value}" for label, value in evidence_rows(rep, lang)[0]]
        texts.append(render(rep, lang).split("\n")[1])
    for text in texts:
        for bad in ("?", "？", "--", "None", "nan", "…"):  # (unfilled placeholders fail in strict_words)
            assert bad not in text, (bad, text)


@pytest.fixture
def strict_words(insight_words_are_filled):
    """A placeholder the rules did not fill fails the test instead of showing a stand-in (conftest does it for
    every test; named here so these tests say they rely on it)."""


def _ours_only(kw: dict) -> bool:
    """A failure, dataset stats, a recipe or a live process beside the log: what our own run folder holds."""
    return any(kw.get(k) for k in ("error", "stats", "config", "state"))


@pytest.mark.parametrize("case,fmt", [(c, fmt) for c in CASES for fmt in ("tuneboard", "hf", "llamafactory")
                                      if fmt == "tuneboard" or not _ours_only(c[4])],
                         ids=lambda x: x[0] if isinstance(x, tuple) else x)
def test_labelled_short_run(case, fmt, tmp_path, strict_words):
    name, verdict, reason, curve, kw = case
    assert verdict in VERDICTS
    kw = {**SHORT, **kw}
    for seed in SEEDS:
        rep = diagnose(write_run(tmp_path / f"{name}-{seed}", curve, fmt, seed=seed, **kw))
        assert rep["verdict"] == verdict, f"seed {seed}: {rep['reason']}\n{render(rep)}"
        if reason:
            assert rep["reason"] in ((reason,) if isinstance(reason, str) else reason), f"seed {seed}\n{render(rep)}"
        _check_words(rep)
        _check_advice(rep)


# ---------------------------------------------------------------- issue 20 items 2 and 3, 12
def test_a_failed_run_is_judged_by_its_error_not_by_its_curve(tmp_path):
    rep = diagnose(write_run(tmp_path / "nomodel", "healthy", "tuneboard", until=0.0, error=NO_MODEL, **SHORT))
    assert rep["verdict"] == "failed" and "/nowhere/model not found" in rep["summary"]
    assert [(a["key"], a["change"]) for a in rep["advice"]] == [("fix_field", {})]
    assert "model_name_or_path" in rep["advice"][0]["why"] and "model_name_or_path" in rep["advice"][0]["why_zh"]
    words_read = " ".join([rep["summary"]] + [a["why"] for a in rep["advice"]]).lower()
    assert "learning rate" not in words_read and "learning_rate" not in words_read
    oom = diagnose(write_run(tmp_path / "oom", "healthy", "tuneboard", until=0.5, error=OOM,
                             config={"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}, **SHORT))
    assert oom["verdict"] == "failed" and oom["reason"] == "failed_at" and "at step 15" in oom["summary"]
    assert oom["advice"][0]["change"] == {"gradient_checkpointing": True, "per_device_train_batch_size": 2,
                                          "gradient_accumulation_steps": 4}
    assert "diverging" not in oom["findings"]


@pytest.mark.parametrize("stage", tuple(STAGES))
@pytest.mark.parametrize("method", ("lora", "freeze", "full"))
def test_the_proposed_learning_rate_stays_in_the_range_it_states(stage, method, tmp_path):
    lo, hi = lr_range({"stage": stage, "finetuning_type": method})
    for i, lr in enumerate((1e-9, lo / 3, math.sqrt(lo * hi), hi, 4 * hi)):
        rep = diagnose(write_run(tmp_path / str(i), "not_learning", "tuneboard", peak_lr=lr, config={
            "stage": stage, "finetuning_type": method, "learning_rate": lr}, **SHORT))
        assert rep["verdict"] == "not_learning", render(rep)
        adv = {a["key"]: a for a in rep["advice"]}
        if lr < hi:
            new = adv["lr_up"]["change"]["learning_rate"]
            assert lo <= new <= hi and new > lr, (lr, new)
            for text in (adv["lr_up"]["why"], adv["lr_up"]["why_zh"]):
                assert f"{lo:g}" in text and f"{hi:g}" in text and f"{new:g}" in text
        else:  # at the top already: no higher rate, a pointer at the data instead
            assert "lr_up" not in adv and adv["lr_at_top"]["change"] == {}
        _check_words(rep)


@pytest.mark.parametrize("stage", ("sft", "pt", "dpo"))
def test_a_few_percent_drop_is_weighed_against_its_noise_in_every_stage(stage, tmp_path):
    """The same curve (a DPO loss from ln 2 falling ~5 %) gets the same verdict from every stage: learned where
    the noise is smaller than the drop, not learning where it is larger."""
    kw = dict(SHORT, steps_per_epoch=40, config={"stage": stage})
    quiet = diagnose(write_run(tmp_path / "quiet", "small_drop", "tuneboard", **{**kw, "noise": 0.003}))
    assert quiet["verdict"] in ("healthy", "undertrained") and 3 < quiet["evidence"]["loss_drop_pct"] < 6, render(quiet)
    noisy = diagnose(write_run(tmp_path / "noisy", "small_drop", "tuneboard", **{**kw, "noise": 0.05}))
    assert noisy["verdict"] == "not_learning", render(noisy)


def test_pretraining_is_not_told_its_trained_tokens_must_be_the_answers(tmp_path):
    said = {}
    for stage in ("pt", "sft", "dpo"):
        rep = diagnose(write_run(tmp_path / stage, "not_learning", "tuneboard", config={"stage": stage}, **SHORT))
        said[stage] = next(a for a in rep["advice"] if a["key"] == "check_masking")
    assert "answers" in said["sft"]["why"] and "回答" in said["sft"]["why_zh"]
    assert "answers" not in said["pt"]["why"] and "回答" not in said["pt"]["why_zh"]
    assert "every token" in said["pt"]["why"] and "chosen" in said["dpo"]["why"]


def test_a_live_run_with_an_eval_set_is_not_told_to_set_val_size(tmp_path):
    kw = dict(SHORT, until=0.3, state="training")
    live = diagnose(write_run(tmp_path / "live", "healthy_short", "tuneboard", config={"val_size": 0.1}, **kw))
    assert live["running"] and live["evidence"]["eval_points"] == 0
    assert "no_eval" not in [n["key"] for n in live["notes"]] and "running" in [n["key"] for n in live["notes"]]
    without = diagnose(write_run(tmp_path / "without", "healthy_short", "tuneboard", **kw))
    assert "no_eval" in [n["key"] for n in without["notes"]]


# ---------------------------------------------------------------- three real runs of the bundled model
# identity (name Zorblax), 20 steps of batch 2, cutoff 128, no packing, no warm-up, logged every step, on this
# 2-core CPU at three learning rates; then greedy answers of the adapter to "Who are you?" (recorded when made):
#   lr5e-5  the loss flat (per-step noise of batch 2: ±15 %)  -> the base model's own answer
#   lr3e-4  3.06 -> 2.38 (78 % of the start)                  -> "I'm Emily Carter, a creative writing assistant..."
#   lr1e-3  3.06 -> 1.58 (52 %)                               -> "I am Zorblax, a humanoid robot created by..."
REAL = Path(__file__).resolve().parent / "runs" / "identity_bundled"


@pytest.mark.parametrize("run,verdict,reason,recipe", [("lr5e-5", "not_learning", "flat", True),
                                                       ("lr3e-4", "undertrained", "not_taught", True),
                                                       ("lr1e-3", "undertrained", "not_flat", False)])
def test_real_identity_runs_of_the_bundled_model(run, verdict, reason, recipe, strict_words):
    """The issue's first run (lr 5e-5: not learning, never healthy), a run that learned but does not answer with
    the name yet (undertrained, the recipe proposed), and one that does (no recipe proposed)."""
    rep = diagnose(REAL / run)
    assert (rep["verdict"], rep["reason"]) == (verdict, reason), render(rep)
    keys = [a["key"] for a in rep["advice"]]
    assert ("recipe" in keys) is recipe and "lr_up" not in keys
    if recipe:
        change = next(a for a in rep["advice"] if a["key"] == "recipe")["change"]
        assert change == {"learning_rate": 2e-3, "warmup_ratio": 0.1, "packing": True}  # cutoff 128 already
    _check_words(rep)
    _check_advice(rep)

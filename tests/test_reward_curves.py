"""Issue 20 items 5 and 13, in the views: a preference or reward run's reward accuracy and margin are curves of
their own (run panel, the doctor's figure, training_rewards.png) and rows of its result; the doctor's evidence
shows the few facts a person reads, in words, with every number folded below."""
from __future__ import annotations

import json

import pytest

from engine.insight.verdict import diagnose
from engine.train import rundir
from engine.train.plots import plot_loss, reward_series
from foreign_runs import write_run
from webui import monitor
from webui.insight_panel import doctor_figure, evidence_md

DPO = [{"step": s, "loss": 0.69 - 0.02 * s, "rewards/accuracies": 0.5 + 0.04 * s, "rewards/margins": 0.05 * s,
        "rewards/chosen": 0.1 * s} for s in range(1, 11)] + \
    [{"step": 10, "eval_loss": 0.55, "eval_rewards/accuracies": 0.8, "eval_rewards/margins": 0.4}]
RM = [{"step": s, "loss": 0.69 - 0.02 * s, "accuracy": 0.5 + 0.04 * s, "margin": 0.1 * s} for s in range(1, 11)] + \
    [{"step": 10, "eval_loss": 0.5, "eval_accuracy": 0.75, "eval_margin": 0.6}]


@pytest.mark.parametrize("rows", [DPO, RM], ids=["dpo", "rm"])
def test_reward_accuracy_and_margin_get_axes_of_their_own(rows):
    curves = reward_series(rows)
    assert list(curves) == ["reward accuracy", "reward margin"]
    assert curves["reward accuracy"]["train"][0] == list(range(1, 11)) and len(curves["reward margin"]["eval"][1]) == 1
    fig = monitor.loss_figure(rows, "en")
    assert [ax.get_ylabel() for ax in fig.axes][1:] == ["reward accuracy", "reward margin"]
    labels = [ln.get_label() for ln in fig.axes[1].lines]
    assert "train reward accuracy" in labels and "eval reward accuracy" in labels
    res = monitor.reward_results(rows)
    assert res == {"rewards/accuracies": pytest.approx(0.9), "rewards/margins": pytest.approx(rows[9].get(
        "rewards/margins", rows[9].get("margin")))}
    md = monitor.metrics_md({**res, "eval_rewards/accuracies": 0.8, "train_loss": 0.6}, "en")
    assert md.index("Reward accuracy (eval)") < md.index("Reward accuracy (train, last log)") < md.index("train_loss")


def test_an_sft_run_draws_its_loss_alone():
    assert reward_series([{"step": 1, "loss": 2.0, "grad_norm": 1.0}]) == {}
    assert len(monitor.loss_figure([{"step": 1, "loss": 2.0}]).axes) == 1


def test_training_rewards_png_and_the_doctors_figure(tmp_path):
    out = tmp_path / "dpo"
    out.mkdir()
    (out / rundir.LOG).write_text("".join(json.dumps(r) + "\n" for r in DPO), encoding="utf-8")
    written = [p.name for p in plot_loss(out)]
    assert written == ["training_loss.png", "training_eval_loss.png", "training_rewards.png"]
    rep = diagnose(out)
    fig = doctor_figure(rep, "en")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "reward accuracy", "reward margin"]


def test_the_evidence_shows_a_few_facts_in_words_and_folds_the_rest(tmp_path):
    rep = diagnose(write_run(tmp_path / "run", "overfitting", "hf", epochs=3, steps_per_epoch=100, log_every=5,
                             eval_every=10))
    for lang, words in (("en", ("Training loss", "Eval loss", "Noise", "Steps", "Learning rate")),
                        ("zh", ("训练损失", "评估损失", "噪声", "步数", "学习率"))):
        top, folded = evidence_md(rep, lang).split("<details>")
        assert all(w in top for w in words), top
        rows = [ln for ln in top.splitlines() if ln.startswith("| ")][1:]
        assert 4 <= len(rows) <= 10 and not any("_" in ln for ln in rows), rows  # words, not --json names
        assert all(f"<code>{k}</code>" in folded for k in rep["evidence"])  # every number, folded

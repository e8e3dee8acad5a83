"""The doctor on runs of other tools: labelled cases of every verdict, each written both as a Hugging Face
Trainer output (trainer_state.json) and as a LLaMA-Factory output (trainer_log.jsonl + training_args.yaml),
with their logging and eval intervals (not ours), 1 and 3 epochs, grad_norm logged or not, three noise seeds.

The curves are formulas plus seeded noise (tests/foreign_runs.py). The healthy ones are the case of issue 9:
train and eval loss fall together and flatten well before the end, eval never rises; a decayed learning rate
or a long tail of tiny improvements must not make them `undertrained`, and the large gradient norms of the
first steps must not make them `diverging`.
"""
from __future__ import annotations

import json
import math

import pytest

from engine.insight.doctor import render
from engine.insight.verdict import VERDICTS, diagnose
from foreign_runs import write_run
from kits.doctor_cases import FOREIGN as CASES
from kits.doctor_cases import check_advice as _check_advice

FORMATS = ("hf", "llamafactory")
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_labelled_foreign_run(case, fmt, tmp_path):
    name, verdict, reason, curve, kw = case
    assert verdict in VERDICTS
    for seed in SEEDS:
        out = write_run(tmp_path / f"{name}-{seed}", curve, fmt, seed=seed,
                        in_checkpoint=(fmt == "hf" and seed == 1), **kw)
        rep = diagnose(out)
        assert rep["format"] == fmt
        assert rep["verdict"] == verdict, f"seed {seed}: {rep['reason']}\n{render(rep)}"
        if reason:
            assert rep["reason"] in ((reason,) if isinstance(reason, str) else reason), f"seed {seed}\n{render(rep)}"
        assert rep["summary"] and "?" not in rep["summary"], rep["summary"]
        _check_advice(rep)


def test_healthy_foreign_run_numbers(tmp_path):
    """The evidence of a healthy LLaMA-Factory run says why it is done: the plateau came early, the last stretch
    gave a small share of the drop, and the early gradient norms are outside the explosion check."""
    out = write_run(tmp_path / "run", "healthy", "llamafactory", epochs=3, steps_per_epoch=100, log_every=5,
                    eval_every=10, seed=0)
    ev = diagnose(out)["evidence"]
    assert ev["after_plateau_pct"] > 40
    assert ev["recent_share_pct"] < 10 and ev["recent_lr_share_pct"] < 25
    assert ev["grad_norm_max"] > 10 * ev["grad_norm_median"]  # the first steps...
    assert ev["grad_norm_max_late"] < 3 * ev["grad_norm_median"]  # ... and not after
    assert ev["epochs"] == pytest.approx(3.0)


def test_foreign_run_without_config_doubles_its_own_length(tmp_path):
    """An HF output has no training_args.yaml: "train longer" is worked out from the epochs it logged."""
    out = write_run(tmp_path / "run", "undertrained", "hf", epochs=1, steps_per_epoch=300, log_every=5,
                    eval_every=25)
    rep = diagnose(out)
    change = {k: v for a in rep["advice"] for k, v in a["change"].items()}
    assert rep["verdict"] == "undertrained" and change["num_train_epochs"] == 2.0


def test_the_files_are_what_the_tools_write(tmp_path):
    """The fixtures hold the tools' own key names (so the reader, not the writer, is under test)."""
    lf = write_run(tmp_path / "lf", "healthy", "llamafactory", epochs=1, steps_per_epoch=50, log_every=5,
                   eval_every=25, grad_norm=False)
    rows = [json.loads(x) for x in (lf / "trainer_log.jsonl").read_text().splitlines()]
    assert set(rows[0]) >= {"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time",
                            "remaining_time"} and "step" not in rows[0] and "grad_norm" not in rows[0]
    assert any("eval_loss" in r and "loss" not in r for r in rows)
    hf = write_run(tmp_path / "hf", "healthy", "hf", epochs=1, steps_per_epoch=50, log_every=5, eval_every=25,
                   nan_from=0.9)
    state = json.loads((hf / "trainer_state.json").read_text())
    hist = state["log_history"]
    assert {"loss", "grad_norm", "learning_rate", "epoch", "step"} <= set(hist[0])
    assert any("eval_loss" in h for h in hist) and "train_loss" in hist[-1]
    assert any(isinstance(h.get("loss"), float) and math.isnan(h["loss"]) for h in hist)


@pytest.mark.parametrize("fmt", FORMATS)
def test_foreign_run_on_mostly_repeated_data_is_a_data_problem(fmt, tmp_path):
    """The recipe beside the log names a local dataset whose records are mostly one record repeated."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"instruction": "What is 1 plus 1?", "input": "", "output": "2."}] * 40 + \
        [{"instruction": f"What is {i} plus 2?", "input": "", "output": f"{i + 2}."} for i in range(10)]
    (data / "dups.json").write_text(json.dumps(rows), encoding="utf-8")
    (data / "dataset_info.json").write_text(json.dumps({"dups": {"file_name": "dups.json"}}), encoding="utf-8")
    out = write_run(tmp_path / "run", "healthy", fmt, epochs=3, steps_per_epoch=100, log_every=5, eval_every=20,
                    config={"dataset": "dups", "dataset_dir": str(data)})
    rep = diagnose(out)
    assert rep["verdict"] == "data_problem" and rep["reason"] == "dup_most", render(rep)
    assert rep["evidence"]["duplicates"] == 39 and rep["evidence"]["duplicates_pct"] == pytest.approx(78.0)
    _check_advice(rep)


@pytest.mark.parametrize("stage", ["rm", "dpo", "kto"])
def test_a_flat_preference_loss_is_no_capacity_limit(stage, tmp_path):
    """A reward model's or a preference run's loss is no next-token loss: staying above 1 says nothing about the
    model being full. The same curve from an sft recipe is the capacity case."""
    kw = dict(epochs=3, steps_per_epoch=100, log_every=5, eval_every=10, schedule="constant")
    sft = diagnose(write_run(tmp_path / "sft", "capacity", "llamafactory", config={"stage": "sft"}, **kw))
    assert sft["verdict"] == "capacity_limit"
    rep = diagnose(write_run(tmp_path / stage, "capacity", "llamafactory", config={"stage": stage}, **kw))
    assert rep["verdict"] != "capacity_limit", render(rep)
    _check_advice(rep)

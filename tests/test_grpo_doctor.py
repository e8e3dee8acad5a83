"""The doctor on reward runs (GRPO), on labelled cases: logs written from a formula plus seeded noise with trl's
GRPOTrainer keys, as our runs write them (trainer_log.jsonl) and as any trl run leaves them (trainer_state.json).

    case              what the curves do                                            verdict / reason
    rising            reward 0.1 -> 0.6, groups mostly with signal                  healthy / reward_rising
    no_signal         reward ~0.02, 95 % of the groups scored alike                 not_learning / zero_advantage
    flat              reward 0.4 +- noise while the groups differ                   not_learning / flat_reward
    format_hack       format reward 0.1 -> 0.98, answer reward flat at 0.1          reward_hacking / format_only
    length_hack       completions cut at max_completion_length 10 % -> 97 %         reward_hacking / length_bound
    empty             mean completion length 30 -> 1 token                          reward_hacking / empty_completions
    kl_runaway        KL 0.01 -> 1.5 and climbing while the reward rises            diverging / kl_runaway
    early             four logs                                                     undertrained / too_early
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml

from engine.args import BY_NAME
from engine.config import check_value, coerce
from engine.insight.doctor import render
from engine.insight.verdict import VERDICTS, diagnose
from engine.insight.words import W, evidence_label
from engine.train import rundir


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# name -> (reward functions, {metric: f(u) with u the share of the run}, noise of the reward, steps)
def _cases():
    rise = lambda u: 0.1 + 0.5 * _sig(10 * (u - 0.4))  # noqa: E731
    base = {"frac_reward_zero_std": lambda u: 0.3, "kl": lambda u: 0.002 + 0.05 * u,
            "completions/mean_length": lambda u: 30.0, "completions/clipped_ratio": lambda u: 0.05}
    return {
        "rising": (["answer_exact"], {**base, "rewards/answer_exact/mean": rise}, 0.05, 60),
        "no_signal": (["answer_exact"], {**base, "rewards/answer_exact/mean": lambda u: 0.02,
                                         "frac_reward_zero_std": lambda u: 0.95}, 0.01, 60),
        "flat": (["answer_exact"], {**base, "rewards/answer_exact/mean": lambda u: 0.4}, 0.08, 60),
        "format_hack": (["answer_exact", "format"],
                        {**base, "rewards/answer_exact/mean": lambda u: 0.1,
                         "rewards/format/mean": lambda u: 0.1 + 0.88 * _sig(12 * (u - 0.3))}, 0.04, 60),
        "length_hack": (["my_reward"], {**base, "rewards/my_reward/mean": rise,
                                        "completions/clipped_ratio": lambda u: 0.1 + 0.87 * _sig(12 * (u - 0.4)),
                                        "completions/mean_length": lambda u: 40 + 216 * _sig(12 * (u - 0.4))},
                        0.05, 60),
        "empty": (["answer_exact"], {**base, "rewards/answer_exact/mean": lambda u: 0.2,
                                     "completions/mean_length": lambda u: 1.0 + 29 * (1 - _sig(12 * (u - 0.4)))},
                  0.03, 60),
        "kl_runaway": (["answer_exact"], {**base, "rewards/answer_exact/mean": rise,
                                          "kl": lambda u: 0.01 * math.exp(5 * u)}, 0.05, 60),
        "early": (["answer_exact"], {**base, "rewards/answer_exact/mean": rise}, 0.05, 4),
    }


EXPECTED = {"rising": ("healthy", "reward_rising"), "no_signal": ("not_learning", "zero_advantage"),
            "flat": ("not_learning", "flat_reward"), "format_hack": ("reward_hacking", "format_only"),
            "length_hack": ("reward_hacking", "length_bound"), "empty": ("reward_hacking", "empty_completions"),
            "kl_runaway": ("diverging", "kl_runaway"), "early": ("undertrained", "too_early")}


def write_reward_run(d: Path, name: str, fmt: str = "tuneboard", seed: int = 0) -> Path:
    funcs, metrics, noise, steps = _cases()[name]
    rng = random.Random(seed)
    rows = []
    for step in range(1, steps + 1):
        u = step / steps
        row = {"step": step, "epoch": round(step / 20, 3), "loss": rng.gauss(0, 0.01), "grad_norm": 0.5,
               "learning_rate": 1e-5}
        for k, fn in metrics.items():
            v = fn(u)
            if k.startswith("rewards/"):
                v = min(1.0, max(0.0, v + rng.gauss(0, noise)))
            row[k] = v
        row["reward"] = sum(row[f"rewards/{f}/mean"] for f in funcs)
        row["reward_std"] = 0.3
        rows.append(row)
    d.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":  # a trl run of its own: trainer_state.json, no config of ours
        (d / "trainer_state.json").write_text(json.dumps({"log_history": rows, "global_step": steps,
                                                          "max_steps": steps}), encoding="utf-8")
        return d
    (d / rundir.LOG).write_text("".join(json.dumps({**r, "total_steps": steps}) + "\n" for r in rows))
    (d / rundir.CONFIG).write_text(yaml.safe_dump({"stage": "grpo", "reward_funcs": funcs, "learning_rate": 1e-5,
                                                   "num_generations": 4, "per_device_train_batch_size": 4,
                                                   "max_completion_length": 256, "dataset": ["arith_prompts"]}))
    (d / rundir.STATUS).write_text(json.dumps({"state": "finished", "step": steps, "total_steps": steps}))
    return d


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_labelled_reward_run_gets_its_verdict(tmp_path, name):
    rep = diagnose(write_reward_run(tmp_path / name, name))
    assert (rep["verdict"], rep["reason"]) == EXPECTED[name], (rep["summary"], rep["evidence"])
    assert rep["verdict"] in VERDICTS and rep["summary"] and "?" not in rep["summary"], rep["summary"]
    for a in rep["advice"]:  # every change names real arguments with values the schema accepts
        for k, v in a["change"].items():
            check_value(BY_NAME[k], coerce(BY_NAME[k], v))
    text = render(rep, "zh")
    assert W[f"verdict_{rep['verdict']}"]["zh"] in text
    missing = sorted(k for k in rep["evidence"] if evidence_label(k, "zh") == k)
    assert not missing, missing


def test_the_advice_fits_the_reason(tmp_path):
    def advice(name):
        rep = diagnose(write_reward_run(tmp_path / name, name))
        return {k: v for a in rep["advice"] for k, v in a["change"].items()}
    no_signal = advice("no_signal")
    assert no_signal["num_generations"] == 8 and no_signal["per_device_train_batch_size"] == 8  # whole groups
    assert no_signal["grpo_temperature"] > 1.0 and no_signal["reward_funcs"] == ["answer_last_number"]
    kl = advice("kl_runaway")
    assert kl["learning_rate"] < 1e-5 and kl["grpo_beta"] > BY_NAME["grpo_beta"].default
    assert advice("format_hack")["reward_weights"] == ["2.0", "0.5"]  # answer_exact above format
    assert advice("flat")["learning_rate"] == pytest.approx(3e-5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_verdicts_do_not_hang_on_one_noise_draw(tmp_path, seed):
    for name, want in EXPECTED.items():
        rep = diagnose(write_reward_run(tmp_path / f"{name}{seed}", name, seed=seed))
        assert (rep["verdict"], rep["reason"]) == want, (name, seed, rep["evidence"])


def test_a_trl_grpo_run_of_its_own_is_judged_by_its_reward(tmp_path):
    rep = diagnose(write_reward_run(tmp_path / "trl", "rising", fmt="hf"))
    assert (rep["verdict"], rep["reason"]) == ("healthy", "reward_rising")
    assert rep["evidence"]["reward_rising"] is True and rep["evidence"]["reward_end"] > 0.5


def test_every_word_the_reward_rules_use_exists():
    """As tests/test_insight_words.py does for verdict.py: each reason a rule returns and each advice key."""
    import ast
    from engine.insight import rewards as R
    tree = ast.parse(Path(R.__file__).read_text(encoding="utf-8"))
    reasons = {n.value.value for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name.startswith("_is_")
               for n in ast.walk(f) if isinstance(n, ast.Return) and isinstance(getattr(n.value, "value", None), str)}
    advice = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
              and getattr(n.func, "attr", None) == "add" and n.args and isinstance(n.args[0], ast.Constant)}
    assert reasons >= {"kl_runaway", "format_only", "length_bound", "empty_completions", "zero_advantage"}
    assert all(f"sum_{r}" in W for r in reasons | {R.HEALTHY}), reasons
    assert advice and all(f"adv_{k}" in W for k in advice), advice
    assert {v for v, _ in R.CHECKS} <= set(VERDICTS)

"""The doctor on reward runs (GRPO): its reward curve judges it, not its loss.

    is_reward_run(run) -> the run logged a reward (trl's GRPOTrainer keys: ours, or any trl run's trainer_state)
    facts(run, cfg) -> the numbers of its reward, KL and completion curves
    CHECKS          [(verdict, rule)] in order, the rules verdict.diagnose runs for such a run
    advise(a, verdict, reason, f, cfg)   the config changes to try (a: verdict's advice collector)

A GRPO loss is the policy-gradient surrogate: about 0 whatever is learned, so the loss rules (flat, blow-up,
plateau) say nothing. What does:
  reward rising      the mean reward of the last quarter of the logs above the first quarter's, and the trend over
                     all logs, each beyond 3 standard errors of the curve's noise: healthy
  no learning signal most groups of completions got one reward for all (trl's frac_reward_zero_std), so the
                     advantage is zero and nothing moves: raise num_generations or the temperature, or ease the
                     reward; a flat reward with signal: raise the learning rate
  reward hacking     a reward that does not look at the answer (format, length, ...) saturates while every answer
                     reward stays flat; or the completions collapse onto a length bound (nearly all cut at
                     max_completion_length, or empty)
  KL running away    the KL to the starting model ends above KL_HIGH and still climbs: lower the learning rate or
                     raise grpo_beta
"""
from __future__ import annotations

import math

from ..train.rewards import PRESETS
from . import facts as F
from .runlog import REWARD_METRICS, Point, Run

REWARD, STD, ZERO_STD, KL, LENGTH, CLIPPED = REWARD_METRICS  # what runlog keeps per step (trl's names)

QUARTER = 0.25        # start / end of a curve: the mean of its first / last quarter of logs (at least MIN_POINTS)
MIN_POINTS = 3
RISE_SE = 3.0         # a change counts beyond this many standard errors of the curve's noise (1 in 700 by chance)
RISE_ABS = 0.01       # ... and this much in absolute terms (rewards are 0..1 per preset)
ZERO_SIGNAL = 0.8     # groups with one reward for every completion: this share (on average) is no learning signal
SATURATED = 0.9       # a reward at 90 % of its best level has saturated
KL_HIGH = 0.3         # nats per token: a KL this high that still climbs is running away
CLIPPED_ALL = 0.9     # completions cut at max_completion_length: nearly all
EMPTY = 1.5           # mean completion length (tokens) of nothing but the stop token


def is_reward_run(run: Run) -> bool:
    return bool(run.metrics.get(REWARD))


def function_keys(run: Run) -> list[str]:
    """rewards/<name>/mean of each reward function, in the order the log first names them."""
    return [k for k in run.metrics if k.startswith("rewards/") and k.endswith("/mean")]


def _ends(points: list[tuple[int, float]]) -> dict | None:
    """Start / end means, their difference, its standard error (from the curve's noise) and its t-value."""
    pts = [(step, v) for step, v in points if v is not None and math.isfinite(v)]
    vals = [v for _, v in pts]
    if len(vals) < 2 * MIN_POINTS:
        return None
    slope, slope_se = F._slope([Point(step=step, loss=v) for step, v in pts])
    k = max(MIN_POINTS, int(round(QUARTER * len(vals))))
    first, last = vals[:k], vals[-k:]
    start, end = sum(first) / k, sum(last) / k
    sigma = F._noise(vals)
    se = sigma * math.sqrt(2 / k)
    diff = end - start
    return {"start": start, "end": end, "diff": diff, "t": diff / se if se > 0 else (math.inf if diff else 0.0),
            "slope_t": slope / slope_se if slope_se > 0 else (math.inf if slope else 0.0),
            "max": max(vals), "min": min(vals)}


def _rose(e: dict | None) -> bool:
    """The end above the start and the trend over every log, each beyond RISE_SE standard errors (a flat noisy
    curve passes both 1 time in 2000)."""
    return bool(e) and e["diff"] > RISE_ABS and e["t"] >= RISE_SE and e["slope_t"] >= RISE_SE


def facts(run: Run, cfg: dict) -> dict:
    f: dict = {"reward_points": len(run.metrics.get(REWARD, []))}
    r = _ends(run.metrics.get(REWARD, []))
    if r:
        f.update(reward_start=F.rounded(r["start"]), reward_end=F.rounded(r["end"]), reward_rise=F.rounded(r["diff"]),
                 reward_rise_t=F.rounded(r["t"], 3), reward_rising=_rose(r))
        # still climbing at the end: the last 40 % of the logs alone rise beyond their noise
        vals = run.metrics[REWARD]
        tail = _ends(vals[int(len(vals) * (1 - F.RECENT)):])
        f["reward_still_rising"] = _rose(tail)
    zero = [v for _, v in run.metrics.get(ZERO_STD, [])]
    if zero:
        f["zero_signal_share"] = F.rounded(sum(zero) / len(zero))
    kl = run.metrics.get(KL, [])
    e = _ends(kl)
    if e:
        f.update(kl_start=F.rounded(e["start"]), kl_end=F.rounded(e["end"]), kl_rise_t=F.rounded(e["t"], 3))
    for key, name in ((LENGTH, "length"), (CLIPPED, "clipped")):
        e = _ends(run.metrics.get(key, []))
        if e:
            f[f"{name}_start"], f[f"{name}_end"] = F.rounded(e["start"]), F.rounded(e["end"])
    funcs = {}
    for key in function_keys(run):
        e = _ends(run.metrics[key])
        if e:
            funcs[key[len("rewards/"):-len("/mean")]] = e
    answer = [n for n in funcs if _checks_answer(n)]
    other = [n for n in funcs if n not in answer]
    saturated = [n for n in other if _rose(funcs[n]) and funcs[n]["end"] >= SATURATED * funcs[n]["max"]]
    if answer and saturated and not any(_rose(funcs[n]) for n in answer):
        f["hacked_by"] = ", ".join(saturated)
        f["answer_rewards"] = ", ".join(answer)
    if funcs:
        f["reward_by_function"] = "; ".join(f"{n} {F.rounded(e['start'], 3)} -> {F.rounded(e['end'], 3)}"
                                            for n, e in funcs.items())
    return f


def _checks_answer(name: str) -> bool:
    """A preset that compares with the reference answer (a user's function: not known, so not counted)."""
    return name in PRESETS and PRESETS[name].reference


# ---------------------------------------------------------------- the rules (each returns its reason, or None)
def _is_kl_runaway(f: dict, cfg: dict) -> str | None:
    if (f.get("kl_end") or 0) > KL_HIGH and (f.get("kl_rise_t") or 0) >= RISE_SE:
        return "kl_runaway"
    return None


def _is_reward_hacking(f: dict, cfg: dict) -> str | None:
    if f.get("hacked_by"):
        return "format_only"
    if (f.get("clipped_end") or 0) >= CLIPPED_ALL and (f.get("clipped_start") or 0) < CLIPPED_ALL:
        return "length_bound"
    if f.get("length_end") is not None and f["length_end"] <= EMPTY < (f.get("length_start") or 0):
        return "empty_completions"
    return None


def _is_no_signal(f: dict, cfg: dict) -> str | None:
    if f.get("reward_start") is None or f.get("reward_rising"):
        return None
    if (f.get("zero_signal_share") or 0) >= ZERO_SIGNAL:
        return "zero_advantage"
    return "flat_reward"


def _is_too_early(f: dict, cfg: dict) -> str | None:
    return "too_early" if f.get("reward_start") is None else None


HEALTHY = "reward_rising"


def _is_rising(f: dict, cfg: dict) -> str | None:
    return HEALTHY if f.get("reward_rising") else None


CHECKS = [("diverging", _is_kl_runaway), ("reward_hacking", _is_reward_hacking), ("undertrained", _is_too_early),
          ("not_learning", _is_no_signal), ("healthy", _is_rising)]


def advise(a, verdict: str, reason: str, f: dict, cfg: dict, steps_or_epochs, raise_lr) -> None:
    lr = cfg["learning_rate"]
    if reason == "kl_runaway":
        a.add("lr_third", {"learning_rate": float(f"{lr * 0.3:.3g}")}, lr=lr)
        beta = cfg.get("grpo_beta") or 0.0
        a.add("beta_up", {"grpo_beta": float(f"{min(100.0, beta * 3 if beta else 0.04):.3g}")}, beta=beta)
    elif reason == "format_only":
        names = list(cfg.get("reward_funcs") or [])
        hacked = set(str(f.get("hacked_by", "")).split(", "))
        weights = [0.5 if n in hacked else 2.0 for n in names] if names else None
        a.add("weigh_answer", {"reward_weights": [str(w) for w in weights]} if weights else {},
              hacked=f.get("hacked_by"), answer=f.get("answer_rewards"))
        a.add("read_completions", {})
    elif reason in ("length_bound", "empty_completions"):
        a.add("read_completions", {})
        if reason == "length_bound":
            n = int(cfg.get("max_completion_length") or 256)
            names = list(cfg.get("reward_funcs") or [])
            change = {"reward_funcs": names + ["length"]} if "length" not in names else {}
            a.add("length_band", {**change, "reward_length_max": max(1, n // 2)}, n=n)
    elif reason == "zero_advantage":
        g, b = int(cfg.get("num_generations") or 4), int(cfg.get("per_device_train_batch_size") or 4)
        change = {"num_generations": min(256, g * 2)}
        if (b * int(cfg.get("gradient_accumulation_steps") or 1)) % (g * 2):
            change["per_device_train_batch_size"] = min(4096, b * 2)  # a batch holds whole groups
        a.add("more_generations", change, g=g)
        temp = float(cfg.get("grpo_temperature") or 1.0)
        if temp < 1.5:
            a.add("hotter", {"grpo_temperature": round(min(1.5, temp + 0.3), 2)}, temp=temp)
        names = list(cfg.get("reward_funcs") or [])
        if "answer_exact" in names and "answer_last_number" not in names:
            a.add("ease_reward", {"reward_funcs": [("answer_last_number" if n == "answer_exact" else n)
                                                   for n in names]})
        else:
            a.add("ease_reward", {})
    elif reason == "flat_reward":
        raise_lr(a, cfg, 3.0)
    elif reason == HEALTHY and f.get("reward_still_rising"):
        a.add("longer", steps_or_epochs(cfg, f, factor=2.0))

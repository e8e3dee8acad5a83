"""The rules: from a run's facts to one verdict, the reason for it, and config changes to try.

    diagnose(path_or_run) -> {"verdict", "reason", "summary", "summary_zh", "evidence", "advice": [{"why",
                              "why_zh", "change", "key"}], "best_checkpoint", "findings", "notes", "state",
                              "running", "confidence", "format", "path"}
    public(report) -> the JSON `tuneboard doctor --json` prints

Verdicts, checked in this order (the first that holds wins; the others' signs stay in "findings"):
  data_problem    most samples cut or dropped by cutoff_len / the converter, no trained token, a template that
                  is not the model's, or a run that failed on its data
  failed          the run stopped on another error: the error is the verdict, and what it names is the advice
  diverging       a non-finite loss or gradient, a loss that ends >= 5 % above its start beyond its noise, blows
                  up to twice its start, or falls well below it and climbs back; repeated spikes beyond the noise,
                  a gradient-norm explosion after the first steps
  not_learning    the loss (and eval loss) did not fall by 2 % and beyond its noise (a short run that ended
                  above its start within its noise included), or started low and stayed there
  overfitting     eval loss rose for several evaluations after its best while train loss kept falling, or train
                  loss near zero on little data
  capacity_limit  train (and eval) loss flat at a high level while the learning rate is still high, and the run
                  could not even fit its training data better than held-out data
  undertrained    the loss is still falling at the end: the last 40 % of the steps gave a fair share of the
                  whole drop (or, with a decayed schedule, the last 40 % of the learning-rate budget did), beyond
                  the noise, and eval loss fell with it; or it learned and has not shown a plateau, or not as far
                  as its dataset's recipe needs to teach; or too few losses were logged to tell
  healthy         earned, never a fallback: a drop beyond the noise, then a plateau, eval not rising
When no rule holds, the verdict says what the curve shows (undertrained when it learned, not_learning when not).
The curve rules read the run's own curve (its drop, its noise, its schedule), never our logging or eval defaults:
runs of other tools, logged and evaluated at other intervals, are judged the same way (tests/test_insight_foreign).
Every "change" maps real engine.args names to values that pass the schema's checks, so the UI can apply it.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ..args import BY_NAME
from ..data import recipes
from ..train.stages import STAGES
from . import facts as F
from .runlog import Run, read_run
from .words import W, t, ts

VERDICTS = ("healthy", "undertrained", "overfitting", "diverging", "not_learning", "data_problem", "capacity_limit",
            "failed")

# Thresholds, in one place so the reasoning can be read against them. The curve rules are relative to the run's
# own curve (its total drop, its noise, its learning-rate schedule), not to our logging or eval defaults, so runs
# of other tools, logged every N steps and evaluated every M, read the same; and they are the same for every
# stage: a few-percent drop of a DPO or pre-training loss is weighed against its noise as an SFT loss is.
FLAT_REL = 0.02          # a change within 2 % of the start is no change, whatever the noise
RISE_REL = 0.02          # eval loss this far above its best counts as rising
ENDS_ABOVE = 0.05        # a loss that ends >= 5 % above its start, beyond its noise, diverged (less: not learning)
FALLING_SHARE = 0.2      # still falling: the last 40 % (facts.RECENT) of the steps gave >= 20 % of the whole drop,
FALLING_REL = 0.01       # ... >= 1 % of the loss level (less is not worth training longer for),
FALLING_T = 3.0          # ... with a slope t-value >= 3 (not noise)
EVAL_FALLING_SHARE = 0.1 # ... and eval loss gave >= 10 % of its own drop over the same stretch
EVAL_FALLING_REL = 0.005 # ... and >= 0.5 % of its level
RAN_OUT_SHARE = 0.25     # the last 40 % of the learning-rate budget (cumulative lr) still gave >= 25 % of the drop
LR_RAN_OUT = 0.3         # mean learning rate over the last 40 % below 30 % of the peak: the schedule ran out
PLATEAU_MIN = 0.2        # healthy: flat (facts.PLATEAU) for at least the last 20 % of the run ...
FLAT_SHARE = 0.25        # ... the last 40 % of the steps gave at most a quarter of the drop ...
FLAT_BOUND = 0.5         # ... and, two standard errors up, at most half of it (a noisy short run must show it)
FEW_POINTS = 5           # fewer logged losses than this cannot tell learning from noise
TRAIN_FELL_REL = 0.05    # overfitting: train loss fell at least this much since the best eval
BLOWUP = 2.0             # loss (median of 3) above twice its start: blew up
GN_EXPLOSION = 10.0      # largest gradient norm after the first steps over ten times the median (and 10)
MEMORISED = 0.05         # train loss below this on little data: memorised
LITTLE_DATA = 1000       # samples
HIGH_LOSS = 1.0          # nats/token: a plateau above this (and above half the start) is "high"
CAP_GAP = 0.05           # capacity: after >= 1.5 epochs train loss is not even 5 % below eval loss (cannot memorise)
CAP_EPOCHS = 1.5
CAP_LEARNED = 0.25       # ... or, without that test, it learned less than 25 % of its start
CUT_MOST = 0.5           # share of samples truncated or dropped that makes it the verdict
CUT_SOME = 0.1           # share that is worth a finding
FEW_SAMPLES = 50

# A token-level loss that starts below this (nats/token) has little left to lose: flat is no fault. A preference
# or reward loss starts where chance puts it (ln 2 for DPO / a reward model, ~0.5 for KTO), so it does not apply.
LOW_START = 0.5
# The usual learning-rate range, by stage and method (what the advice proposes stays inside it; the stage's words
# are in words.py, keyed the same way).
LR_TYPICAL = {
    ("pt", "lora"): (1e-4, 5e-4), ("pt", "freeze"): (2e-5, 1e-4), ("pt", "full"): (1e-5, 5e-5),
    ("sft", "lora"): (1e-4, 5e-4), ("sft", "freeze"): (2e-5, 1e-4), ("sft", "full"): (1e-5, 5e-5),
    ("rm", "lora"): (5e-5, 3e-4), ("rm", "freeze"): (1e-5, 5e-5), ("rm", "full"): (5e-6, 2e-5),
    ("dpo", "lora"): (5e-6, 1e-4), ("dpo", "freeze"): (1e-6, 1e-5), ("dpo", "full"): (5e-7, 5e-6),
    ("kto", "lora"): (5e-6, 1e-4), ("kto", "freeze"): (1e-6, 1e-5), ("kto", "full"): (5e-7, 5e-6),
}
# Errors of a failed run that name their cure (a substring of the error -> the advice key).
FAILURE_ADVICE = (("out of memory", "oom"), ("MemoryError", "oom"), ("DefaultCPUAllocator", "oom"))


def lr_range(cfg: dict) -> tuple[float, float]:
    return LR_TYPICAL.get((cfg.get("stage") or "sft", cfg.get("finetuning_type") or "lora"), (1e-5, 5e-4))


# ---------------------------------------------------------------- what the curve shows
def _learned(f: dict) -> bool:
    """A real drop: the loss ends >= 2 % below its start and further than noise alone moves it (or the whole run
    trends down with a t-value >= 3)."""
    d = f.get("loss_drop_pct")
    if d is None or d < 100 * FLAT_REL:
        return False
    return d >= (f.get("loss_change_noise_pct") or 0) or (f.get("loss_trend_t") or 0) >= FALLING_T


def _moved(f: dict) -> bool:
    """The loss got well below its start at some point (medians of a tenth of the run), beyond the noise, even
    if it did not stay there."""
    m = f.get("loss_moved_pct")
    if m is None or m < 100 * FLAT_REL:
        return False
    return m >= 2 * (f.get("loss_moved_noise_pct") or 0)


def _eval_learned(f: dict) -> bool:
    return (f.get("eval_drop_pct") or 0) >= max(100 * FLAT_REL, f.get("eval_drop_noise_pct") or 0)


def _rose(f: dict) -> bool:
    """The loss ends above its start by >= ENDS_ABOVE and further than noise alone moves it."""
    d = f.get("loss_drop_pct")
    return d is not None and -d >= max(100 * ENDS_ABOVE, f.get("loss_change_noise_pct") or 0)


def _falling(f: dict, prefix: str, share: float) -> bool:
    """Over the last 40 % of the steps (prefix "recent_") or of the lr budget ("recent_lr_"): train loss still
    gave `share` of the run's whole drop, beyond its noise and worth training for; eval loss, when the run has
    evaluations over that stretch, fell with it."""
    if (f.get(f"{prefix}share_pct") or 0) < 100 * share or (f.get(f"{prefix}drop_pct") or 0) < 100 * FALLING_REL \
            or (f.get(f"{prefix}slope_t") or 0) < FALLING_T:
        return False
    if f.get(f"eval_{prefix}drop_pct") is None:
        return True
    if f.get("eval_rose"):
        return False  # eval already turned up
    return (f.get(f"eval_{prefix}share_pct") or 0) >= 100 * EVAL_FALLING_SHARE \
        and f[f"eval_{prefix}drop_pct"] >= 100 * EVAL_FALLING_REL


def _still_falling(f: dict) -> bool:
    return _falling(f, "recent_", FALLING_SHARE)


def _ran_out(f: dict) -> bool:
    """The schedule decayed the learning rate away while the loss still fell per unit of learning rate: the loss
    flattened over the steps only because the steps stopped moving the weights."""
    return (f.get("recent_lr_ratio") or 1.0) < LR_RAN_OUT and _falling(f, "recent_lr_", RAN_OUT_SHARE)


def _flat_end(f: dict) -> bool:
    """The loss stopped falling: its smoothed curve has stayed near its end for the last PLATEAU_MIN of the run
    or more, and the last 40 % of the steps gave at most FLAT_SHARE of the drop (FLAT_BOUND at two standard
    errors: a noisy run whose end could as well still be falling has not shown a plateau)."""
    share = f.get("recent_share_pct") or 0
    return (f.get("after_plateau_pct") or 0) >= 100 * PLATEAU_MIN and share <= 100 * FLAT_SHARE \
        and share + 2 * (f.get("recent_share_se_pct") or 0) <= 100 * FLAT_BOUND


# ---------------------------------------------------------------- the rules, in the order they are checked
def _is_data_problem(f: dict, cfg: dict) -> str | None:
    if f.get("data_error"):
        return "cut_all" if f.get("cut_error") else "data_error"
    if (f.get("truncated_pct") or 0) > 100 * CUT_MOST:
        return "cut_most"
    if (f.get("dropped_pct") or 0) > 100 * CUT_MOST:
        return "dropped_most"
    if (f.get("duplicates_pct") or 0) > 100 * CUT_MOST:
        return "dup_most"
    if f.get("trained_tokens") == 0 and f.get("samples_train"):
        f["no_trained_tokens"] = True
        return "no_trained_tokens"
    if f.get("expected_template"):
        return "template"
    return None


def _is_failed(f: dict, cfg: dict) -> str | None:
    """A run that stopped on an error: the error is the verdict, whatever the curve did before it."""
    if f.get("state") != "failed":
        return None
    return "failed_at" if f.get("train_points") else "failed"


def _is_diverging(f: dict, cfg: dict) -> str | None:
    if f.get("nonfinite_steps"):
        return "nonfinite"
    first = f.get("loss_first")
    if first is None:
        return None
    if f.get("train_points", 0) >= 3 and _rose(f):
        return "ends_above"
    if f["loss_max_smoothed"] > first * BLOWUP:
        return "blowup"
    if len(f.get("spike_steps") or []) >= 2:
        return "spikes"
    gmax, gmed = f.get("grad_norm_max_late"), f.get("grad_norm_median")
    if gmax and gmed and gmax > GN_EXPLOSION * gmed and gmax > 10:
        return "grad_explosion"
    if _moved(f) and not _learned(f) and not _eval_learned(f):
        return "rebound"  # it fell well below its start, then climbed back to it
    return None


def _is_not_learning(f: dict, cfg: dict) -> str | None:
    n = f.get("train_points", 0)
    if n < 2 or f.get("loss_start") is None:
        return None
    if n < FEW_POINTS:  # too few logs to weigh against their noise: only a loss that did not fall at all
        return "flat" if (f.get("loss_drop_pct") or 0) < 100 * FLAT_REL and not _rose(f) else None
    if _learned(f) or _moved(f) or _eval_learned(f) or _rose(f):
        return None
    if not _preference_loss(cfg) and f["loss_start"] < LOW_START:
        return "already_low"
    return "flat"


def _is_overfitting(f: dict, cfg: dict) -> str | None:
    if f.get("eval_points", 0) >= 3 and f.get("evals_after_best", 0) >= 2 and f.get("evals_above_best", 0) >= 2 \
            and (f.get("eval_rise_pct") or 0) > 100 * RISE_REL \
            and (f.get("train_drop_since_best_pct") or 0) > max(100 * TRAIN_FELL_REL, f.get("train_drop_noise_pct") or 0):
        return "eval_rising"
    n = f.get("samples_train")
    # near-zero train loss on little data; with an eval set only when eval loss stayed far above it
    if f.get("loss_end") is not None and f["loss_end"] < MEMORISED and (n is None or n <= LITTLE_DATA) \
            and f.get("train_points", 0) >= 5 and (f.get("eval_last") is None or f["eval_last"] > 3 * f["loss_end"]):
        return "memorised"
    return None


def _preference_loss(cfg: dict) -> bool:
    """The stage's loss is a preference / reward objective, not next-token cross-entropy: its level says nothing
    about how much the model can still learn (a DPO loss starts at ln 2, a KTO loss near 0.5, a reward model's at
    ln 2). A foreign run's unknown stage counts as cross-entropy."""
    stage = STAGES.get(cfg.get("stage"))
    return bool(stage and stage.preference_loss)


def _plateau_high(f: dict) -> bool:
    """Flat at the end of the run and still high (above 1 nat/token and above half the start)."""
    if f.get("train_points", 0) < 10 or f.get("loss_start") is None:
        return False
    start, end = f["loss_start"], f["loss_end"]
    return end > HIGH_LOSS and end > 0.5 * start and not _still_falling(f)


def _is_capacity_limit(f: dict, cfg: dict) -> str | None:
    if _preference_loss(cfg) or not _plateau_high(f):
        return None
    if (f.get("recent_lr_ratio") or 1.0) < LR_RAN_OUT:
        return None  # flat because the schedule ran out, not because the model is full
    if f.get("eval_points", 0) >= 3 and (f.get("eval_recent_range_pct") or 0) > 100 * FLAT_REL:
        return None
    if f.get("eval_gap_pct") is not None and (f.get("epochs") or 0) >= CAP_EPOCHS:
        # data seen again and again: a model with room to spare fits its training set better than held-out data
        return "plateau_high" if f["eval_gap_pct"] < 100 * CAP_GAP else None
    # one pass, no memorisation test: only a run that learned little before flattening
    return "plateau_high" if (f.get("loss_drop_pct") or 0) < 100 * CAP_LEARNED else None


def _is_undertrained(f: dict, cfg: dict) -> str | None:
    n = f.get("train_points", 0)
    if n < FEW_POINTS:
        if not n:
            return None
        return "too_early" if f.get("running") else "few_points"
    falling, ran_out = _still_falling(f), _ran_out(f)
    if falling or ran_out:
        if (f.get("loss_drop_pct") or 0) < 5:
            return "little_progress"
        return "still_falling" if falling else "schedule_ran_out"
    if (_learned(f) or _eval_learned(f)) and not _flat_end(f):
        return "not_flat"  # it learned and has not clearly flattened: too soon to call it done
    return None


def _is_healthy(f: dict, cfg: dict) -> str | None:
    """Earned, never a fallback: a real drop beyond the noise, then a plateau, and eval loss not rising."""
    if f.get("train_points", 0) < FEW_POINTS or not (_learned(f) or _eval_learned(f)):
        return None
    if not _flat_end(f) or _still_falling(f) or _ran_out(f) or f.get("eval_rose"):
        return None
    return "learned"


CHECKS = (("data_problem", _is_data_problem), ("failed", _is_failed), ("diverging", _is_diverging),
          ("not_learning", _is_not_learning), ("overfitting", _is_overfitting),
          ("capacity_limit", _is_capacity_limit), ("undertrained", _is_undertrained), ("healthy", _is_healthy))


def _notes(f: dict, cfg: dict, verdict: str) -> list[dict]:
    """Smaller things worth knowing whatever the verdict (en / zh)."""
    out = []

    def note(key, **fmt):
        out.append({"key": key, "en": t(f"note_{key}", "en", **fmt), "zh": t(f"note_{key}", "zh", **fmt)})
    tp = f.get("truncated_pct") or 0
    if 100 * CUT_SOME <= tp <= 100 * CUT_MOST:
        if f.get("max_len") is not None:
            note("some_cut", pct=tp, cutoff=f.get("cutoff_len"), max_len=f["max_len"])
        else:
            note("some_cut_nomax", pct=tp, cutoff=f.get("cutoff_len"))
    dp = f.get("duplicates_pct") or 0
    if 100 * CUT_SOME <= dp <= 100 * CUT_MOST:
        note("some_dups", n=f.get("duplicates"), pct=dp)
    n = f.get("samples_train")
    if n is not None and n < FEW_SAMPLES:
        note("few_samples", n=n)
    if f.get("eval_points", 0) == 0 and f.get("train_points", 0) and not _has_eval_set(cfg) and verdict != "failed":
        note("no_eval")  # (a failed run has its error to fix first)
    if f.get("running"):
        if f.get("total_steps"):
            note("running", step=f.get("last_step"), total=f["total_steps"])
        else:
            note("running_nototal", step=f.get("last_step"))
    if f.get("state") == "aborted":
        note("aborted", step=f.get("last_step"))
    if f.get("state") == "failed" and f.get("error") and verdict != "failed" and not f.get("data_error"):
        note("failed", error=f["error"])
    return out


def _has_eval_set(cfg: dict) -> bool:
    """The run holds data out for evaluation (its eval points may still be to come)."""
    return bool((cfg.get("val_size") or 0) > 0 or cfg.get("eval_dataset")) and cfg.get("eval_strategy") != "no"


def _pow2_at_least(n: int) -> int:
    p = 16
    while p < n:
        p *= 2
    return p


class _Advice:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.stage = cfg.get("stage") or "sft"
        self.items: list[dict] = []

    def add(self, key: str, change: dict, **fmt) -> None:
        """A change is kept only for arguments it really changes; an empty change is a note to act on by hand.
        The words are the stage's own where words.py has them (adv_<key>@<stage>)."""
        change = {k: v for k, v in change.items() if self.cfg.get(k) != v}
        for k, v in change.items():
            if k not in BY_NAME:  # a bug here would hand the UI an argument it cannot set
                raise AssertionError(f"advice names unknown argument {k}")
        if any(a["key"] == key for a in self.items):
            return
        def words(lang):  # a value given as {"en": ..., "zh": ...} is a word, in the reader's language
            return ts(f"adv_{key}", self.stage, lang, **{k: v[lang] if isinstance(v, dict) else v
                                                           for k, v in fmt.items()})
        self.items.append({"key": key, "why": words("en"), "why_zh": words("zh"), "change": change, "fmt": fmt})


def _steps_or_epochs(cfg: dict, f: dict, factor: float | None = None, at_step: int | None = None,
                     at_epoch: float | None = None) -> dict:
    """A change of training length: max_steps when the run used it, else num_train_epochs."""
    if cfg.get("max_steps", -1) and cfg["max_steps"] > 0:
        if at_step is not None:
            return {"max_steps": max(1, int(at_step))}
        return {"max_steps": max(1, int(round(cfg["max_steps"] * factor)))}
    epochs = float(cfg.get("num_train_epochs") or 3.0)
    if at_epoch is not None:
        return {"num_train_epochs": max(0.5, math.ceil(at_epoch * 2) / 2)}
    return {"num_train_epochs": F.rounded(max(0.5, round(epochs * factor * 2) / 2))}


def _lower_lr(cfg: dict, factor: float) -> dict:
    return {"learning_rate": float(f"{cfg['learning_rate'] * factor:.3g}")}


def _lr_words(cfg: dict) -> dict:
    """The range and what it is for ("LoRA Supervised Fine-Tuning"), the stage in its record's own words."""
    lo, hi = lr_range(cfg)
    method, stage = cfg.get("finetuning_type") or "lora", STAGES.get(cfg.get("stage") or "sft")
    words = stage.words if stage else (cfg.get("stage"),) * 2
    what = {lang: f"{t('method_' + method, lang)} {w}" for lang, w in zip(("en", "zh"), words)}
    return {"lo": f"{lo:g}", "hi": f"{hi:g}", "what": what}


def _raise_lr(a: _Advice, cfg: dict, factor: float) -> None:
    """A higher learning rate, inside the stage's usual range: up to `factor` times the run's, at least the
    range's low end, at most its top; at the top already, say so instead of going past it."""
    lr = cfg["learning_rate"]
    lo, hi = lr_range(cfg)
    rng = _lr_words(cfg)
    if lr >= hi:
        a.add("lr_at_top", {}, lr=f"{lr:g}", **rng)
        return
    new = float(f"{min(hi, max(lo, lr * factor)):.3g}")
    a.add("lr_up", {"learning_rate": new}, lr=f"{lr:g}", new=f"{new:g}", **rng)


def _failure_advice(a: _Advice, f: dict, cfg: dict) -> None:
    err = str(f.get("error") or "")
    for needle, key in FAILURE_ADVICE:
        if needle.lower() in err.lower():
            if key == "oom":
                bs, ga = int(cfg.get("per_device_train_batch_size") or 1), int(cfg.get("gradient_accumulation_steps") or 1)
                ch = {"gradient_checkpointing": True}
                if bs > 1:
                    ch.update(per_device_train_batch_size=bs // 2, gradient_accumulation_steps=ga * 2)
                a.add("oom", ch)
            return
    field = error_field(err)
    if field:
        a.add("fix_field", {}, field=field)
    else:
        a.add("fix_error", {})


def error_field(err: str) -> str | None:
    """The argument an error message names: its first word when that is one (`cutoff_len: ...`), else the first
    argument with an underscore in its name that it mentions (`... Check model_name_or_path ...`)."""
    head = err.split(":", 1)[0].strip()
    if head in BY_NAME:
        return head
    for word in re.findall(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+", err):
        if word in BY_NAME:
            return word
    return None


def _advise(verdict: str, reason: str, f: dict, cfg: dict, tpl: dict | None, has_eval: bool,
            taught: bool | None = None) -> list[dict]:
    a = _Advice(cfg)
    method = cfg.get("finetuning_type", "lora")
    lr = cfg["learning_rate"]
    recipe = dataset_recipe(cfg)
    if verdict == "failed":
        _failure_advice(a, f, cfg)
    elif verdict == "data_problem":
        if tpl:
            a.add("template", {"template": tpl["expected"]}, **tpl)
        if (f.get("truncated_pct") or 0) >= 100 * CUT_SOME or f.get("cut_error"):
            target = f.get("max_len") or f.get("p95") or cfg.get("cutoff_len", 1024) * 4
            pct = f.get("truncated_pct", 100)
            if f.get("max_len") is not None and f.get("p95") is not None:
                a.add("cutoff", {"cutoff_len": _pow2_at_least(int(target))}, cutoff=cfg.get("cutoff_len"),
                      pct=pct, max_len=f["max_len"], p95=f["p95"])
            else:
                a.add("cutoff_nolen", {"cutoff_len": _pow2_at_least(int(target))}, cutoff=cfg.get("cutoff_len"),
                      pct=pct)
        if (f.get("dropped_pct") or 0) >= 100 * CUT_SOME:
            reasons = "; ".join(f"{c} x {r}" for r, c in list((f.get("dropped_reasons") or {}).items())[:3])
            if reasons:
                a.add("dropped", {}, pct=f.get("dropped_pct"), reasons=reasons)
            else:
                a.add("dropped_noreason", {}, pct=f.get("dropped_pct"))
        if (f.get("duplicates_pct") or 0) >= 100 * CUT_SOME:
            a.add("dedup", {}, n=f.get("duplicates"), pct=f.get("duplicates_pct"))
        if f.get("no_trained_tokens"):
            a.add("masking", {"train_on_prompt": False, "mask_history": False})
        if f.get("data_error") and not a.items:
            a.add("data_error", {}, error=f.get("error", ""))
    elif verdict == "diverging":
        a.add("lr_down", _lower_lr(cfg, 0.1), lr=lr)
        if not cfg.get("warmup_steps") and (cfg.get("warmup_ratio") or 0) < 0.05:
            a.add("warmup", {"warmup_ratio": 0.1})
        if not cfg.get("max_grad_norm") or cfg["max_grad_norm"] > 1.0:
            a.add("clip", {"max_grad_norm": 1.0})
        if cfg.get("fp16"):
            a.add("bf16", {"fp16": False, "bf16": True})
    elif verdict == "not_learning":
        if reason != "already_low":
            if recipe:
                a.add("recipe", recipe, dataset=cfg["dataset"][0])
            else:
                _raise_lr(a, cfg, 10)
        if tpl:
            a.add("template", {"template": tpl["expected"]}, **tpl)
        a.add("check_masking", {})
    elif verdict == "overfitting":
        best_step = f.get("eval_best_step")
        if has_eval:
            a.add("keep_best", {"load_best_model_at_end": True, "early_stopping_patience": 2})
            if best_step:
                a.add("shorter", _steps_or_epochs(cfg, f, at_step=best_step, at_epoch=f.get("eval_best_epoch")
                                                  or f.get("epochs")), step=best_step)
        else:
            a.add("add_eval", {"val_size": 0.1})
            a.add("shorter_half", _steps_or_epochs(cfg, f, factor=0.5))
        a.add("lr_down_overfit", _lower_lr(cfg, 0.5), lr=lr)
        if method == "lora":
            r = int(cfg.get("lora_rank") or 8)
            ch = {"lora_dropout": 0.1 if (cfg.get("lora_dropout") or 0) < 0.1 else min(0.3, cfg["lora_dropout"] + 0.1)}
            if r > 2:
                ch["lora_rank"] = max(2, r // 2)
            a.add("smaller_lora", ch)
        elif method == "full":
            a.add("use_lora", {"finetuning_type": "lora"})
        else:
            k = int(cfg.get("freeze_trainable_layers") or 2)
            if abs(k) > 1:
                a.add("fewer_layers", {"freeze_trainable_layers": (abs(k) // 2) * (1 if k > 0 else -1)})
        if cfg.get("max_samples"):
            a.add("more_data_cap", {"max_samples": None}, n=cfg["max_samples"])
        elif f.get("samples_train"):
            a.add("more_data", {}, n=f["samples_train"])
        else:
            a.add("more_data_any", {})
    elif verdict == "capacity_limit":
        if method == "lora":
            r = int(cfg.get("lora_rank") or 8)
            ch = {"lora_rank": min(256, r * 4), "lora_alpha": min(65536, 2 * min(256, r * 4))}
            if cfg.get("lora_target") not in (["all"], "all"):
                ch["lora_target"] = ["all"]
            a.add("bigger_lora", ch, r=r)
            a.add("full_ft", {"finetuning_type": "full", "learning_rate": float(f"{min(lr, 2e-5):.3g}")})
        elif method == "freeze":
            k = int(cfg.get("freeze_trainable_layers") or 2)
            ch = {"freeze_trainable_layers": k * 2}
            if cfg.get("freeze_trainable_modules") not in (["all"], "all"):
                ch["freeze_trainable_modules"] = ["all"]
            a.add("more_layers", ch)
            a.add("full_ft", {"finetuning_type": "full"})
        a.add("bigger_model", {})
    elif verdict == "undertrained":
        if reason == "too_early":
            pass  # a live run: wait for more of it
        elif reason in ("few_points", "not_taught") or (recipe and (reason == "little_progress" or taught is False)):
            if recipe:
                a.add("recipe", recipe, dataset=cfg["dataset"][0])
            if reason == "few_points":
                every = max(1, int(f.get("last_step") or 0) // 20)
                if every < int(cfg.get("logging_steps") or 5):
                    a.add("log_more", {"logging_steps": every}, n=f.get("train_points"))
            a.add("longer", _steps_or_epochs(cfg, f, factor=2.0))
        else:
            if reason == "little_progress":
                _raise_lr(a, cfg, 3)
            a.add("longer", _steps_or_epochs(cfg, f, factor=2.0))
            if reason == "schedule_ran_out" or (reason == "still_falling" and f.get("lr_end") is not None
                                                and f.get("lr_peak") and f["lr_end"] < 0.05 * f["lr_peak"]):
                a.add("lr_up_undertrained", {"learning_rate": float(f"{lr * 2:.3g}")}, lr=lr)
        if has_eval and not cfg.get("load_best_model_at_end") and reason != "too_early":
            a.add("keep_best", {"load_best_model_at_end": True, "early_stopping_patience": 3})
    elif verdict == "healthy":
        if has_eval and not cfg.get("load_best_model_at_end"):
            a.add("keep_best", {"load_best_model_at_end": True})
        if not has_eval and not _has_eval_set(cfg):
            a.add("add_eval", {"val_size": 0.1})
    return [{"why": x["why"], "why_zh": x["why_zh"], "change": x["change"], "key": x["key"]} for x in a.items]


def dataset_recipe(cfg: dict) -> dict | None:
    """The settings the run's dataset ships with (engine.data.recipes) that this run did not use, or None."""
    r = recipes.recipe_for(cfg.get("dataset"), cfg.get("stage"), cfg.get("finetuning_type"))
    if not r or all(cfg.get(k) == v for k, v in r.items()):
        return None
    return r


def diagnose(run: Run | str | Path) -> dict:
    """The verdict on a run folder (finished, failed or still running)."""
    if not isinstance(run, Run):
        run = read_run(run)
    cfg = F.run_config(run)
    f = F.facts(run)
    f["running"] = run.running
    tpl = F.template_check(cfg)
    if tpl:
        f["template"], f["expected_template"] = tpl["template"], tpl["expected"]
    dup = F.duplicates(cfg) if run.config else None
    if dup and dup["samples"]:
        f["duplicates"] = dup["duplicates"]
        f["duplicates_pct"] = F.rounded(100 * dup["duplicates"] / dup["samples"])
    err = str(f.get("error") or "")
    if run.state == "failed" and err.split(":")[0].strip() in ("cutoff_len", "dataset", "val_size"):
        f["data_error"] = True
        f["cut_error"] = err.startswith("cutoff_len")
        F.stats_from_error(f, err)
    taught = _taught(f, cfg)
    has_eval = f.get("eval_points", 0) > 0
    verdict = None
    reasons: dict[str, str] = {}
    for name, check in CHECKS:
        why = check(f, cfg)
        if taught is False and (name, why) in (("healthy", "learned"), ("undertrained", "not_flat")):
            name, why = "undertrained", "not_taught"  # it learned, but not yet what its dataset is there to teach
        if why:
            reasons.setdefault(name, why)
            verdict = verdict or name
    if verdict is None:  # nothing held, healthy included: say what the curve does show, never "healthy"
        if not f.get("train_points"):
            verdict = "undertrained" if run.running else "not_learning"
            reasons[verdict] = "too_early" if run.running else "no_points"
        elif _learned(f) or _eval_learned(f):
            verdict, reasons["undertrained"] = "undertrained", "not_taught" if taught is False else "not_flat"
        else:
            verdict, reasons["not_learning"] = "not_learning", "flat"
    findings = [k for k in reasons if k not in (verdict, "healthy")]
    notes = _notes(f, cfg, verdict)
    best = F.best_checkpoint(run)
    if best is None and f.get("eval_best_step") and not run.running:
        notes.append({"key": "no_best_ckpt", "en": t("note_no_best_ckpt", "en", step=f["eval_best_step"]),
                      "zh": t("note_no_best_ckpt", "zh", step=f["eval_best_step"])})
    confidence = "low" if f.get("train_points", 0) < 5 else "high" if f.get("train_points", 0) >= 10 else "medium"
    reason = reasons[verdict]
    fmt = _fmt(f, cfg)
    report = {
        "verdict": verdict,
        "reason": reason,
        "summary": _summary(reason, f, "en", fmt),
        "summary_zh": _summary(reason, f, "zh", fmt),
        "evidence": {k: _json_safe(v) for k, v in f.items() if v is not None and k not in
                     ("data_error", "cut_error", "no_trained_tokens", "eval_rose", "running")},
        "advice": _advise(verdict, reason, f, cfg, tpl, has_eval, taught),
        "best_checkpoint": best,
        "findings": findings,
        "notes": notes,
        "state": run.state,
        "running": run.running,
        "confidence": confidence,
        "format": run.format,
        "path": run.path,
        "stage": cfg.get("stage") or "sft",
    }
    return report


def _taught(f: dict, cfg: dict) -> bool | None:
    """Whether the run got as far as its dataset's recipe says it must to teach what it teaches (the identity
    dataset: the loss well below its start, or the model does not yet answer with its new name); None when the
    dataset says nothing."""
    ratio = recipes.taught_below(cfg.get("dataset"), cfg.get("stage"))
    if ratio is None or f.get("loss_start") is None or f.get("loss_end") is None:
        return None
    return f["loss_end"] <= ratio * f["loss_start"]


def _summary(reason: str, f: dict, lang: str, fmt: dict) -> str:
    """The one-line summary; a reason with a variant for runs without evaluations uses it when there are none."""
    key = f"sum_{reason}"
    if not f.get("eval_points") and f"{key}_noeval" in W:
        key = f"{key}_noeval"
    return t(key, lang, **fmt)


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _signed_pct(x) -> str:
    """A change in percent with its sign: -41.2%, +7.23% (never "--")."""
    return f"{x:+.3g}%".replace("+-", "-")


def _fmt(f: dict, cfg: dict) -> dict:
    out = {k: v for k, v in f.items() if v is not None}
    out["learning_rate"] = f"{cfg.get('learning_rate'):g}" if cfg.get("learning_rate") is not None else ""
    if f.get("nonfinite_steps"):
        out["nonfinite_first"] = f["nonfinite_steps"][0]
    if f.get("spike_steps"):
        out["spike_steps"] = ", ".join(map(str, f["spike_steps"]))
    if f.get("loss_drop_pct") is not None:
        out["loss_change"] = _signed_pct(-f["loss_drop_pct"])
        out["loss_drop_abs"] = F.rounded(abs(f["loss_drop_pct"]), 3)
    if f.get("loss_change_noise_pct") is not None:
        out["change_noise"] = F.rounded(f["loss_change_noise_pct"], 2)
    if f.get("recent_lr_ratio") is not None:
        out["recent_lr_pct"] = F.rounded(100 * f["recent_lr_ratio"], 2)
    if f.get("error"):
        out["error"] = str(f["error"]).rstrip(". ")
    out["dataset"] = ",".join(cfg.get("dataset") or [])
    ratio = recipes.taught_below(cfg.get("dataset"), cfg.get("stage"))
    if ratio is not None:
        out["taught_pct"] = round(100 * ratio)
    return out


def public(report: dict) -> dict:
    """The JSON the CLI prints: the documented keys first, the extras after."""
    out = {"verdict": report["verdict"], "evidence": report["evidence"],
           "advice": [{"why": a["why"], "change": a["change"]} for a in report["advice"]],
           "best_checkpoint": report["best_checkpoint"]}
    for k in ("summary", "findings", "notes", "state", "running", "confidence", "format", "path"):
        out[k] = report[k]
    out["notes"] = [n["en"] for n in report["notes"]]
    return out

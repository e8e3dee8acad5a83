"""The rules: from a run's facts to one verdict, the reason for it, and config changes to try.

    diagnose(path_or_run) -> {"verdict", "reason", "summary", "summary_zh", "evidence", "advice": [{"why",
                              "why_zh", "change", "key"}], "best_checkpoint", "findings", "notes", "state",
                              "running", "confidence", "format", "path"}
    public(report) -> the JSON `tuneboard doctor --json` prints

Verdicts, checked in this order (the first that holds wins; the others' signs stay in "findings"):
  data_problem    most samples cut or dropped by cutoff_len / the converter, no trained token, a template that
                  is not the model's, or a run that failed on its data
  diverging       a non-finite loss or gradient, a loss that ends above where it started or blows up to twice
                  its start, repeated spikes beyond the noise, a gradient-norm explosion after the first steps
  not_learning    the loss (and eval loss) stays within a few percent of its start, or within its noise
  overfitting     eval loss rose for several evaluations after its best while train loss kept falling, or train
                  loss near zero on little data
  capacity_limit  train (and eval) loss flat at a high level while the learning rate is still high, and the run
                  could not even fit its training data better than held-out data
  undertrained    the loss is still falling at the end: the last 40 % of the steps gave a fair share of the
                  whole drop (or, with a decayed schedule, the last 40 % of the learning-rate budget did), beyond
                  the noise, and eval loss fell with it
  healthy         learned, flattened, eval not rising
The curve rules read the run's own curve (its drop, its noise, its schedule), never our logging or eval defaults:
runs of other tools, logged and evaluated at other intervals, are judged the same way (tests/test_insight_foreign).
Every "change" maps real engine.args names to values that pass the schema's checks, so the UI can apply it.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..args import BY_NAME
from ..train.stages import STAGES
from . import facts as F
from .runlog import Run, read_run
from .words import t

VERDICTS = ("healthy", "undertrained", "overfitting", "diverging", "not_learning", "data_problem", "capacity_limit")

# Thresholds, in one place so the reasoning can be read against them. The curve rules are relative to the run's
# own curve (its total drop, its noise, its learning-rate schedule), not to our logging or eval defaults, so runs
# of other tools, logged every N steps and evaluated every M, read the same.
FLAT_REL = 0.02          # a loss within 2 % of its start has not moved
FALLING_SHARE = 0.2      # still falling: the last 40 % (facts.RECENT) of the steps gave >= 20 % of the whole drop,
FALLING_REL = 0.01       # ... >= 1 % of the loss level (less is not worth training longer for),
FALLING_T = 3.0          # ... with a slope t-value >= 3 (not noise)
EVAL_FALLING_SHARE = 0.1 # ... and eval loss gave >= 10 % of its own drop over the same stretch
EVAL_FALLING_REL = 0.005 # ... and >= 0.5 % of its level
RAN_OUT_SHARE = 0.25     # the last 40 % of the learning-rate budget (cumulative lr) still gave >= 25 % of the drop
LR_RAN_OUT = 0.3         # mean learning rate over the last 40 % below 30 % of the peak: the schedule ran out
RISE_REL = 0.02          # eval loss this far above its best counts as rising
TRAIN_FELL_REL = 0.05    # ... while train loss fell at least this much since the best eval
BLOWUP = 2.0             # loss (median of 3) above twice its start: blew up
ENDS_ABOVE = 1.10        # loss ends 10 % above its start: diverged
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


def _is_diverging(f: dict, cfg: dict) -> str | None:
    if f.get("nonfinite_steps"):
        return "nonfinite"
    first = f.get("loss_first")
    if first is None:
        return None
    start, sigma = f["loss_start"], f.get("noise_sigma") or 0.0
    # against the median of the first three logs, and beyond the noise: one low first log is not a start
    if f.get("train_points", 0) >= 3 and f["loss_end"] > start * ENDS_ABOVE and f["loss_end"] - start > 2 * sigma:
        return "ends_above"
    if f["loss_max_smoothed"] > first * BLOWUP:
        return "blowup"
    if len(f.get("spike_steps") or []) >= 2:
        return "spikes"
    gmax, gmed = f.get("grad_norm_max_late"), f.get("grad_norm_median")
    if gmax and gmed and gmax > GN_EXPLOSION * gmed and gmax > 10:
        return "grad_explosion"
    return None


def _is_not_learning(f: dict, cfg: dict) -> str | None:
    if f.get("train_points", 0) < 5 or f.get("loss_start") is None:
        return None
    start = f["loss_start"]
    if start < 0.5:  # already low: flat is fine
        return None
    if f.get("loss_moved_pct") is None:  # a short log: the first three and the last few logs
        if max(start - f["loss_end"], start - f["loss_min"]) / start >= FLAT_REL:
            return None
    else:
        noise, trend = f["loss_moved_noise_pct"] or 0, abs(f.get("loss_trend_t") or 0)
        if f["loss_rose_pct"] > max(100 * FLAT_REL, noise):
            return None  # it rose: not flat (the divergence rules speak for it)
        # moved: beyond 2 %, unless that is within its noise and the run as a whole has no trend
        if f["loss_moved_pct"] >= 100 * FLAT_REL and (f["loss_moved_pct"] >= 2 * noise or trend >= FALLING_T):
            return None
    if (f.get("eval_drop_pct") or 0) >= max(100 * FLAT_REL, f.get("eval_drop_noise_pct") or 0):
        return None
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


def _preference_loss(cfg: dict) -> bool:
    """The stage's loss is a preference / reward objective, not next-token cross-entropy: its level says nothing
    about how much the model can still learn (a DPO loss starts at ln 2, a KTO loss near 0.5, a reward model's at
    ln 2). A foreign run's unknown stage counts as cross-entropy."""
    stage = STAGES.get(cfg.get("stage"))
    return bool(stage and stage.preference_loss)


def _plateau_high(f: dict) -> bool:
    """Flat over the last 40 % of the run and still high (above 1 nat/token and above half the start)."""
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
    if f.get("train_points", 0) < 5:
        return "too_early" if f.get("train_points") else None
    falling, ran_out = _still_falling(f), _ran_out(f)
    if not (falling or ran_out):
        return None
    if (f.get("loss_drop_pct") or 0) < 5:
        return "little_progress"
    return "still_falling" if falling else "schedule_ran_out"


def _notes(f: dict, cfg: dict) -> list[dict]:
    """Smaller things worth knowing whatever the verdict (en / zh)."""
    out = []

    def note(key, **fmt):
        out.append({"key": key, "en": t(f"note_{key}", "en", **fmt), "zh": t(f"note_{key}", "zh", **fmt)})
    tp = f.get("truncated_pct") or 0
    if 100 * CUT_SOME <= tp <= 100 * CUT_MOST:
        note("some_cut", pct=tp, cutoff=f.get("cutoff_len"), max_len=f.get("max_len"))
    dp = f.get("duplicates_pct") or 0
    if 100 * CUT_SOME <= dp <= 100 * CUT_MOST:
        note("some_dups", n=f.get("duplicates"), pct=dp)
    n = f.get("samples_train")
    if n is not None and n < FEW_SAMPLES:
        note("few_samples", n=n)
    if f.get("eval_points", 0) == 0 and f.get("train_points", 0):
        note("no_eval")
    if f.get("state") in ("running", "training", "starting", "preprocessing", "evaluating", "saving"):
        note("running", step=f.get("last_step"), total=f.get("total_steps") or "?")
    if f.get("state") == "aborted":
        note("aborted", step=f.get("last_step"))
    if f.get("state") == "failed" and f.get("error") and not f.get("data_error"):
        note("failed", error=f["error"])
    return out


def _pow2_at_least(n: int) -> int:
    p = 16
    while p < n:
        p *= 2
    return p


class _Advice:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.items: list[dict] = []

    def add(self, key: str, change: dict, **fmt) -> None:
        """A change is kept only for arguments it really changes; an empty change is a note to act on by hand."""
        change = {k: v for k, v in change.items() if self.cfg.get(k) != v}
        for k, v in change.items():
            if k not in BY_NAME:  # a bug here would hand the UI an argument it cannot set
                raise AssertionError(f"advice names unknown argument {k}")
        if any(a["key"] == key for a in self.items):
            return
        self.items.append({"key": key, "why": t(f"adv_{key}", "en", **fmt), "why_zh": t(f"adv_{key}", "zh", **fmt),
                           "change": change, "fmt": fmt})


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


def _advise(verdict: str, reason: str, f: dict, cfg: dict, tpl: dict | None, has_eval: bool) -> list[dict]:
    a = _Advice(cfg)
    method = cfg.get("finetuning_type", "lora")
    lr = cfg["learning_rate"]
    if verdict == "data_problem":
        if tpl:
            a.add("template", {"template": tpl["expected"]}, **tpl)
        if (f.get("truncated_pct") or 0) >= 100 * CUT_SOME or f.get("cut_error"):
            target = f.get("max_len") or f.get("p95") or cfg.get("cutoff_len", 1024) * 4
            a.add("cutoff", {"cutoff_len": _pow2_at_least(int(target))}, cutoff=cfg.get("cutoff_len"),
                  pct=f.get("truncated_pct", 100), max_len=f.get("max_len", "?"), p95=f.get("p95", "?"))
        if (f.get("dropped_pct") or 0) >= 100 * CUT_SOME:
            reasons = "; ".join(f"{c} x {r}" for r, c in list((f.get("dropped_reasons") or {}).items())[:3])
            a.add("dropped", {}, pct=f.get("dropped_pct"), reasons=reasons or "?")
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
        target = 1e-4 if method == "lora" else 1e-5
        new_lr = max(lr * 10, target) if lr < target else lr * 3
        a.add("lr_up", {"learning_rate": float(f"{new_lr:.3g}")}, lr=lr)
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
            a.add("shorter", _steps_or_epochs(cfg, f, factor=0.5), step="?")
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
        else:
            a.add("more_data", {}, n=f.get("samples_train", "?"))
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
        if reason == "little_progress":
            a.add("lr_up", {"learning_rate": float(f"{lr * 3:.3g}")}, lr=lr)
        a.add("longer", _steps_or_epochs(cfg, f, factor=2.0))
        if reason == "schedule_ran_out" or (reason == "still_falling" and f.get("lr_end") is not None
                                            and f.get("lr_peak") and f["lr_end"] < 0.05 * f["lr_peak"]):
            a.add("lr_up_undertrained", {"learning_rate": float(f"{lr * 2:.3g}")}, lr=lr)
        if has_eval and not cfg.get("load_best_model_at_end"):
            a.add("keep_best", {"load_best_model_at_end": True, "early_stopping_patience": 3})
    elif verdict == "healthy":
        if has_eval and not cfg.get("load_best_model_at_end"):
            a.add("keep_best", {"load_best_model_at_end": True})
        if not has_eval:
            a.add("add_eval", {"val_size": 0.1})
    return [{"why": x["why"], "why_zh": x["why_zh"], "change": x["change"], "key": x["key"]} for x in a.items]


def diagnose(run: Run | str | Path) -> dict:
    """The verdict on a run folder (finished, failed or still running)."""
    if not isinstance(run, Run):
        run = read_run(run)
    cfg = F.run_config(run)
    f = F.facts(run)
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
    has_eval = f.get("eval_points", 0) > 0
    findings: list[str] = []
    checks = [("data_problem", _is_data_problem), ("diverging", _is_diverging), ("not_learning", _is_not_learning),
              ("overfitting", _is_overfitting), ("capacity_limit", _is_capacity_limit),
              ("undertrained", _is_undertrained)]
    verdict = None
    reasons: dict[str, str] = {}
    for name, check in checks:
        why = check(f, cfg)
        if why:
            reasons[name] = why
            if verdict is None:
                verdict = name
    if verdict is None:
        if f.get("train_points"):
            verdict, reasons["healthy"] = "healthy", "learned"
        elif run.running:
            verdict, reasons["undertrained"] = "undertrained", "too_early"
        else:
            verdict, reasons["not_learning"] = "not_learning", "no_points"
    findings = [k for k in reasons if k != verdict]
    notes = _notes(f, cfg)
    best = F.best_checkpoint(run)
    if best is None and f.get("eval_best_step") and not run.running:
        notes.append({"key": "no_best_ckpt", "en": t("note_no_best_ckpt", "en", step=f["eval_best_step"]),
                      "zh": t("note_no_best_ckpt", "zh", step=f["eval_best_step"])})
    confidence = "low" if f.get("train_points", 0) < 5 else "high" if f.get("train_points", 0) >= 10 else "medium"
    report = {
        "verdict": verdict,
        "reason": reasons[verdict],
        "summary": t(f"sum_{reasons[verdict]}", "en", **_fmt(f, cfg)),
        "summary_zh": t(f"sum_{reasons[verdict]}", "zh", **_fmt(f, cfg)),
        "evidence": {k: _json_safe(v) for k, v in f.items()
                     if v is not None and k not in ("data_error", "cut_error", "no_trained_tokens", "eval_rose")},
        "advice": _advise(verdict, reasons[verdict], f, cfg, tpl, has_eval),
        "best_checkpoint": best,
        "findings": findings,
        "notes": notes,
        "state": run.state,
        "running": run.running,
        "confidence": confidence,
        "format": run.format,
        "path": run.path,
    }
    return report


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _fmt(f: dict, cfg: dict) -> dict:
    out = {k: v for k, v in f.items() if v is not None}
    out["learning_rate"] = cfg.get("learning_rate")
    out["nonfinite_first"] = (f.get("nonfinite_steps") or ["?"])[0]
    out["spike_steps"] = ", ".join(map(str, f.get("spike_steps") or [])) or "?"
    out["eval_last_or_na"] = f.get("eval_last", "n/a")
    out["error_tail"] = f": {f['error']}" if f.get("error") else ""
    out["recent_lr_pct"] = F.rounded(100 * f["recent_lr_ratio"], 2) if f.get("recent_lr_ratio") is not None else "?"
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

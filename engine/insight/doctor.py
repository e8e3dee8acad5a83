"""`tuneboard doctor OUTPUT_DIR`: one verdict on a run, the numbers behind it, and config changes to try.

    diagnose(path_or_run) -> {"verdict", "summary", "evidence", "advice": [{"why", "change"}], "best_checkpoint",
                              "findings", "state", "running", "format", "path", "confidence"}
    render(report, lang) -> the same in plain words (en / zh)

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

import json
import math
import statistics
import sys
from pathlib import Path

from ..args import BY_NAME, defaults
from ..utils import UserError
from ..train import rundir
from .runlog import Point, Run, read_run

VERDICTS = ("healthy", "undertrained", "overfitting", "diverging", "not_learning", "data_problem", "capacity_limit")

# Thresholds, in one place so the reasoning can be read against them. The curve rules are relative to the run's
# own curve (its total drop, its noise, its learning-rate schedule), not to our logging or eval defaults, so runs
# of other tools, logged every N steps and evaluated every M, read the same.
RECENT = 0.4             # "the end": the last 40 % of the steps (or of the learning-rate budget, see below)
FLAT_REL = 0.02          # a loss within 2 % of its start has not moved
FALLING_SHARE = 0.2      # still falling: the last 40 % of the steps still gave >= 20 % of the run's total drop,
FALLING_REL = 0.01       # ... >= 1 % of the loss level (less is not worth training longer for),
FALLING_T = 3.0          # ... with a slope t-value >= 3 (not noise)
EVAL_FALLING_SHARE = 0.1 # ... and eval loss gave >= 10 % of its own drop over the same stretch
EVAL_FALLING_REL = 0.005 # ... and >= 0.5 % of its level
RAN_OUT_SHARE = 0.25     # the last 40 % of the learning-rate budget (cumulative lr) still gave >= 25 % of the drop
LR_RAN_OUT = 0.3         # mean learning rate over the last 40 % below 30 % of the peak: the schedule ran out
PLATEAU = 0.1            # the plateau starts where the smoothed loss is within 10 % of the total drop of its end
RISE_REL = 0.02          # eval loss this far above its best counts as rising
TRAIN_FELL_REL = 0.05    # ... while train loss fell at least this much since the best eval
BLOWUP = 2.0             # loss (median of 3) above twice its start: blew up
ENDS_ABOVE = 1.10        # loss ends 10 % above its start: diverged
SPIKE = 2.0              # one logged loss above twice the median of the five before it
NOISE_SIGMAS = 6.0       # ... and that many noise sigmas above it (a noisy but steady curve has no spikes)
GN_EXPLOSION = 10.0      # largest gradient norm over ten times the median (and over 10) ...
GN_EARLY = 0.1           # ... outside the first 10 % of steps, where large norms are normal
MEMORISED = 0.05         # train loss below this on little data: memorised
LITTLE_DATA = 1000       # samples
HIGH_LOSS = 1.0          # nats/token: a plateau above this (and above half the start) is "high"
CAP_GAP = 0.05           # capacity: after >= 1.5 epochs train loss is not even 5 % below eval loss (cannot memorise)
CAP_EPOCHS = 1.5
CAP_LEARNED = 0.25       # ... or, without that test, it learned less than 25 % of its start
CUT_MOST = 0.5           # share of samples truncated or dropped that makes it the verdict
CUT_SOME = 0.1           # share that is worth a finding
FEW_SAMPLES = 50


def _r(x, nd: int = 4):
    if x is None:
        return None
    if isinstance(x, float) and math.isfinite(x):
        return float(f"{x:.{nd}g}")
    return x


def _finite(points: list[Point]) -> list[Point]:
    return [p for p in points if p.loss is not None and math.isfinite(p.loss)]


def _median(xs):
    return statistics.median(xs) if xs else None


def _slope(points: list[Point]) -> tuple[float, float]:
    """Least-squares slope of loss over step and its standard error."""
    n = len(points)
    xs = [p.step for p in points]
    ys = [p.loss for p in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if n < 3 or sxx == 0:
        return 0.0, math.inf
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    resid = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(resid / (n - 2) / sxx) if n > 2 else math.inf
    return b, se


def _config(run: Run) -> dict:
    """The run's arguments on top of the schema defaults (unknown keys of other tools are ignored)."""
    cfg = defaults()
    for k, v in (run.config or {}).items():
        if k in BY_NAME and v is not None:
            cfg[k] = v
    if not run.config:  # a run made elsewhere without a readable config: what its log tells
        lrs = [p.lr for p in run.train if p.lr]
        if lrs:
            cfg["learning_rate"] = max(lrs)
        epochs = [p.epoch for p in run.train + run.eval if p.epoch is not None]
        if epochs:  # "train twice as long" should double this run's length, not our default's
            cfg["num_train_epochs"] = max(0.5, round(max(epochs) * 2) / 2)
    return cfg


# ---------------------------------------------------------------- facts
def _noise(losses: list[float]) -> float:
    """A loss curve's log-to-log noise (sigma) from its second differences, which a steady trend does not move;
    median-based, so a sharp early bend or a few spikes do not count as noise."""
    d = [abs(c - 2 * b + a) for a, b, c in zip(losses, losses[1:], losses[2:])]
    return 1.4826 * _median(d) / math.sqrt(6) if len(d) >= 2 else 0.0


def _cum_lr(tr: list[Point]) -> list[float] | None:
    """The learning-rate budget spent by each logged step (cumulative lr): the x axis on which a loss that only
    stopped because the schedule decayed still looks like it is falling. None without a varying logged lr."""
    if not tr or any(p.lr is None or not math.isfinite(p.lr) for p in tr):
        return None
    if max(p.lr for p in tr) <= 0 or max(p.lr for p in tr) - min(p.lr for p in tr) <= 1e-3 * max(p.lr for p in tr):
        return None  # constant: the same as steps
    out = [tr[0].lr * max(tr[0].step, 1)]
    for a, b in zip(tr, tr[1:]):
        out.append(out[-1] + (a.lr + b.lr) / 2 * (b.step - a.step))
    return out


def _at(points: list[Point], step: float) -> float:
    """Eval loss at `step`, linearly between the evaluations around it (the first one before any)."""
    if step <= points[0].step:
        return points[0].loss
    for a, b in zip(points, points[1:]):
        if a.step <= step <= b.step:
            return a.loss + (b.loss - a.loss) * (step - a.step) / ((b.step - a.step) or 1)
    return points[-1].loss


def _recent(f: dict, tr: list[Point], ev: list[Point], xs: list[float], prefix: str) -> None:
    """How much the loss still falls over the last RECENT of the x axis (steps or lr budget): the drop as % of the
    loss level and as a share of the run's total drop, its t-value, and the same for eval loss."""
    x0 = xs[0] + (1 - RECENT) * (xs[-1] - xs[0])
    idx = [i for i, x in enumerate(xs) if x >= x0]
    if len(idx) < 3:
        idx = list(range(max(0, len(tr) - 3), len(tr)))
    window = [Point(step=xs[i], loss=tr[i].loss) for i in idx]  # slope over x, not over steps
    slope, se = _slope(window)
    drop = -slope * (window[-1].step - window[0].step)
    level = _median([p.loss for p in window])
    total = (f["loss_start"] - f["loss_end"]) if f.get("loss_start") is not None else 0
    f[f"{prefix}from_step"] = tr[idx[0]].step
    f[f"{prefix}drop_pct"] = _r(100 * drop / level) if level else None
    f[f"{prefix}share_pct"] = _r(100 * drop / total) if total > 0 else None
    f[f"{prefix}slope_t"] = _r(-slope / se) if se and math.isfinite(se) and se > 0 else (
        math.inf if slope < 0 else 0.0)
    if len(ev) >= 2 and ev[-1].step > tr[idx[0]].step:
        ref = _at(ev, tr[idx[0]].step)
        e_total = ev[0].loss - min(p.loss for p in ev)
        f[f"eval_{prefix}drop_pct"] = _r(100 * (ref - ev[-1].loss) / ref) if ref else None
        f[f"eval_{prefix}share_pct"] = _r(100 * (ref - ev[-1].loss) / e_total) if e_total > 0 else 0.0


def _facts(run: Run) -> dict:
    """The numbers every rule reads (they become the report's evidence)."""
    tr = _finite(run.train)
    ev = _finite(run.eval)
    f: dict = {"train_points": len(run.train), "eval_points": len(run.eval), "last_step": run.last_step,
               "total_steps": run.total_steps}
    bad = [p.step for p in run.train if p.loss is None or not math.isfinite(p.loss)]
    bad += [p.step for p in run.train if p.grad_norm is not None and not math.isfinite(p.grad_norm)]
    bad += [p.step for p in run.eval if not math.isfinite(p.loss)]
    f["nonfinite_steps"] = sorted(set(bad))[:10]
    epochs = [p.epoch for p in run.train + run.eval if p.epoch is not None]
    f["epochs"] = _r(max(epochs)) if epochs else None
    lrs = [p.lr for p in run.train if p.lr is not None]
    f["lr_peak"] = _r(max(lrs)) if lrs else None
    f["lr_end"] = _r(lrs[-1]) if lrs else None
    if tr:
        losses = [p.loss for p in tr]
        n = len(losses)
        f["loss_first"] = _r(losses[0])
        head = _median(losses[:3])
        w = max(1, min(5, n // 4))
        tail = _median(losses[-w:])
        f["loss_start"] = _r(head)
        f["loss_end"] = _r(tail)
        f["loss_min"] = _r(min(losses))
        f["loss_drop_pct"] = _r(100 * (head - tail) / head) if head else None
        roll = [_median(losses[max(0, i - 1):i + 2]) for i in range(n)]
        f["loss_max_smoothed"] = _r(max(roll))
        sigma = _noise(losses)
        f["noise_sigma"] = _r(sigma)
        # how far the loss got below its start, on medians of a tenth of the run (one low log is not progress)
        k = max(3, n // 10)
        if n >= 2 * k and _median(losses[:k]):
            head_k = _median(losses[:k])
            low = min(_median(losses[i:i + k]) for i in range(n - k + 1))
            f["loss_moved_pct"] = _r(100 * (head_k - low) / head_k)
            f["loss_rose_pct"] = _r(100 * (_median(losses[-k:]) - head_k) / head_k)
            f["loss_moved_noise_pct"] = _r(100 * 5 * sigma / math.sqrt(k) / head_k)  # what noise alone gives
            slope, se = _slope(tr)
            f["loss_trend_t"] = _r(-slope / se) if se and math.isfinite(se) and se > 0 else 0.0
        spikes = [tr[i].step for i in range(5, n) if losses[i] > SPIKE * _median(losses[i - 5:i])
                  and losses[i] > _median(losses[i - 5:i]) + NOISE_SIGMAS * sigma]
        f["spike_steps"] = spikes[:10]
        f["noise"] = _r(statistics.pstdev(losses[-max(3, w):])) if n >= 3 else None
        if n >= 5 and head > tail:
            # the plateau: from where the smoothed loss stays within PLATEAU of the total drop above its end
            k = max(1, min(5, n // 10))
            smooth = [_median(losses[max(0, i - k):i + k + 1]) for i in range(n)]
            limit = tail + max(PLATEAU * (head - tail), 2 * sigma / math.sqrt(2 * k + 1))  # ... or its noise
            i = n - 1
            while i > 0 and smooth[i - 1] <= limit:
                i -= 1
            f["plateau_step"] = tr[i].step
            span = tr[-1].step - tr[0].step
            f["after_plateau_pct"] = _r(100 * (tr[-1].step - tr[i].step) / span) if span else None
        _recent(f, tr, ev, [float(p.step) for p in tr], "recent_")
        cum = _cum_lr(tr)
        if cum is not None:
            _recent(f, tr, ev, cum, "recent_lr_")
        x0 = tr[0].step + (1 - RECENT) * (tr[-1].step - tr[0].step)
        wl = [p.lr for p in tr if p.step >= x0 and p.lr is not None]
        peak = max((p.lr for p in run.train if p.lr is not None), default=None)
        if wl and peak:
            f["recent_lr_ratio"] = _r(sum(wl) / len(wl) / peak)
    gns = [p for p in run.train if p.grad_norm is not None and math.isfinite(p.grad_norm)]
    if gns:
        f["grad_norm_median"] = _r(_median([p.grad_norm for p in gns]))
        top = max(gns, key=lambda p: p.grad_norm)
        f["grad_norm_max"] = _r(top.grad_norm)
        f["grad_norm_max_step"] = top.step
        first, last = run.train[0].step, run.train[-1].step
        late = [p for p in gns if p.step > first + GN_EARLY * (last - first)]
        if late:
            f["grad_norm_max_late"] = _r(max(p.grad_norm for p in late))
    if ev:
        e = [p.loss for p in ev]
        best_i = min(range(len(e)), key=lambda i: e[i])
        sigma_e = _noise(e)
        f["eval_noise_sigma"] = _r(sigma_e)
        f["eval_first"] = _r(e[0])
        f["eval_best"] = _r(e[best_i])
        f["eval_best_step"] = ev[best_i].step
        f["eval_best_epoch"] = _r(ev[best_i].epoch) if ev[best_i].epoch is not None else None
        f["eval_last"] = _r(e[-1])
        f["eval_rise_pct"] = _r(100 * (e[-1] - e[best_i]) / e[best_i]) if e[best_i] else None
        f["evals_after_best"] = len(e) - 1 - best_i
        f["evals_above_best"] = sum(1 for x in e[best_i + 1:] if x > e[best_i] * (1 + RISE_REL / 2))
        # the last eval above the best by more than 1 % and more than the eval curve's own noise
        f["eval_rose"] = e[-1] > e[best_i] + max(e[best_i] * RISE_REL / 2, 3 * sigma_e)
        f["eval_drop_pct"] = _r(100 * (e[0] - e[best_i]) / e[0]) if e[0] else None
        f["eval_drop_noise_pct"] = _r(100 * 5 * sigma_e / e[0]) if e[0] else None  # first vs the lowest of many
        if tr:
            near = [p.loss for p in tr if abs(p.step - ev[best_i].step) <= max(1, _log_every(tr))]
            at_best = _median(near) if near else None
            f["train_loss_at_best_eval"] = _r(at_best)
            if at_best:
                f["train_drop_since_best_pct"] = _r(100 * (at_best - _median([p.loss for p in tr[-3:]])) / at_best)
                # what two medians of three logs differ by on noise alone
                f["train_drop_noise_pct"] = _r(100 * 3 * (f.get("noise_sigma") or 0) / at_best)
            f["eval_gap_pct"] = _r(100 * (e[-1] - f["loss_end"]) / f["loss_end"]) if f["loss_end"] else None
        if len(e) >= 3:
            last3 = e[-3:]
            f["eval_recent_range_pct"] = _r(100 * (max(last3) - min(last3)) / min(last3)) if min(last3) else None
    s = run.stats or {}
    if s:
        kept, total = s.get("kept") or 0, s.get("total") or 0
        f["samples_total"] = total
        f["samples_train"] = s.get("train_samples", kept)
        f["samples_eval"] = s.get("eval_samples")
        f["truncated"] = s.get("truncated")
        f["truncated_pct"] = _r(100 * s.get("truncated", 0) / kept) if kept else None
        f["dropped"] = s.get("dropped")
        f["dropped_pct"] = _r(100 * s.get("dropped", 0) / total) if total else None
        f["dropped_reasons"] = s.get("dropped_reasons") or {}
        for k in ("cutoff_len", "p50", "p95", "max_len", "tokens"):
            if k in s:
                f[k if k != "tokens" else "trained_tokens"] = s[k]
    st = run.status or {}
    if st.get("state"):
        f["state"] = st["state"]
    if st.get("error"):
        f["error"] = st["error"]
    return f


def _log_every(tr: list[Point]) -> int:
    if len(tr) < 2:
        return 1
    gaps = [b.step - a.step for a, b in zip(tr, tr[1:]) if b.step > a.step]
    return int(_median(gaps)) if gaps else 1


def _template_check(cfg: dict) -> dict | None:
    """{"template", "expected"} when the run's template formats turns differently from the model's own."""
    name = cfg.get("template")
    if not name or name == "auto":
        return None
    try:
        from ..data.templates import TEMPLATES
        from ..models.registry import default_template
        expected = default_template(cfg.get("model_name_or_path"))
    except Exception:  # the model folder is gone or unreadable: nothing to compare with
        return None
    if not expected or expected == "auto" or expected == name:
        return None
    a, b = TEMPLATES.get(name), TEMPLATES.get(expected)
    if a is None or b is None:
        return None
    if (a.format_user, a.format_assistant) == (b.format_user, b.format_assistant):
        return None  # same turn format (chatml vs qwen differ only in the default system prompt)
    return {"template": name, "expected": expected}


# ---------------------------------------------------------------- advice
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
        self.items.append({"key": key, "why": _t(f"adv_{key}", "en", **fmt), "why_zh": _t(f"adv_{key}", "zh", **fmt),
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
    return {"num_train_epochs": _r(max(0.5, round(epochs * factor * 2) / 2))}


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


# ---------------------------------------------------------------- the verdict
def diagnose(run: Run | str | Path) -> dict:
    """The verdict on a run folder (finished, failed or still running)."""
    if not isinstance(run, Run):
        run = read_run(run)
    cfg = _config(run)
    f = _facts(run)
    tpl = _template_check(cfg)
    if tpl:
        f["template"], f["expected_template"] = tpl["template"], tpl["expected"]
    dup = _duplicates(cfg) if run.config else None
    if dup and dup["samples"]:
        f["duplicates"] = dup["duplicates"]
        f["duplicates_pct"] = _r(100 * dup["duplicates"] / dup["samples"])
    err = str(f.get("error") or "")
    if run.state == "failed" and err.split(":")[0].strip() in ("cutoff_len", "dataset", "val_size"):
        f["data_error"] = True
        f["cut_error"] = err.startswith("cutoff_len")
        _stats_from_error(f, err)
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
    best = best_checkpoint(run)
    if best is None and f.get("eval_best_step") and not run.running:
        notes.append({"key": "no_best_ckpt", "en": _t("note_no_best_ckpt", "en", step=f["eval_best_step"]),
                      "zh": _t("note_no_best_ckpt", "zh", step=f["eval_best_step"])})
    confidence = "low" if f.get("train_points", 0) < 5 else "high" if f.get("train_points", 0) >= 10 else "medium"
    report = {
        "verdict": verdict,
        "reason": reasons[verdict],
        "summary": _t(f"sum_{reasons[verdict]}", "en", **_fmt(f, cfg)),
        "summary_zh": _t(f"sum_{reasons[verdict]}", "zh", **_fmt(f, cfg)),
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


_DUP_CACHE: dict = {}


def _duplicates(cfg: dict) -> dict | None:
    """{"duplicates", "samples"}: exact repeats among the run's local training records (after conversion, before
    dataset_info's num_samples repetition, which is deliberate). None when the data is not readable here."""
    names = cfg.get("dataset") or []
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        return None
    try:
        from collections import Counter

        from ..data.converters import convert
        from ..data.readers import data_files, read_records
        from ..data.registry import load_dataset_info
        info = load_dataset_info(cfg.get("dataset_dir") or "data")
        attrs = [info[n] for n in names]
        if any(a.load_from != "file" for a in attrs):
            return None  # hub datasets: the doctor does not download
        key = (cfg.get("stage"), cfg.get("max_samples"),
               tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for a in attrs for f in data_files(a)))
        if key not in _DUP_CACHE:
            rows = []
            for a in attrs:
                raw = read_records(a)
                if cfg.get("max_samples"):
                    raw = raw[:cfg["max_samples"]]
                rows += convert(a, raw, cfg.get("stage") or "sft")[0]
            seen = Counter(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)
            _DUP_CACHE[key] = {"duplicates": sum(c - 1 for c in seen.values()), "samples": len(rows)}
        return _DUP_CACHE[key]
    except Exception:  # moved or unreadable data: judge the run without it
        return None


def _stats_from_error(f: dict, err: str) -> None:
    """A run that failed on cutoff_len wrote no dataset_stats.json; its error message names the lengths."""
    import re
    m = re.search(r"p50 (\d+) / p95 (\d+) / max (\d+)", err)
    if m:
        f.setdefault("p50", int(m.group(1)))
        f.setdefault("p95", int(m.group(2)))
        f.setdefault("max_len", int(m.group(3)))
    m = re.search(r"cutoff_len=(\d+): (\d+) samples", err)
    if m:
        f.setdefault("cutoff_len", int(m.group(1)))
        f.setdefault("truncated", int(m.group(2)))
        f.setdefault("truncated_pct", 100.0)


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


def _plateau_high(f: dict) -> bool:
    """Flat over the last 40 % of the run and still high (above 1 nat/token and above half the start)."""
    if f.get("train_points", 0) < 10 or f.get("loss_start") is None:
        return False
    start, end = f["loss_start"], f["loss_end"]
    return end > HIGH_LOSS and end > 0.5 * start and not _still_falling(f)


def _is_capacity_limit(f: dict, cfg: dict) -> str | None:
    if cfg.get("stage") == "dpo" or not _plateau_high(f):
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
        out.append({"key": key, "en": _t(f"note_{key}", "en", **fmt), "zh": _t(f"note_{key}", "zh", **fmt)})
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


def best_checkpoint(run: Run) -> str | None:
    """The checkpoint saved at the step of the lowest eval loss (the final model when that was the last step);
    None without evaluations or when nothing was saved at that step."""
    ev = _finite(run.eval)
    if not ev:
        return None
    best = min(ev, key=lambda p: p.loss)
    hint = run.best_checkpoint_hint
    if hint and Path(hint).is_dir() and rundir.checkpoint_step(hint) == best.step:
        return hint
    last_step = max(p.step for p in run.train + run.eval)
    if best.step == last_step and _has_weights(Path(run.path)) and not run.running:
        return run.path
    for step, path in run.checkpoints:
        if step == best.step:
            return path
    return None


def _has_weights(p: Path) -> bool:
    return any((p / f).exists() for f in ("adapter_model.safetensors", "model.safetensors",
                                          "model.safetensors.index.json", "adapter_model.bin", "pytorch_model.bin"))


# ---------------------------------------------------------------- words
T: dict[str, dict[str, str]] = {
    "verdict_healthy": {"en": "Healthy", "zh": "健康"},
    "verdict_undertrained": {"en": "Under-trained", "zh": "训练不足"},
    "verdict_overfitting": {"en": "Overfitting", "zh": "过拟合"},
    "verdict_diverging": {"en": "Diverging / unstable", "zh": "发散 / 不稳定"},
    "verdict_not_learning": {"en": "Not learning", "zh": "没有在学习"},
    "verdict_data_problem": {"en": "Data problem", "zh": "数据问题"},
    "verdict_capacity_limit": {"en": "Capacity limit", "zh": "容量不足"},
    # one-line summaries, by the reason that decided the verdict
    "sum_cut_all": {"en": "The run stopped before training: cutoff_len={cutoff_len} cuts every sample "
                          "(lengths p95 {p95}, max {max_len} tokens).",
                    "zh": "训练开始前就停止了：cutoff_len={cutoff_len} 截断了所有样本（长度 p95 {p95}，最大 {max_len}）。"},
    "sum_data_error": {"en": "The run failed on its data: {error}", "zh": "运行因数据出错而失败：{error}"},
    "sum_cut_most": {"en": "{truncated_pct}% of the samples are cut by cutoff_len={cutoff_len} (p95 length {p95}, "
                           "max {max_len}): the model trains on fragments.",
                     "zh": "{truncated_pct}% 的样本被 cutoff_len={cutoff_len} 截断（p95 长度 {p95}，最大 {max_len}），"
                           "模型学到的是残缺的样本。"},
    "sum_dropped_most": {"en": "{dropped_pct}% of the samples were dropped while reading the dataset.",
                         "zh": "读取数据集时丢弃了 {dropped_pct}% 的样本。"},
    "sum_dup_most": {"en": "{duplicates_pct}% of the training records are exact repeats ({duplicates}): the model "
                           "sees a few samples many times.",
                     "zh": "{duplicates_pct}% 的训练记录是完全重复的（{duplicates} 条）：模型反复看到少数几条样本。"},
    "sum_no_trained_tokens": {"en": "No token is trained: every label is masked.",
                              "zh": "没有任何 token 参与训练：所有标签都被屏蔽了。"},
    "sum_template": {"en": "The template `{template}` is not the model's own (`{expected_template}`): it learns a "
                           "format it was not built for and may never stop answering.",
                     "zh": "模板 `{template}` 不是该模型自己的模板（`{expected_template}`）：模型会学习一种陌生格式，"
                           "回答可能无法停止。"},
    "sum_nonfinite": {"en": "The loss or gradient became NaN/inf (first at step {nonfinite_first}).",
                      "zh": "损失或梯度变成了 NaN/inf（首次出现在第 {nonfinite_first} 步）。"},
    "sum_ends_above": {"en": "The loss ended above where it started ({loss_start} -> {loss_end}): training diverged.",
                       "zh": "损失最终高于起点（{loss_start} -> {loss_end}）：训练发散了。"},
    "sum_blowup": {"en": "The loss blew up to {loss_max_smoothed} from {loss_first} at the start: unstable.",
                   "zh": "损失从起点 {loss_first} 暴涨到 {loss_max_smoothed}：训练不稳定。"},
    "sum_spikes": {"en": "The loss spiked repeatedly (steps {spike_steps}).",
                   "zh": "损失多次突然飙升（第 {spike_steps} 步）。"},
    "sum_grad_explosion": {"en": "The gradient norm exploded to {grad_norm_max_late} (median {grad_norm_median}).",
                           "zh": "梯度范数暴涨到 {grad_norm_max_late}（中位数 {grad_norm_median}）。"},
    "sum_flat": {"en": "The loss did not move: {loss_start} at the start, {loss_end} at the end "
                       "({loss_drop_pct}%), with learning rate {learning_rate}.",
                 "zh": "损失几乎没有变化：开始 {loss_start}，结束 {loss_end}（{loss_drop_pct}%），学习率 {learning_rate}。"},
    "sum_eval_rising": {"en": "Eval loss was best at step {eval_best_step} ({eval_best}) and then rose to {eval_last} "
                              "(+{eval_rise_pct}%) while train loss kept falling ({train_loss_at_best_eval} -> "
                              "{loss_end}): the model memorises the training set.",
                        "zh": "评估损失在第 {eval_best_step} 步最好（{eval_best}），之后升到 {eval_last}"
                              "（+{eval_rise_pct}%），而训练损失仍在下降（{train_loss_at_best_eval} -> {loss_end}）："
                              "模型在死记训练集。"},
    "sum_memorised": {"en": "Train loss is near zero ({loss_end}) on only {samples_train} samples: the model has "
                            "memorised them.",
                      "zh": "仅 {samples_train} 条样本上训练损失接近 0（{loss_end}）：模型已经把它们背下来了。"},
    "sum_plateau_high": {"en": "Train and eval loss both flattened at a high level ({loss_end}, eval {eval_last}) "
                               "after falling from {loss_start}: the trainable part cannot fit more.",
                         "zh": "训练和评估损失从 {loss_start} 下降后都停在较高水平（{loss_end}，评估 {eval_last}）："
                               "可训练部分已无法拟合更多。"},
    "sum_still_falling": {"en": "The loss is still falling at the end ({recent_drop_pct}% since step "
                                "{recent_from_step}, {recent_share_pct}% of its whole drop): more training will help.",
                          "zh": "训练结束时损失仍在下降（自第 {recent_from_step} 步以来下降 {recent_drop_pct}%，"
                                "占总下降的 {recent_share_pct}%）：继续训练会更好。"},
    "sum_little_progress": {"en": "The loss barely moved ({loss_start} -> {loss_end}, -{loss_drop_pct}%) and is still "
                                  "high: far too little training for this learning rate.",
                            "zh": "损失几乎没有下降（{loss_start} -> {loss_end}，-{loss_drop_pct}%）且仍然很高："
                                  "以当前学习率训练量远远不够。"},
    "sum_schedule_ran_out": {"en": "The loss flattened at {loss_end} only because the learning rate decayed to "
                                   "~0 (last 40%: {recent_lr_pct}% of the peak) while each unit of learning rate still "
                                   "lowered it ({recent_lr_share_pct}% of the drop came from the last 40% of the "
                                   "learning-rate budget): train longer.",
                             "zh": "损失停在 {loss_end} 只是因为学习率已衰减到接近 0（最后 40%：峰值的 {recent_lr_pct}%），"
                                   "而每一份学习率仍在降低损失（最后 40% 的学习率预算带来了 {recent_lr_share_pct}% 的下降）："
                                   "需要训练更久。"},
    "sum_too_early": {"en": "Too early to judge: {train_points} logged step(s) so far.",
                      "zh": "现在判断还太早：目前只记录了 {train_points} 步。"},
    "sum_learned": {"en": "Learned ({loss_start} -> {loss_end}, -{loss_drop_pct}%) and flattened out (from step "
                          "{plateau_step}, {after_plateau_pct}% of the run after it); eval loss {eval_last_or_na}, "
                          "not rising.",
                    "zh": "已学到东西（{loss_start} -> {loss_end}，-{loss_drop_pct}%）并趋于平稳（自第 {plateau_step} 步起，"
                          "其后占训练的 {after_plateau_pct}%）；评估损失 {eval_last_or_na}，没有上升。"},
    "sum_no_points": {"en": "The run logged no training step{error_tail}.",
                      "zh": "该运行没有记录任何训练步{error_tail}。"},
    # advice
    "adv_template": {"en": "Use the model's own chat template `{expected}` instead of `{template}`.",
                     "zh": "改用模型自己的对话模板 `{expected}`，而不是 `{template}`。"},
    "adv_cutoff": {"en": "Raise cutoff_len from {cutoff} so whole samples fit ({pct}% cut; p95 {p95}, max {max_len} "
                         "tokens).",
                   "zh": "把 cutoff_len 从 {cutoff} 调大，让样本完整保留（{pct}% 被截断；p95 {p95}，最大 {max_len}）。"},
    "adv_dropped": {"en": "{pct}% of the records were skipped ({reasons}): check the dataset's columns mapping in "
                          "dataset_info.json.",
                    "zh": "{pct}% 的记录被跳过（{reasons}）：请检查 dataset_info.json 中的列映射。"},
    "adv_dedup": {"en": "Remove the {n} duplicate records ({pct}%) from the dataset file.",
                  "zh": "从数据文件中删除 {n} 条重复记录（{pct}%）。"},
    "adv_masking": {"en": "Train on the answers: turn train_on_prompt and mask_history off and check the preview.",
                    "zh": "在回答上训练：关闭 train_on_prompt 和 mask_history，并检查数据预览。"},
    "adv_data_error": {"en": "Fix the dataset problem named in the error: {error}",
                       "zh": "按错误信息修复数据集问题：{error}"},
    "adv_lr_down": {"en": "Lower the learning rate ten-fold (now {lr}).", "zh": "把学习率降低到十分之一（当前 {lr}）。"},
    "adv_warmup": {"en": "Warm the learning rate up over the first 10% of steps.",
                   "zh": "在前 10% 的步数内预热学习率。"},
    "adv_clip": {"en": "Clip gradients at norm 1.0.", "zh": "把梯度裁剪阈值设为 1.0。"},
    "adv_bf16": {"en": "Use bf16 instead of fp16 (no overflow).", "zh": "用 bf16 代替 fp16（不会溢出）。"},
    "adv_lr_up": {"en": "Raise the learning rate (now {lr}); typical: 1e-4 to 3e-4 for LoRA, 1e-5 to 5e-5 for full.",
                  "zh": "提高学习率（当前 {lr}）；常用值：LoRA 1e-4 ~ 3e-4，全参 1e-5 ~ 5e-5。"},
    "adv_check_masking": {"en": "Open the dataset preview: the highlighted (trained) tokens must be the answers, and "
                                "the template must be the model's.",
                          "zh": "打开数据预览：高亮（参与训练）的部分应是回答，模板应是模型自己的模板。"},
    "adv_keep_best": {"en": "Keep the checkpoint with the lowest eval loss and stop when eval stops improving.",
                      "zh": "保留评估损失最低的检查点，并在评估不再改善时提前停止。"},
    "adv_shorter": {"en": "Train shorter: eval loss was best at step {step}.",
                    "zh": "缩短训练：评估损失在第 {step} 步最好。"},
    "adv_add_eval": {"en": "Hold out 10% of the data for evaluation so overfitting shows.",
                     "zh": "留出 10% 的数据做评估，才能看出是否过拟合。"},
    "adv_lr_down_overfit": {"en": "Halve the learning rate (now {lr}).", "zh": "把学习率减半（当前 {lr}）。"},
    "adv_smaller_lora": {"en": "Regularise the adapter: smaller LoRA rank, more LoRA dropout.",
                         "zh": "约束适配器：更小的 LoRA 秩，更大的 LoRA dropout。"},
    "adv_use_lora": {"en": "Train a LoRA adapter instead of every weight.", "zh": "改用 LoRA，而不是训练全部参数。"},
    "adv_fewer_layers": {"en": "Train fewer layers.", "zh": "训练更少的层。"},
    "adv_more_data_cap": {"en": "Use all the data: max_samples={n} caps it.", "zh": "使用全部数据：max_samples={n} 限制了样本数。"},
    "adv_more_data": {"en": "Add more (varied) training samples: {n} is little.",
                      "zh": "增加更多（更多样的）训练样本：{n} 条太少了。"},
    "adv_bigger_lora": {"en": "Give the adapter more capacity: LoRA rank {r} -> 4x, on every linear layer.",
                        "zh": "增大适配器容量：LoRA 秩 {r} -> 4 倍，并作用于所有线性层。"},
    "adv_full_ft": {"en": "Fine-tune every weight (full) with a small learning rate.",
                    "zh": "以较小学习率进行全参数微调。"},
    "adv_more_layers": {"en": "Train twice as many layers, every module in them.",
                        "zh": "训练两倍数量的层，并训练其中所有模块。"},
    "adv_bigger_model": {"en": "If that is not enough: a larger model.", "zh": "如果仍然不够：换一个更大的模型。"},
    "adv_longer": {"en": "Train twice as long.", "zh": "训练时间加倍。"},
    "adv_lr_up_undertrained": {"en": "The schedule decayed to ~0 while the loss still fell: try a higher peak learning "
                                     "rate (now {lr}).",
                               "zh": "学习率已衰减到接近 0 而损失仍在下降：可尝试更高的峰值学习率（当前 {lr}）。"},
    # notes
    "note_some_cut": {"en": "{pct}% of samples are cut by cutoff_len={cutoff} (max length {max_len}).",
                      "zh": "{pct}% 的样本被 cutoff_len={cutoff} 截断（最大长度 {max_len}）。"},
    "note_some_dups": {"en": "{n} training records ({pct}%) are exact repeats.",
                       "zh": "{n} 条训练记录（{pct}%）完全重复。"},
    "note_few_samples": {"en": "Only {n} training samples.", "zh": "只有 {n} 条训练样本。"},
    "note_no_eval": {"en": "No evaluation set: overfitting cannot be seen (set val_size).",
                     "zh": "没有评估集：无法发现过拟合（请设置 val_size）。"},
    "note_running": {"en": "Still running (step {step} of {total}): this is a verdict so far.",
                     "zh": "仍在运行（第 {step}/{total} 步）：这是目前为止的判断。"},
    "note_no_best_ckpt": {"en": "No checkpoint was saved at step {step}, where eval loss was best (save_steps equal to "
                                "eval_steps, or load_best_model_at_end=true, keeps it).",
                          "zh": "评估损失最好的第 {step} 步没有保存检查点（令 save_steps 等于 eval_steps，"
                                "或设置 load_best_model_at_end=true，即可保留）。"},
    "note_aborted": {"en": "Aborted at step {step}.", "zh": "在第 {step} 步被中止。"},
    "note_failed": {"en": "The run failed: {error}", "zh": "运行失败：{error}"},
    # words of the text report
    "h_evidence": {"en": "Evidence", "zh": "依据"},
    "h_advice": {"en": "What to change", "zh": "建议的修改"},
    "h_best": {"en": "Best checkpoint (lowest eval loss)", "zh": "最佳检查点（评估损失最低）"},
    "h_notes": {"en": "Also", "zh": "另外"},
    "h_also": {"en": "Other signs", "zh": "其它迹象"},
    "none": {"en": "none", "zh": "无"},
    "verdict": {"en": "Verdict", "zh": "结论"},
}

EVIDENCE_ZH = {
    "train_points": "训练日志点数", "eval_points": "评估次数", "last_step": "最后一步", "total_steps": "总步数",
    "nonfinite_steps": "NaN/inf 出现的步", "epochs": "轮数", "lr_peak": "峰值学习率", "lr_end": "最终学习率",
    "loss_first": "第一步损失", "loss_start": "起始损失", "loss_end": "最终损失", "loss_min": "最低损失",
    "loss_drop_pct": "损失下降 %", "loss_max_smoothed": "最高损失（平滑）", "spike_steps": "尖峰所在步",
    "noise": "末段噪声", "noise_sigma": "逐步噪声 σ", "recent_drop_pct": "末段下降 %", "recent_slope_t": "末段下降显著性 t",
    "recent_from_step": "末段起始步", "recent_share_pct": "末段下降占总下降 %", "recent_lr_from_step": "学习率预算末段起始步",
    "recent_lr_drop_pct": "学习率预算末段下降 %", "recent_lr_share_pct": "学习率预算末段下降占总下降 %",
    "recent_lr_slope_t": "学习率预算末段显著性 t", "recent_lr_ratio": "末段学习率 / 峰值",
    "eval_recent_drop_pct": "末段评估损失下降 %", "eval_recent_share_pct": "末段评估下降占其总下降 %",
    "eval_recent_lr_drop_pct": "学习率预算末段评估下降 %", "eval_recent_lr_share_pct": "学习率预算末段评估下降占比 %",
    "plateau_step": "进入平台的步", "loss_moved_pct": "损失离开起点的幅度 %",
    "loss_moved_noise_pct": "该幅度的噪声范围 %", "loss_rose_pct": "损失相对起点的上升 %",
    "loss_trend_t": "全程下降趋势 t", "eval_drop_noise_pct": "评估下降的噪声范围 %", "after_plateau_pct": "平台之后的训练占比 %", "grad_norm_max_late": "前 10% 之后梯度范数最大值",
    "eval_noise_sigma": "评估损失噪声 σ", "train_drop_noise_pct": "该下降的噪声范围 %", "grad_norm_median": "梯度范数中位数", "grad_norm_max": "梯度范数最大值",
    "grad_norm_max_step": "梯度范数最大的步", "eval_first": "首次评估损失", "eval_best": "最佳评估损失",
    "eval_best_step": "最佳评估所在步", "eval_best_epoch": "最佳评估所在轮", "eval_last": "最后评估损失",
    "eval_rise_pct": "评估损失回升 %", "evals_after_best": "最佳之后的评估次数", "evals_above_best": "高于最佳的评估次数",
    "eval_drop_pct": "评估损失下降 %", "train_loss_at_best_eval": "最佳评估时的训练损失",
    "train_drop_since_best_pct": "最佳评估后训练损失下降 %", "eval_gap_pct": "评估与训练损失差 %",
    "eval_recent_range_pct": "最近三次评估波动 %", "samples_total": "样本总数", "samples_train": "训练样本",
    "samples_eval": "评估样本", "truncated": "被截断样本", "truncated_pct": "截断比例 %", "dropped": "被丢弃样本",
    "dropped_pct": "丢弃比例 %", "dropped_reasons": "丢弃原因", "cutoff_len": "截断长度", "p50": "长度 p50",
    "p95": "长度 p95", "max_len": "最大长度", "trained_tokens": "参与训练的 token", "state": "状态", "error": "错误",
    "template": "模板", "expected_template": "模型自己的模板", "duplicates": "重复记录",
    "duplicates_pct": "重复比例 %",
}


def _t(key: str, lang: str, **fmt) -> str:
    entry = T[key]
    text = entry.get(lang) or entry["en"]
    try:
        return text.format(**fmt)
    except (KeyError, IndexError, ValueError):
        return text


class _Fmt(dict):
    def __missing__(self, key):
        return "?"


def _fmt(f: dict, cfg: dict) -> dict:
    out = _Fmt({k: v for k, v in f.items() if v is not None})
    out["learning_rate"] = cfg.get("learning_rate")
    out["nonfinite_first"] = (f.get("nonfinite_steps") or ["?"])[0]
    out["spike_steps"] = ", ".join(map(str, f.get("spike_steps") or [])) or "?"
    out["eval_last_or_na"] = f.get("eval_last", "n/a")
    out["error_tail"] = f": {f['error']}" if f.get("error") else ""
    out["recent_lr_pct"] = _r(100 * f["recent_lr_ratio"], 2) if f.get("recent_lr_ratio") is not None else "?"
    return out


def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(map(str, v))
    if v is None:
        return "null"
    return str(v)


def render(report: dict, lang: str = "en") -> str:
    """The report in plain words (markdown-friendly plain text)."""
    zh = lang == "zh"
    v = report["verdict"]
    lines = [f"{_t('verdict', lang)}: {_t(f'verdict_{v}', lang)} ({v})",
             report["summary_zh"] if zh else report["summary"], ""]
    lines.append(f"{_t('h_advice', lang)}:")
    if report["advice"]:
        for a in report["advice"]:
            ch = " ".join(f"{k}={_fmt_value(x)}" for k, x in a["change"].items())
            lines.append(f"  - {a['why_zh'] if zh else a['why']}" + (f"  ->  {ch}" if ch else ""))
    else:
        lines.append(f"  - {_t('none', lang)}")
    best = report.get("best_checkpoint")
    lines.append(f"{_t('h_best', lang)}: {best or _t('none', lang)}")
    if report.get("notes"):
        lines.append(f"{_t('h_notes', lang)}:")
        lines += [f"  - {n[lang] if lang in n else n['en']}" for n in report["notes"]]
    if report.get("findings"):
        lines.append(f"{_t('h_also', lang)}: " + ", ".join(_t(f"verdict_{x}", lang) for x in report["findings"]))
    lines.append(f"{_t('h_evidence', lang)}:")
    for k, x in report["evidence"].items():
        label = EVIDENCE_ZH.get(k, k) if zh else k
        lines.append(f"  {label}: {_fmt_value(x) if not isinstance(x, dict) else json.dumps(x, ensure_ascii=False)}")
    return "\n".join(lines)


def public(report: dict) -> dict:
    """The JSON the CLI prints: the documented keys first, the extras after."""
    out = {"verdict": report["verdict"], "evidence": report["evidence"],
           "advice": [{"why": a["why"], "change": a["change"]} for a in report["advice"]],
           "best_checkpoint": report["best_checkpoint"]}
    for k in ("summary", "findings", "notes", "state", "running", "confidence", "format", "path"):
        out[k] = report[k]
    out["notes"] = [n["en"] for n in report["notes"]]
    return out


# ---------------------------------------------------------------- CLI
USAGE = """usage:
  tuneboard doctor OUTPUT_DIR [--json] [--lang zh]          judge a run (ours, HF Trainer or LLaMA-Factory)
  tuneboard doctor --estimate recipe.yaml [key=value ...]   pre-flight: samples, steps, tokens, memory
        [--measure N] [--json]                              (--measure: time N real steps)
  tuneboard doctor --inspect recipe.yaml [key=value ...]    dataset against cutoff_len, duplicates, languages
  tuneboard doctor --compare DIR DIR ... [--x step|epoch|tokens] [--json]
  tuneboard doctor --sweep recipe.yaml [key=value ...] [--k 5] [--center LR] [--span 2] [--steps 30]
        [--eval-every 5] [--out DIR] [--json]               learning-rate sweep, one run after another
"""


def _parse_flags(flags: list[str], path: str | None) -> tuple[dict, list[str]]:
    """--name value / --name=value / --switch, plus positional words, from cli._split's flags."""
    opts: dict = {}
    pos: list[str] = []
    switches = {"--json", "--help", "-h"}
    i = 0
    while i < len(flags):
        a = flags[i]
        if a.startswith("--") or a == "-h":
            name, eq, val = a.partition("=")
            key = name.lstrip("-").replace("-", "_")
            if eq:
                opts[key] = val
            elif name in switches or key in ("estimate", "inspect", "compare", "sweep"):
                opts[key] = True
            elif i + 1 < len(flags):
                opts[key] = flags[i + 1]
                i += 1
            else:
                raise UserError(f"{name}: give a value (for example {name} 5).")
        else:
            pos.append(a)
        i += 1
    return opts, pos


def run_cli(path: str | None, overrides: list[str], flags: list[str]) -> int:
    opts, pos = _parse_flags(flags, path)
    # `--estimate key=value`: cli._split took the first override for the flag's value
    overrides = list(overrides) + [w for w in pos if "=" in w]
    pos = [w for w in pos if "=" not in w]
    if opts.get("help") or opts.get("h"):
        print(USAGE)
        return 0
    lang = str(opts.get("lang", "en"))
    if lang not in ("en", "zh"):
        raise UserError(f"--lang: {lang!r} is not one of en, zh.")
    as_json = bool(opts.get("json"))
    known = {"json", "lang", "estimate", "inspect", "compare", "sweep", "measure", "x", "k", "center", "span",
             "steps", "eval_every", "out"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise UserError(f"--{unknown[0]}: unknown option of `tuneboard doctor`.\n{USAGE}")
    if opts.get("estimate") or opts.get("inspect") or opts.get("sweep"):
        recipe = path or (pos.pop(0) if pos and pos[0].endswith((".yaml", ".yml")) else None)
        if pos:
            raise UserError(f"{pos[0]}: unexpected word; give one recipe.yaml and key=value overrides.")
        if opts.get("estimate"):
            from .estimate import estimate, render as render_est
            rep = estimate(recipe, overrides, measure_steps=int(opts.get("measure", 0) or 0))
            print(json.dumps(rep, ensure_ascii=False, indent=2) if as_json else render_est(rep, lang))
            return 0 if rep["fits"] else 1
        if opts.get("inspect"):
            from .inspector import inspect_dataset, render as render_ins
            rep = inspect_dataset(recipe, overrides)
            print(json.dumps(rep, ensure_ascii=False, indent=2) if as_json else render_ins(rep, lang))
            return 0
        from .sweep import run_sweep_cli
        return run_sweep_cli(recipe, overrides, opts, as_json, lang)
    if opts.get("compare"):
        dirs = ([path] if path else []) + pos
        from .compare import compare, render as render_cmp
        rep = compare(dirs, x=str(opts.get("x", "step")))
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str) if as_json else render_cmp(rep, lang))
        return 0
    if overrides:
        raise UserError(f"{overrides[0]}: key=value overrides go with --estimate, --inspect or --sweep; "
                        "`tuneboard doctor OUTPUT_DIR` only reads the run.")
    target = path or (pos[0] if pos else None)
    if len(pos) > (0 if path else 1):
        raise UserError(f"{pos[-1]}: one run folder at a time (use --compare for several).")
    if not target:
        raise UserError(f"give the run folder to judge.\n{USAGE}")
    rep = diagnose(target)
    if as_json:
        print(json.dumps(public(rep), ensure_ascii=False, indent=2))
    else:
        print(render(rep, lang))
    sys.stdout.flush()
    return 0

"""The facts of a run: the numbers the doctor's rules read, and what else the run folder says about itself.

    facts(run) -> {evidence name: value}      run_config(run) -> the run's arguments on the schema's defaults
    template_check(cfg) -> a template that is not the model's     duplicates(cfg) -> repeats in its training data
    best_checkpoint(run) -> the checkpoint of the lowest eval loss

Nothing here judges: the thresholds below only say how a number is measured (which stretch is "the end", what
counts as a spike). The rules that turn these numbers into a verdict are in verdict.py.
"""
from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

from ..args import BY_NAME, Namespace, defaults
from ..config import coerce
from ..data.readers import data_files
from ..data.records import dataset_names, load_records
from ..data.records import duplicates as repeats
from ..data.registry import load_dataset_info
from ..data.templates import TEMPLATES
from ..errors import ConfigError
from ..models.registry import default_template
from ..train import rundir
from .runlog import Point, Run

RECENT = 0.4             # "the end": the last 40 % of the steps (or of the learning-rate budget)
PLATEAU = 0.1            # the plateau starts where the smoothed loss is within 10 % of the total drop of its end
PLATEAU_STRAY = 0.1      # ... and stays there, but for a tenth of the smoothed points (noise, not a trend)
NOISE_Z = 3.0            # "beyond the noise": three standard errors of what is compared
SPIKE = 2.0              # a spike: one logged loss above twice the median of the five before it ...
NOISE_SIGMAS = 6.0       # ... and that many noise sigmas above it (a noisy but steady curve has no spikes)
GN_EARLY = 0.1           # the first 10 % of steps, where large gradient norms are normal
ABOVE_BEST = 0.01        # an evaluation 1 % over the best one counts as above it


def rounded(x, nd: int = 4):
    """A number to 4 significant digits for the evidence (None and non-finite values as they are)."""
    if x is None:
        return None
    if isinstance(x, float) and math.isfinite(x):
        return float(f"{x:.{nd}g}")
    return x


def finite(points: list[Point]) -> list[Point]:
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


def run_config(run: Run) -> dict:
    """The run's arguments on top of the schema defaults (unknown keys of other tools are ignored)."""
    cfg = defaults()
    for k, v in (run.config or {}).items():
        if k in BY_NAME and v is not None:
            try:  # "dataset: identity" is a list of one, as the run read it
                cfg[k] = coerce(BY_NAME[k], v)
            except ConfigError:
                cfg[k] = v
    if not run.config:  # a run made elsewhere without a readable config: what its log tells
        lrs = [p.lr for p in run.train if p.lr]
        if lrs:
            cfg["learning_rate"] = max(lrs)
        epochs = [p.epoch for p in run.train + run.eval if p.epoch is not None]
        if epochs:  # "train twice as long" should double this run's length, not our default's
            cfg["num_train_epochs"] = max(0.5, round(max(epochs) * 2) / 2)
    return cfg


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
    f[f"{prefix}drop_pct"] = rounded(100 * drop / level) if level else None
    f[f"{prefix}share_pct"] = rounded(100 * drop / total) if total > 0 else None
    if prefix == "recent_" and total > 0 and math.isfinite(se):  # how sure that share is: its standard error
        f["recent_share_se_pct"] = rounded(100 * se * (window[-1].step - window[0].step) / total)
    f[f"{prefix}slope_t"] = rounded(-slope / se) if se and math.isfinite(se) and se > 0 else (
        math.inf if slope < 0 else 0.0)
    if len(ev) >= 2 and ev[-1].step > tr[idx[0]].step:
        ref = _at(ev, tr[idx[0]].step)
        e_total = ev[0].loss - min(p.loss for p in ev)
        f[f"eval_{prefix}drop_pct"] = rounded(100 * (ref - ev[-1].loss) / ref) if ref else None
        f[f"eval_{prefix}share_pct"] = rounded(100 * (ref - ev[-1].loss) / e_total) if e_total > 0 else 0.0


def facts(run: Run) -> dict:
    """The numbers every rule reads (they become the report's evidence)."""
    tr = finite(run.train)
    ev = finite(run.eval)
    f: dict = {"train_points": len(run.train), "eval_points": len(run.eval), "last_step": run.last_step,
               "total_steps": run.total_steps}
    bad = [p.step for p in run.train if p.loss is None or not math.isfinite(p.loss)]
    bad += [p.step for p in run.train if p.grad_norm is not None and not math.isfinite(p.grad_norm)]
    bad += [p.step for p in run.eval if not math.isfinite(p.loss)]
    f["nonfinite_steps"] = sorted(set(bad))[:10]
    epochs = [p.epoch for p in run.train + run.eval if p.epoch is not None]
    f["epochs"] = rounded(max(epochs)) if epochs else None
    lrs = [p.lr for p in run.train if p.lr is not None]
    f["lr_peak"] = rounded(max(lrs)) if lrs else None
    f["lr_end"] = rounded(lrs[-1]) if lrs else None
    if tr:
        losses = [p.loss for p in tr]
        n = len(losses)
        f["loss_first"] = rounded(losses[0])
        head = _median(losses[:max(1, min(3, n // 2))])  # a short log's first logs are already half of it
        w = max(1, min(5, n // 4))
        tail = _median(losses[-w:])
        f["loss_start"] = rounded(head)
        f["loss_end"] = rounded(tail)
        f["loss_min"] = rounded(min(losses))
        f["loss_drop_pct"] = rounded(100 * (head - tail) / head) if head else None
        sigma = _noise(losses)
        # how far noise alone moves the start-to-end change (a median of 3 logs against a median of w): NOISE_Z
        # standard errors (a median's is ~1.25 times the mean's), in % of the start
        se = 1.2533 * sigma * math.sqrt(1 / max(1, min(3, n // 2)) + 1 / w)
        f["loss_change_noise_pct"] = rounded(100 * NOISE_Z * se / head) if head and n >= 3 else None
        roll = [_median(losses[max(0, i - 1):i + 2]) for i in range(n)]
        f["loss_max_smoothed"] = rounded(max(roll))
        f["noise_sigma"] = rounded(sigma)
        # how far the loss got below its start, on medians of a tenth of the run (one low log is not progress)
        k = max(3, n // 10)
        if n >= 2 * k and _median(losses[:k]):
            head_k = _median(losses[:k])
            low = min(_median(losses[i:i + k]) for i in range(n - k + 1))
            f["loss_moved_pct"] = rounded(100 * (head_k - low) / head_k)
            f["loss_rose_pct"] = rounded(100 * (_median(losses[-k:]) - head_k) / head_k)
            f["loss_moved_noise_pct"] = rounded(100 * 5 * sigma / math.sqrt(k) / head_k)  # what noise alone gives
            slope, se = _slope(tr)
            f["loss_trend_t"] = rounded(-slope / se) if se and math.isfinite(se) and se > 0 else 0.0
        spikes = [tr[i].step for i in range(5, n) if losses[i] > SPIKE * _median(losses[i - 5:i])
                  and losses[i] > _median(losses[i - 5:i]) + NOISE_SIGMAS * sigma]
        f["spike_steps"] = spikes[:10]
        f["noise"] = rounded(statistics.pstdev(losses[-max(3, w):])) if n >= 3 else None
        if n >= 5 and head > tail:
            # the plateau: from where the smoothed loss stays within PLATEAU of the total drop above its end
            k = max(1, min(5, n // 10))
            smooth = [_median(losses[max(0, i - k):i + k + 1]) for i in range(n)]
            # ... or its noise: NOISE_Z standard errors of a median of the 2k+1 logs around each point
            limit = tail + max(PLATEAU * (head - tail), NOISE_Z * 1.2533 * sigma / math.sqrt(2 * k + 1))
            i, above = n - 1, 0
            while i > 0:  # back from the end while at most PLATEAU_STRAY of the points so far stray above
                above += smooth[i - 1] > limit
                if above > PLATEAU_STRAY * (n - i + 1):
                    break
                i -= 1
            while i < n - 1 and smooth[i] > limit:  # the plateau starts on a point inside it
                i += 1
            f["plateau_step"] = tr[i].step
            span = tr[-1].step - tr[0].step
            f["after_plateau_pct"] = rounded(100 * (tr[-1].step - tr[i].step) / span) if span else None
        _recent(f, tr, ev, [float(p.step) for p in tr], "recent_")
        cum = _cum_lr(tr)
        if cum is not None:
            _recent(f, tr, ev, cum, "recent_lr_")
        x0 = tr[0].step + (1 - RECENT) * (tr[-1].step - tr[0].step)
        wl = [p.lr for p in tr if p.step >= x0 and p.lr is not None]
        peak = max((p.lr for p in run.train if p.lr is not None), default=None)
        if wl and peak:
            f["recent_lr_ratio"] = rounded(sum(wl) / len(wl) / peak)
    gns = [p for p in run.train if p.grad_norm is not None and math.isfinite(p.grad_norm)]
    if gns:
        f["grad_norm_median"] = rounded(_median([p.grad_norm for p in gns]))
        top = max(gns, key=lambda p: p.grad_norm)
        f["grad_norm_max"] = rounded(top.grad_norm)
        f["grad_norm_max_step"] = top.step
        first, last = run.train[0].step, run.train[-1].step
        late = [p for p in gns if p.step > first + GN_EARLY * (last - first)]
        if late:
            f["grad_norm_max_late"] = rounded(max(p.grad_norm for p in late))
    if ev:
        e = [p.loss for p in ev]
        best_i = min(range(len(e)), key=lambda i: e[i])
        sigma_e = _noise(e)
        f["eval_noise_sigma"] = rounded(sigma_e)
        f["eval_first"] = rounded(e[0])
        f["eval_best"] = rounded(e[best_i])
        f["eval_best_step"] = ev[best_i].step
        f["eval_best_epoch"] = rounded(ev[best_i].epoch) if ev[best_i].epoch is not None else None
        f["eval_last"] = rounded(e[-1])
        f["eval_rise_pct"] = rounded(100 * (e[-1] - e[best_i]) / e[best_i]) if e[best_i] else None
        f["evals_after_best"] = len(e) - 1 - best_i
        f["evals_above_best"] = sum(1 for x in e[best_i + 1:] if x > e[best_i] * (1 + ABOVE_BEST))
        # the last eval above the best by more than 1 % and more than the eval curve's own noise
        f["eval_rose"] = e[-1] > e[best_i] + max(e[best_i] * ABOVE_BEST, 3 * sigma_e)
        f["eval_drop_pct"] = rounded(100 * (e[0] - e[best_i]) / e[0]) if e[0] else None
        f["eval_drop_noise_pct"] = rounded(100 * 5 * sigma_e / e[0]) if e[0] else None  # first vs the lowest of many
        if tr:
            near = [p.loss for p in tr if abs(p.step - ev[best_i].step) <= max(1, _log_every(tr))]
            at_best = _median(near) if near else None
            f["train_loss_at_best_eval"] = rounded(at_best)
            if at_best:
                f["train_drop_since_best_pct"] = rounded(100 * (at_best - _median([p.loss for p in tr[-3:]])) / at_best)
                # what two medians of three logs differ by on noise alone
                f["train_drop_noise_pct"] = rounded(100 * 3 * (f.get("noise_sigma") or 0) / at_best)
            f["eval_gap_pct"] = rounded(100 * (e[-1] - f["loss_end"]) / f["loss_end"]) if f["loss_end"] else None
        if len(e) >= 3:
            last3 = e[-3:]
            f["eval_recent_range_pct"] = rounded(100 * (max(last3) - min(last3)) / min(last3)) if min(last3) else None
    s = run.stats or {}
    if s:
        kept, total = s.get("kept") or 0, s.get("total") or 0
        f["samples_total"] = total
        f["samples_train"] = s.get("train_samples", kept)
        f["samples_eval"] = s.get("eval_samples")
        f["truncated"] = s.get("truncated")
        f["truncated_pct"] = rounded(100 * s.get("truncated", 0) / kept) if kept else None
        f["dropped"] = s.get("dropped")
        f["dropped_pct"] = rounded(100 * s.get("dropped", 0) / total) if total else None
        f["dropped_reasons"] = s.get("dropped_reasons") or {}
        for k in ("cutoff_len", "p50", "p95", "max_len", "tokens"):
            if k in s:
                f[k if k != "tokens" else "trained_tokens"] = s[k]
    headline(run, f)
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


def template_check(cfg: dict) -> dict | None:
    """{"template", "expected"} when the run's template formats turns differently from the model's own."""
    name = cfg.get("template")
    if not name or name == "auto":
        return None
    try:
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


_DUP_CACHE: dict = {}  # files' signature -> counts: the web UI re-judges a live run every few seconds


def duplicates(cfg: dict) -> dict | None:
    """{"duplicates", "samples"}: exact repeats among the run's local training records, read by the one records
    path training uses (engine.data.records; num_samples' copies of one record are deliberate, not counted).
    None for hub datasets (the doctor does not download) or data that is not readable here."""
    names = dataset_names(cfg.get("dataset"))
    if not names:
        return None
    try:
        info = load_dataset_info(cfg.get("dataset_dir") or "data")
        attrs = [info[n] for n in names]
        if any(a.load_from != "file" for a in attrs):
            return None
        key = (cfg.get("stage"), cfg.get("max_samples"), cfg.get("identity_name"), cfg.get("identity_author"),
               json.dumps([a.to_dict() for a in attrs], sort_keys=True, default=str),
               tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for a in attrs for f in data_files(a)))
        if key not in _DUP_CACHE:
            recorded = Namespace({k: v for k, v in cfg.items() if v is not None})  # a run's record, any writer
            dup = repeats(load_records(recorded, recorded.stage, names))
            _DUP_CACHE[key] = {"duplicates": dup["duplicates"], "samples": dup["samples"]}
        return _DUP_CACHE[key]
    except Exception:  # moved or unreadable data: judge the run without it
        return None


def stats_from_error(f: dict, err: str) -> None:
    """A run that failed on cutoff_len wrote no dataset_stats.json; its error message names the lengths."""
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


def best_checkpoint(run: Run) -> str | None:
    """The checkpoint saved at the step of the lowest eval loss (the final model when that was the last step);
    None without evaluations or when nothing was saved at that step."""
    ev = finite(run.eval)
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


def headline(run: Run, f: dict) -> None:
    """A reward model's accuracy, a preference run's reward accuracy and margin: first, last and best logged value
    (held-out values preferred), what says how well such a run does when its loss cannot."""
    keys = {"accuracy": "accuracy", "rewards/accuracies": "reward_accuracies", "rewards/margins": "reward_margins",
            "margin": "reward_margins"}  # a reward model logs accuracy and margin; DPO / KTO rewards/...
    for name, key in keys.items():
        pts = run.metrics.get(f"eval_{name}") or run.metrics.get(name)
        if not pts or f"{key}_first" in f:
            continue
        held_out = f"eval_{name}" in run.metrics
        f[f"{key}_first"], f[f"{key}_last"] = rounded(pts[0][1]), rounded(pts[-1][1])
        f[f"{key}_best"] = rounded(max(v for _, v in pts))
        f[f"{key}_held_out"] = held_out


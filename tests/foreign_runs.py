"""Training logs of other tools, written from a formula plus seeded noise, for the doctor's labelled cases.

    write_run(dir, curve, fmt, ...) -> dir holding what a run of that tool leaves behind:
      fmt="hf"            trainer_state.json (log_history: loss, grad_norm, learning_rate, epoch, step; eval rows
                          with eval_loss; the final train_loss row), at the top or in checkpoint-N/
      fmt="llamafactory"  trainer_log.jsonl (current_steps, total_steps, loss, eval_loss, lr, epoch, percentage,
                          elapsed_time, remaining_time) and its training_args.yaml
      fmt="tuneboard"     ours: trainer_log.jsonl (step, loss, learning_rate, grad_norm, epoch, eval_loss), status.json
                          (finished, or failed with `error`), training_args.yaml, and dataset_stats.json when given

A curve names the shape of train and eval loss over the run (CURVES); the tool's own logging and eval intervals,
epochs, schedule and whether grad_norm is logged are parameters, so the rules are checked on intervals that are
not ours. Each logged loss is the curve plus Gaussian noise (a logged loss averages `log_every` steps).
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import yaml


def lr_at(step: int, total: int, peak: float, schedule: str, warmup: float) -> float:
    """The learning rate of the Trainer's schedules (linear warmup, then linear / cosine / constant)."""
    w = int(round(warmup * total))
    if step < w:
        return peak * step / max(1, w)
    if schedule == "constant":
        return peak
    x = (step - w) / max(1, total - w)
    if schedule == "linear":
        return peak * max(0.0, 1 - x)
    return peak * 0.5 * (1 + math.cos(math.pi * x))


def lr_budget(total: int, peak: float, schedule: str, warmup: float) -> list[float]:
    """Cumulative learning rate after each step (index = step): the loss of real runs follows this more than it
    follows steps."""
    out = [0.0]
    for s in range(1, total + 1):
        out.append(out[-1] + lr_at(s, total, peak, schedule, warmup))
    return out


def _exp(s, tau):
    return math.exp(-s / tau)


def curves(name: str, total: int, steps_per_epoch: int, budget: list[float]):
    """(train(step), eval(step)) for a named shape; `u` is the share of the run, `c` of the lr budget."""
    T, C = total, budget[-1]

    def epoch(s):
        return s // steps_per_epoch  # finished passes over the data: train loss steps down at each

    def c(s):
        return budget[min(int(s), T)] / C

    if name == "healthy":  # fast drop, plateau from about a third of the run, eval flat after it
        return (lambda s: 1.1 + 0.9 * _exp(s, T / 8) - 0.03 * epoch(s),
                lambda s: 1.22 + 0.8 * _exp(s, T / 8) - 0.01 * min(1.0, s / T))
    if name == "healthy_lr":  # converged in units of learning rate (what decayed schedules really look like)
        return (lambda s: 0.9 + 1.1 * _exp(c(s), 1 / 7) - 0.02 * epoch(s),
                lambda s: 1.0 + 1.0 * _exp(c(s), 1 / 7))
    if name == "undertrained":  # falling nearly linearly to the last step
        return (lambda s: 1.0 + 1.2 * _exp(s, 1.3 * T), lambda s: 1.1 + 1.1 * _exp(s, 1.3 * T))
    if name == "ran_out":  # linear in the lr budget: it only flattens because the learning rate decays away
        return (lambda s: 2.3 - 1.0 * c(s), lambda s: 2.4 - 0.9 * c(s))
    if name == "overfitting":  # train keeps falling (more at each epoch), eval turns up after a third of the run
        return (lambda s: 0.8 + 1.0 * _exp(s, T / 8) - 0.12 * epoch(s) - 0.1 * s / T,
                lambda s: 1.15 + 0.85 * _exp(s, T / 8) + 0.3 * max(0.0, s / T - 0.35))
    if name == "diverging":  # learns, then blows up
        return (lambda s: (1.2 + 0.8 * _exp(s, T / 8)) * math.exp(max(0.0, s / T - 0.5) * 3.0),
                lambda s: (1.3 + 0.7 * _exp(s, T / 8)) * math.exp(max(0.0, s / T - 0.5) * 3.0))
    if name == "not_learning":
        return (lambda s: 2.3, lambda s: 2.35)
    if name == "capacity":  # a small drop, then flat at a high loss; train no lower than eval after 3 epochs
        return (lambda s: 2.6 + 0.35 * _exp(s, T / 10), lambda s: 2.63 + 0.33 * _exp(s, T / 10))
    # shapes of short runs (10-40 steps)
    if name == "healthy_short":  # from ~3 to a plateau by half the lr budget (the identity run of the tests)
        return (lambda s: 1.2 + 1.8 * _exp(c(s), 1 / 6), lambda s: 1.3 + 1.6 * _exp(c(s), 1 / 6))
    if name == "falling":  # a straight fall to the last step: far from done
        return (lambda s: 3.0 - 1.5 * s / T, lambda s: 3.1 - 1.3 * s / T)
    if name == "rising":  # ends well above its start (too high a learning rate, slowly)
        return (lambda s: 2.0 + 0.8 * s / T, lambda s: 2.1 + 0.8 * s / T)
    if name == "creep":  # drifts up by 8 %: small beside the noise of batch-2 losses (issue 20's first run)
        return (lambda s: 3.1 + 0.25 * s / T, lambda s: 3.15 + 0.2 * s / T)
    if name == "slow":  # still falling at the end, by 4 % in all: far too little for this learning rate
        return (lambda s: 3.0 - 0.12 * s / T, lambda s: 3.1 - 0.1 * s / T)
    if name == "hump":  # shoots up to three times its start half-way, then comes back
        return (lambda s: 2.0 + 4.0 * math.exp(-((s - T / 2) / (T / 12)) ** 2), lambda s: 2.1)
    if name == "memorise":  # to zero: a few samples learned by heart
        return (lambda s: 0.005 + 2.0 * _exp(s, T / 8), lambda s: 0.05 + 2.0 * _exp(s, T / 8))
    if name == "rebound":  # falls by a third, then climbs back to where it began
        return (lambda s: 2.5 - 1.0 * math.sin(math.pi * s / T), lambda s: 2.6 - 0.9 * math.sin(math.pi * s / T))
    if name == "flat_low":  # a model that already knows its data
        return (lambda s: 0.3, lambda s: 0.32)
    if name == "small_drop":  # a few percent, then flat: small, but real where the noise is smaller still
        return (lambda s: 0.66 + 0.035 * _exp(s, T / 8), lambda s: 0.67 + 0.03 * _exp(s, T / 8))
    if name == "partway":  # learned and settled a third of the way down from ~3.1: the identity is not taught yet
        return (lambda s: 2.2 + 0.9 * _exp(s, T / 4), lambda s: 2.3 + 0.8 * _exp(s, T / 4))
    raise KeyError(name)


def write_run(d: Path, curve: str, fmt: str, *, epochs: int = 1, steps_per_epoch: int = 200, log_every: int = 5,
              eval_every: int | None = 25, grad_norm: bool = True, schedule: str = "cosine", warmup: float = 0.1,
              peak_lr: float = 1e-4, noise: float = 0.02, seed: int = 0, nan_from: float | None = None,
              spikes: int = 0, in_checkpoint: bool = False, config: dict | None = None, error: str | None = None,
              stats: dict | None = None, until: float = 1.0, state: str | None = None,
              grad_spike: float | None = None) -> Path:
    """Write a finished run of `curve` in `fmt` into `d` and return `d`.

    nan_from: share of the run from which the loss and grad_norm are logged as NaN (fp16 overflow).
    spikes: that many single logged losses at three times the curve (an unstable run).
    until: share of the run that was logged (a run that failed or was stopped part-way).
    grad_spike: share of the run where one logged gradient norm is 200 times the curve's.
    error (tuneboard only): the run failed with this message after the logged steps; stats: its dataset_stats.json;
    state (tuneboard only): "training" (a live run: status.json names a process that is alive, this test's
    parent) or "aborted"."""
    rng = random.Random(seed)
    total = epochs * steps_per_epoch
    budget = lr_budget(total, peak_lr, schedule, warmup)
    train, ev = curves(curve, total, steps_per_epoch, budget)
    spike_at = set(rng.sample(range(total // (2 * log_every), total // log_every), spikes)) if spikes else set()
    rows, evals = [], []
    for i, s in enumerate(range(log_every, int(until * total) + 1, log_every)):
        loss = train(s) * (1 + rng.gauss(0, noise))
        if i in spike_at:
            loss *= 3
        g = (0.8 + 30 * _exp(s, 0.02 * total)) * (1 + rng.gauss(0, 0.15))  # large norms in the first steps
        if grad_spike is not None and s == log_every * round(grad_spike * total / log_every):
            g *= 200
        if nan_from is not None and s >= nan_from * total:
            loss, g = math.nan, math.nan
        rows.append({"step": s, "epoch": s / steps_per_epoch, "loss": loss, "lr": lr_at(s, total, peak_lr, schedule,
                                                                                         warmup), "grad_norm": g})
        if eval_every and s % eval_every == 0:
            v = ev(s) * (1 + rng.gauss(0, min(noise / 4, 0.005)))  # one fixed eval set: far smoother than a batch
            evals.append({"step": s, "epoch": s / steps_per_epoch, "eval_loss": math.nan if math.isnan(loss) else v})
    d.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        _write_hf(d, rows, evals, total, epochs, log_every, eval_every, grad_norm, in_checkpoint)
    elif fmt == "llamafactory":
        _write_lf(d, rows, evals, total, grad_norm)
    elif fmt == "tuneboard":
        _write_ours(d, rows, evals, total, grad_norm, error, stats, state)
    else:
        raise ValueError(fmt)
    if config is not None or fmt in ("llamafactory", "tuneboard"):
        cfg = {"stage": "sft", "do_train": True, "finetuning_type": "lora", "learning_rate": peak_lr,
               "num_train_epochs": float(epochs), "lr_scheduler_type": schedule, "warmup_ratio": warmup,
               "logging_steps": log_every, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
               "output_dir": str(d)}
        if eval_every:
            cfg.update(val_size=0.1, eval_strategy="steps", eval_steps=eval_every)
        cfg.update(config or {})
        (d / "training_args.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return d


def _write_hf(d, rows, evals, total, epochs, log_every, eval_every, grad_norm, in_checkpoint):
    hist = []
    by_step = {e["step"]: e for e in evals}
    for r in rows:
        h = {"epoch": round(r["epoch"], 4), "learning_rate": r["lr"], "loss": round(r["loss"], 4), "step": r["step"]}
        if grad_norm:
            h["grad_norm"] = r["grad_norm"]
        hist.append(h)
        e = by_step.get(r["step"])
        if e:
            hist.append({"epoch": round(e["epoch"], 4), "eval_loss": e["eval_loss"], "eval_runtime": 3.2,
                         "eval_samples_per_second": 31.2, "eval_steps_per_second": 3.9, "step": e["step"]})
    finite = [r["loss"] for r in rows if math.isfinite(r["loss"])]
    hist.append({"epoch": float(epochs), "step": total, "total_flos": 1.5e15, "train_loss": sum(finite) / len(finite),
                 "train_runtime": 812.4, "train_samples_per_second": 3.9, "train_steps_per_second": 0.25})
    best = min((e for e in evals if math.isfinite(e["eval_loss"])), key=lambda e: e["eval_loss"], default=None)
    state = {"best_global_step": best["step"] if best else None, "best_metric": best["eval_loss"] if best else None,
             "best_model_checkpoint": None, "epoch": float(epochs), "eval_steps": eval_every or 500,
             "global_step": total, "is_hyper_param_search": False, "is_local_process_zero": True,
             "is_world_process_zero": True, "log_history": hist, "logging_steps": log_every, "max_steps": total,
             "num_input_tokens_seen": 0, "num_train_epochs": epochs, "save_steps": 500, "total_flos": 1.5e15,
             "train_batch_size": 2, "trial_name": None, "trial_params": None}
    where = d / f"checkpoint-{total}" if in_checkpoint else d
    where.mkdir(parents=True, exist_ok=True)
    # json.dumps writes NaN as the Trainer does (it is not strict JSON, but it is what the files hold)
    (where / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")


def _hms(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def _write_lf(d, rows, evals, total, grad_norm):
    per_step = 2.5  # seconds
    lines = []
    by_step = {e["step"]: e for e in evals}
    for r in rows:
        s = r["step"]
        common = {"current_steps": s, "total_steps": total}
        tail = {"epoch": round(r["epoch"], 2), "percentage": round(100 * s / total, 2),
                "elapsed_time": _hms(s * per_step), "remaining_time": _hms((total - s) * per_step)}
        row = {**common, "loss": round(r["loss"], 4), "lr": r["lr"], **tail, "throughput": 812.5,
               "total_tokens": s * 4096}
        if grad_norm:
            row["grad_norm"] = r["grad_norm"]
        lines.append(row)
        e = by_step.get(s)
        if e:
            lines.append({**common, "eval_loss": e["eval_loss"], **tail})
    (d / "trainer_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def _write_ours(d, rows, evals, total, grad_norm, error, stats, state):
    """What engine.train writes (rundir's file names; the callback's row keys)."""
    from engine.train import rundir
    lines = []
    by_step = {e["step"]: e for e in evals}
    for r in rows:
        row = {"step": r["step"], "total_steps": total, "epoch": round(r["epoch"], 4), "loss": r["loss"],
               "learning_rate": r["lr"]}
        if grad_norm:
            row["grad_norm"] = r["grad_norm"]
        lines.append(row)
        e = by_step.get(r["step"])
        if e:
            lines.append({"step": e["step"], "total_steps": total, "epoch": round(e["epoch"], 4),
                          "eval_loss": e["eval_loss"]})
    (d / rundir.LOG).write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    last = rows[-1]["step"] if rows else 0
    status = {"state": "failed", "error": error} if error else {"state": state or "finished", "error": None}
    if state == "training":  # alive while the test runs: the process that started it
        import os
        import psutil
        status.update(pid=os.getppid(), pid_create_time=psutil.Process(os.getppid()).create_time())
    (d / rundir.STATUS).write_text(json.dumps({**status, "step": last, "total_steps": total}), encoding="utf-8")
    if stats is not None:
        (d / rundir.STATS).write_text(json.dumps(stats), encoding="utf-8")

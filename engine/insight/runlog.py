"""One reader for the run folders the doctor and the comparison judge.

    read_run(path) -> Run: train points, eval points, config, dataset stats, status, results, checkpoints

Three layouts are understood:
  tuneboard     our trainer_log.jsonl (step, loss, eval_loss, grad_norm, learning_rate, epoch, tokens_seen),
                training_args.yaml, dataset_stats.json, status.json, all_results.json
  hf            any Hugging Face Trainer output: trainer_state.json's log_history, at the top or in the
                newest checkpoint-N/ (best_model_checkpoint when the Trainer tracked one)
  llamafactory  LLaMA-Factory's trainer_log.jsonl (current_steps, total_steps, loss, eval_loss, lr, epoch,
                percentage, elapsed_time as "H:MM:SS", remaining_time) and its training_args.yaml
A path may also name one of those files directly.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..train import rundir
from ..errors import UserError
from ..utils import read_json_object, read_jsonl_objects

HF_STATE = "trainer_state.json"  # the Hugging Face Trainer's own record (foreign runs; checkpoints of ours too)


@dataclass
class Point:
    step: int
    loss: float            # NaN when the run logged a non-finite loss
    epoch: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens: int | None = None


@dataclass
class Run:
    path: str
    format: str                      # tuneboard | hf | llamafactory
    train: list[Point] = field(default_factory=list)
    eval: list[Point] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    stats: dict | None = None
    status: dict | None = None
    results: dict | None = None
    total_steps: int | None = None
    checkpoints: list[tuple[int, str]] = field(default_factory=list)
    best_checkpoint_hint: str | None = None   # what the Trainer itself recorded, when it did
    metrics: dict = field(default_factory=dict)  # headline metric -> [(step, value)] (HEADLINE_METRICS)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def state(self) -> str | None:
        return (self.status or {}).get("state")

    @property
    def running(self) -> bool:
        return self.state is not None and self.state not in rundir.FINAL_STATES and \
            rundir.active_pid(self.path) is not None

    @property
    def last_step(self) -> int:
        steps = [p.step for p in self.train + self.eval]
        return max(steps) if steps else 0


def _num(v) -> float | None:
    """A logged number; NaN for null / "nan" / "inf" strings (a non-finite loss is evidence, not noise)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _loss(row: dict, key: str) -> float | None:
    if key not in row:
        return None
    v = _num(row[key])
    if v is None and (row[key] is None or row.get(f"{key}_nonfinite")):
        return math.nan
    if v is not None and not math.isfinite(v):
        return math.nan
    return v


def _int(v) -> int | None:
    v = _num(v)
    return int(v) if v is not None and math.isfinite(v) else None


def _checkpoints(root: Path) -> list[tuple[int, str]]:
    return [(rundir.checkpoint_step(c), str(c)) for c in rundir.checkpoints(root)]


# ---------------------------------------------------------------- formats
# What says how well a reward model or a preference run does, where its loss alone does not (trl's key names; the
# Trainer prefixes eval_). Kept per step so the doctor can say where it started and ended.
HEADLINE_METRICS = ("accuracy", "eval_accuracy", "rewards/accuracies", "eval_rewards/accuracies",
                    "rewards/margins", "eval_rewards/margins", "margin", "eval_margin")


# A reward run (grpo, trl's names): its reward, the share of groups without signal, KL, completion length and share
# cut at max_completion_length; plus rewards/<function>/mean of each reward function (engine.insight.rewards).
REWARD_METRICS = ("reward", "reward_std", "frac_reward_zero_std", "kl", "completions/mean_length",
                  "completions/clipped_ratio")


def _add_metrics(run: Run, step: int, row: dict) -> None:
    funcs = tuple(k for k in row if k.startswith("rewards/") and k.endswith("/mean"))
    for k in HEADLINE_METRICS + REWARD_METRICS + funcs:
        v = _num(row.get(k))
        if v is not None and math.isfinite(v):
            run.metrics.setdefault(k, []).append((step, v))


def _add_points(run: Run, rows: list[dict], step_key: str, lr_key: str, tokens_key: str) -> Run:
    """Train/eval points from jsonl rows; our log and LLaMA-Factory's differ only in these key names."""
    for r in rows:
        step = _int(r.get(step_key))
        if step is None:
            continue
        common = dict(epoch=_num(r.get("epoch")), tokens=_int(r.get(tokens_key)))
        loss = _loss(r, "loss")
        if loss is not None:
            run.train.append(Point(step, loss, lr=_num(r.get(lr_key)), grad_norm=_grad(r), **common))
        ev = _loss(r, "eval_loss")
        if ev is not None:
            run.eval.append(Point(step, ev, **common))
        _add_metrics(run, step, r)
        if r.get("total_steps"):
            run.total_steps = _int(r["total_steps"])
    return run


def _from_ours(root: Path, rows: list[dict]) -> Run:
    return _add_points(Run(str(root), "tuneboard"), rows, "step", "learning_rate", "tokens_seen")


def _grad(r: dict) -> float | None:
    if "grad_norm" not in r:
        return None
    g = _num(r["grad_norm"])
    if g is None and (r["grad_norm"] is None or r.get("grad_norm_nonfinite")):
        return math.nan
    return g if g is None or math.isfinite(g) else math.nan


def _hms(v) -> float | None:
    """LLaMA-Factory writes times as str(timedelta): "0:01:05" or "1 day, 2:03:04"."""
    if isinstance(v, (int, float)):
        return float(v)
    if not isinstance(v, str):
        return None
    days = 0
    m = re.match(r"^\s*(\d+) days?, (.*)$", v)
    if m:
        days, v = int(m.group(1)), m.group(2)
    parts = v.strip().split(":")
    try:
        secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts)))
    except ValueError:
        return None
    return days * 86400 + secs


def _from_llamafactory(root: Path, rows: list[dict]) -> Run:
    run = _add_points(Run(str(root), "llamafactory"), rows, "current_steps", "lr", "total_tokens")
    last = rows[-1] if rows else {}
    pct = _num(last.get("percentage"))
    remaining = _hms(last.get("remaining_time"))
    # LLaMA-Factory writes no status file: a log that stops short of 100 % is read as not finished
    state = "finished" if (pct is not None and pct >= 100) or remaining == 0 else "unknown"
    run.status = {"state": state, "elapsed": _hms(last.get("elapsed_time")), "remaining": remaining,
                  "step": _int(last.get("current_steps")), "total_steps": run.total_steps}
    return run


def _from_hf_state(root: Path, state: dict, state_path: Path) -> Run:
    run = Run(str(root), "hf")
    for r in state.get("log_history") or []:
        step = _int(r.get("step"))
        if step is None:
            continue
        common = dict(epoch=_num(r.get("epoch")), tokens=_int(r.get("num_input_tokens_seen")))
        loss = _loss(r, "loss")
        if loss is not None:
            run.train.append(Point(step, loss, lr=_num(r.get("learning_rate")), grad_norm=_grad(r), **common))
        ev = _loss(r, "eval_loss")
        if ev is not None:
            run.eval.append(Point(step, ev, **common))
        _add_metrics(run, step, r)
    run.total_steps = _int(state.get("max_steps"))
    best = state.get("best_model_checkpoint")
    if best:
        p = Path(best)
        local = root / p.name  # the folder may have moved since training; trust the name, not the path
        run.best_checkpoint_hint = str(local) if local.is_dir() else (str(p) if p.is_dir() else None)
    done = _int(state.get("global_step"))
    run.status = {"state": "finished" if done is not None and run.total_steps and done >= run.total_steps
                  else "unknown", "step": done, "total_steps": run.total_steps, "source": str(state_path)}
    return run


def _hf_state_path(root: Path) -> Path | None:
    top = root / HF_STATE
    if top.is_file():
        return top
    found = [c / HF_STATE for c in rundir.checkpoints(root, complete_only=False) if (c / HF_STATE).is_file()]
    return found[-1] if found else None


def read_run(path: str | Path) -> Run:
    """Whatever run lives at `path` (a folder, or its trainer_log.jsonl / trainer_state.json)."""
    p = Path(path)
    if p.is_file():
        if p.name not in (rundir.LOG, HF_STATE):
            raise UserError(f"{p}: not a run folder, trainer_log.jsonl or trainer_state.json.")
        root = p.parent
    elif p.is_dir():
        root = p
    else:
        raise UserError(f"{p}: no such folder. Give a run's output_dir (it holds trainer_log.jsonl or "
                        "trainer_state.json).")
    rows = read_jsonl_objects(root / rundir.LOG)
    state_path = _hf_state_path(root)
    if rows and any("current_steps" in r for r in rows):
        run = _from_llamafactory(root, rows)
    elif rows or (root / rundir.STATUS).is_file() or ((root / rundir.CONFIG).is_file() and state_path is None):
        run = _from_ours(root, rows)
    elif state_path is not None:
        state = read_json_object(state_path)
        if not state:
            raise UserError(f"{state_path}: not readable JSON (is the run still writing it?).")
        run = _from_hf_state(root, state, state_path)
    else:
        raise UserError(f"{root}: no training log here (trainer_log.jsonl, trainer_state.json or "
                        "checkpoint-*/trainer_state.json). Point at the output_dir of a training run.")
    record = rundir.read_record(root)
    if run.format == "tuneboard":
        run.status = record.status
        if state_path is not None and not run.best_checkpoint_hint:
            st = read_json_object(state_path)
            best = st.get("best_model_checkpoint")
            if best and (root / Path(best).name).is_dir():
                run.best_checkpoint_hint = str(root / Path(best).name)
    run.config, run.stats, run.results = record.config, record.stats, record.results or None
    run.checkpoints = _checkpoints(root)
    if run.total_steps is None and run.status and run.status.get("total_steps"):
        run.total_steps = _int(run.status["total_steps"])
    run.train.sort(key=lambda q: q.step)
    run.eval.sort(key=lambda q: q.step)
    return run


def find_runs(root: str | Path, depth: int = 4) -> list[Path]:
    """Run folders under `root` (saves/), newest first: any folder with a training log or trainer state.
    Checkpoint folders are not runs of their own."""
    root = Path(root)
    out = []

    def walk(d: Path, level: int):
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return
        if (d / rundir.LOG).is_file() or (d / HF_STATE).is_file():
            out.append(d)
        if level >= depth:
            return
        for e in entries:
            if e.is_dir() and not e.name.startswith(".") and not rundir.is_checkpoint(e):
                walk(e, level + 1)

    if root.is_dir():
        walk(root, 0)

    def mtime(p: Path) -> float:
        f = p / rundir.LOG
        return (f if f.exists() else p).stat().st_mtime
    return sorted(out, key=mtime, reverse=True)

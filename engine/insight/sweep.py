"""Learning-rate sweep: K short runs at log-spaced learning rates around a centre, one after another, with
frequent evaluation; the best by eval loss is recommended.

    plan(center, k, span) -> learning rates       run_sweep(base, lrs, out, steps, eval_every) -> summary
    read_sweep(out) -> summary (live or final)     abort(out) -> stop a sweep started elsewhere

Each run is `python -m engine train <out>/recipes/<name>.yaml` in the sweep's own process group, so stopping
the group (the web UI's Abort, Ctrl-C) stops the current run at the end of its step and no further run starts.
<out>/sweep.json is rewritten after every change: the web UI and `read_sweep` read progress from it.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import procs
from ..config import changed, load_config, save_config
from ..errors import ConfigError, UserError
from ..paths import default_output_dir, run_name
from ..train import rundir
from ..utils import atomic_write_json
from .runlog import read_run
from .words import t

STATE = "sweep.json"
GRACE_S = 1.0         # after an abort, time for a group-wide signal to reach the run before we send our own
STOP_WAIT_S = 60.0    # then SIGTERM waits this long (a checkpoint is saved) before SIGKILL


def plan(center: float, k: int = 5, span: float = 2.0) -> list[float]:
    """k learning rates evenly spaced in log10 over `span` decades, centred on `center` (3 significant digits)."""
    if not center or center <= 0 or not math.isfinite(center):
        raise ConfigError(f"center: the centre learning rate must be a positive number, got {center!r}.", "center")
    if not 1 <= int(k) <= 20:
        raise ConfigError(f"k: between 1 and 20 runs, got {k}.", "k")
    if not 0 < span <= 6:
        raise ConfigError(f"span: between 0 and 6 decades, got {span}.", "span")
    k = int(k)
    if k == 1:
        return [float(f"{center:.3g}")]
    lo = math.log10(center) - span / 2
    return [float(f"{10 ** (lo + span * i / (k - 1)):.3g}") for i in range(k)]


def run_values(base: dict, lr: float, output_dir: str, steps: int, eval_every: int) -> dict:
    """One sweep run: the base recipe at this learning rate, short, evaluated often, no checkpoints."""
    v = dict(base)
    v.update(learning_rate=lr, output_dir=output_dir, max_steps=int(steps), eval_strategy="steps",
             eval_steps=int(eval_every), save_steps=10 ** 9, logging_steps=max(1, min(int(v.get("logging_steps")
                                                                                         or 5), int(eval_every))),
             plot_loss=False, overwrite_output_dir=False, resume_from_checkpoint=None,
             load_best_model_at_end=False, early_stopping_patience=None)
    if not v.get("eval_dataset") and not (v.get("val_size") or 0) > 0:
        v["val_size"] = 0.1  # a sweep without eval data cannot pick anything
    return v


def _name(i: int, lr: float) -> str:
    return f"lr{i + 1}_{lr:.3g}".replace("+", "")


def _result(out: str) -> dict:
    try:
        run = read_run(out)
    except UserError:
        return {}
    ev = [p for p in run.eval if math.isfinite(p.loss)]
    tr = [p for p in run.train if math.isfinite(p.loss)]
    diverged = any(not math.isfinite(p.loss) for p in run.train + run.eval)
    best = min(ev, key=lambda p: p.loss) if ev else None
    return {"best_eval_loss": best.loss if best else None, "best_step": best.step if best else None,
            "final_eval_loss": ev[-1].loss if ev else None, "final_train_loss": tr[-1].loss if tr else None,
            "steps": run.last_step, "diverged": diverged}


def _recommend(runs: list[dict]) -> dict | None:
    ok = [r for r in runs if r.get("best_eval_loss") is not None and not r.get("diverged")]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["best_eval_loss"])
    return {"learning_rate": best["lr"], "output_dir": best["output_dir"], "best_eval_loss": best["best_eval_loss"],
            "edge": best is runs[0] or best is runs[-1]}


class _Stop:
    def __init__(self):
        self.requested = False
        self.at = None

    def __call__(self, signum, frame):
        if not self.requested:
            self.requested, self.at = True, time.monotonic()


def run_sweep(base: dict, lrs: list[float], out: str | Path, steps: int, eval_every: int,
              on_update=None, stop: _Stop | None = None) -> dict:
    """Run the sweep in this process (one training subprocess at a time). SIGTERM / SIGINT abort it."""
    out = Path(out)
    if (out / STATE).exists():
        prev = read_sweep(out)
        if prev and prev.get("state") == "running" and _alive(prev):
            raise ConfigError(f"out: a sweep is still running in {out} (process {prev['pid']}).", "out")
        raise ConfigError(f"out: {out} already holds a sweep; choose another folder.", "out")
    (out / "recipes").mkdir(parents=True, exist_ok=True)
    for lr in lrs:  # every run's recipe is checked before the first one starts
        load_config(None, run_values(base, lr, str(out / "x"), steps, eval_every), "train")
    stop = stop or _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    state = {"state": "running", "pid": os.getpid(), "pid_create_time": procs.own_create_time(),
             "started": time.time(), "updated": time.time(),
             "steps": int(steps), "eval_every": int(eval_every), "lrs": list(lrs), "base": _public(base),
             "runs": [{"lr": lr, "name": _name(i, lr), "output_dir": str(out / _name(i, lr)), "state": "pending"}
                      for i, lr in enumerate(lrs)], "best": None}

    def save():
        state["updated"] = time.time()
        atomic_write_json(out / STATE, state)
        rundir.write_status(out, state["state"] if state["state"] != "running" else "training",
                            step=sum(r["state"] != "pending" for r in state["runs"]), total_steps=len(lrs))
        if on_update:
            on_update(state)
    save()
    try:
        for r in state["runs"]:
            if stop.requested:
                r["state"] = "skipped"
                continue
            recipe = out / "recipes" / f"{r['name']}.yaml"
            save_config(run_values(base, r["lr"], r["output_dir"], steps, eval_every), recipe)
            Path(r["output_dir"]).mkdir(parents=True, exist_ok=True)
            r["state"] = "running"
            r["started"] = time.time()
            save()
            with open(Path(r["output_dir"]) / rundir.RUNNING_LOG, "ab") as log:
                child = subprocess.Popen([sys.executable, "-m", "engine", "train", str(recipe)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                         preexec_fn=procs.preexec_die_with_parent())  # no run outlives a kill -9
            rc = _wait(child, stop)
            r["ended"] = time.time()
            r.update(_result(r["output_dir"]))
            r["returncode"] = rc
            r["state"] = "aborted" if stop.requested else ("finished" if rc == 0 else "failed")
            if r["state"] == "failed":
                st = rundir.read_status(r["output_dir"]) or {}
                r["error"] = st.get("error") or f"exit code {rc}"
            for c in rundir.checkpoints(r["output_dir"], complete_only=False):
                shutil.rmtree(c, ignore_errors=True)  # the run's final adapter stays; its checkpoints only cost disk
            state["best"] = _recommend(state["runs"])
            save()
        state["state"] = "aborted" if stop.requested else "finished"
    except BaseException:
        state["state"] = "failed"
        raise
    finally:
        state["best"] = _recommend(state["runs"])
        save()
        for s, h in old.items():
            signal.signal(s, h)
    return state


def _wait(child: subprocess.Popen, stop: _Stop) -> int:
    termed = killed = False
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if stop.requested:
            since = time.monotonic() - (stop.at or time.monotonic())
            if not termed and since >= GRACE_S:
                child.send_signal(signal.SIGTERM)  # a no-op for the run if the group signal already reached it
                termed = True
            elif termed and not killed and since >= GRACE_S + STOP_WAIT_S:
                child.kill()
                killed = True


def _public(base: dict) -> dict:
    return {k: v for k, v in changed(base).items() if k not in ("output_dir",)}


def _alive(state: dict) -> bool:
    """The sweep's driver process still runs (a zombie or a pid reused since does not count)."""
    return procs.alive(state.get("pid"), state.get("pid_create_time"))


def read_sweep(out: str | Path) -> dict | None:
    """The sweep's state; runs in progress get their live best eval loss from their logs."""
    try:
        state = json.loads((Path(out) / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if state.get("state") == "running" and not _alive(state):
        state["state"] = "failed"  # the driver died without writing its end
    for r in state.get("runs", []):
        if r.get("state") == "running":
            r.update({k: v for k, v in _result(r["output_dir"]).items() if v is not None})
    return state


def abort(out: str | Path) -> bool:
    """Stop a sweep driver that runs elsewhere (its current run saves and stops; no further run starts)."""
    state = read_sweep(out)
    if not state or state.get("state") != "running" or not _alive(state):
        return False
    os.kill(int(state["pid"]), signal.SIGTERM)
    return True


# ---------------------------------------------------------------- CLI
def default_out(base: dict) -> str:
    return default_output_dir(base["model_name_or_path"], base["finetuning_type"], run_name("sweep"))


def run_sweep_cli(recipe: str | None, overrides: list[str], opts) -> int:
    """`tuneboard doctor --sweep` (opts: parsed by engine.cli: k, center, span, steps, eval_every, out, json, lang)."""
    ns = load_config(recipe, overrides, "train")
    base = ns.values
    as_json, lang = opts.json, opts.lang
    k, span, steps = opts.k, opts.span, opts.steps
    center = base["learning_rate"] if opts.center is None else opts.center
    eval_every = max(1, steps // 6) if opts.eval_every is None else opts.eval_every
    if steps < 1 or eval_every < 1:
        raise UserError("--steps and --eval-every: whole numbers >= 1.")
    lrs = plan(center, k, span)
    out = str(opts.out or default_out(base))

    shown: set = set()

    def show(state):
        if as_json:
            return
        for r in state["runs"]:
            if r["state"] in ("finished", "failed", "aborted") and r["name"] not in shown:
                shown.add(r["name"])
                be = r.get("best_eval_loss")
                print(t("sweep_run", lang, lr=f"{r['lr']:g}", state=r["state"],
                        loss="-" if be is None else f"{be:.4f}"), flush=True)
    if not as_json:
        print(t("sweep_plan", lang, k=len(lrs), steps=steps, out=out, lrs=", ".join(f"{x:g}" for x in lrs)),
              flush=True)
    state = run_sweep(base, lrs, out, steps, eval_every, on_update=show)
    if as_json:
        print(json.dumps(state, indent=2, default=str))
    else:
        best = state.get("best")
        if best:
            print(t("sweep_recommend", lang, lr=f"{best['learning_rate']:g}", loss=f"{best['best_eval_loss']:.4f}",
                    edge=t("sweep_at_edge", lang) if best["edge"] else ""))
        else:
            print(t("sweep_no_best", lang))
    return 0 if state["state"] == "finished" else 130 if state["state"] == "aborted" else 1

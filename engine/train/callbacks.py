"""Trainer callbacks: the run's live record (trainer_log.jsonl, status.json) and graceful stop on SIGTERM."""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from . import rundir
from ..utils import get_logger

log = get_logger()

# Trainer log keys -> our names (DPO keys pass through unchanged).
_RENAME = {"train_loss": "train_loss_mean"}
_SKIP = {"total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


class RunLogCallback(TrainerCallback):
    """Writes one JSON line per log/eval event and keeps status.json's step fresh for progress bars."""

    def __init__(self, output_dir: str, resumed_step: int = 0):
        self.output_dir = Path(output_dir)
        self.start = time.time()
        self.start_step = resumed_step
        self.tokens_at_start = 0

    def on_train_begin(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        self.start = time.time()
        self.start_step = state.global_step
        self.tokens_at_start = state.num_input_tokens_seen or 0
        rundir.write_status(self.output_dir, "training", step=state.global_step, total_steps=state.max_steps)

    def _timing(self, state) -> dict:
        elapsed = time.time() - self.start
        done = state.global_step - self.start_step
        left = state.max_steps - state.global_step
        remaining = elapsed / done * left if done > 0 else None
        out = {"step": state.global_step, "total_steps": state.max_steps,
               "epoch": round(state.epoch or 0.0, 4), "elapsed": round(elapsed, 2),
               "remaining": round(remaining, 2) if remaining is not None else None,
               "percentage": round(100.0 * state.global_step / max(state.max_steps, 1), 2)}
        tokens = state.num_input_tokens_seen or 0
        if tokens:
            out["tokens_seen"] = int(tokens)
            if elapsed > 0:
                out["tokens_per_second"] = round((tokens - self.tokens_at_start) / elapsed, 2)
        return out

    def on_step_end(self, args, state, control, **kw):
        if state.is_world_process_zero:
            t = self._timing(state)
            rundir.write_status(self.output_dir, "training", step=t["step"], total_steps=t["total_steps"],
                                elapsed=t["elapsed"], remaining=t["remaining"])

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or not logs:
            return
        row = self._timing(state)
        for k, v in logs.items():
            if k in _SKIP or k == "epoch":
                continue
            if isinstance(v, float) and not math.isfinite(v):
                v = None if math.isnan(v) else str(v)  # JSON has no NaN; the doctor reads null as NaN
                row[f"{_RENAME.get(k, k)}_nonfinite"] = True
            row[_RENAME.get(k, k)] = v
        with open(self.output_dir / rundir.LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        if state.is_world_process_zero:
            rundir.write_status(self.output_dir, "training", step=state.global_step, total_steps=state.max_steps)

    def on_save(self, args, state, control, **kw):
        if state.is_world_process_zero:
            ckpt = self.output_dir / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                (ckpt / rundir.COMPLETE).write_text(str(state.global_step))


class GracefulStop(TrainerCallback):
    """SIGTERM (Abort in the UI, `kill`) -> save a checkpoint at the end of the current step, then stop."""

    HARD_EXIT_S = 3.0  # after an immediate stop, the process ends within this long whatever the libraries do

    def __init__(self, on_stop=None):
        self.requested = False
        self.trainer_running = False
        self.deferring = False
        self.on_stop = on_stop  # called once on an immediate stop (rank 0 records the abort there)
        self._previous: dict = {}
        self._exit_timer = None
        self._pid = os.getpid()

    def install(self):
        self._pid = os.getpid()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame):
        if self.deferring:  # writing the result: finish it, then stop
            log.warning("stop requested: finishing the save in progress, then stopping")
            self.requested = True
            return
        if self.requested or not self.trainer_running:
            self.requested = True
            self._stop_now()
            raise KeyboardInterrupt  # second signal, or not in the loop yet: stop now
        log.warning("stop requested: saving a checkpoint after this step, then stopping")
        self.requested = True

    def _stop_now(self):
        if self._exit_timer is not None:
            return
        if self.on_stop is not None and os.getpid() == self._pid:  # not in a forked worker that inherited this
            try:
                self.on_stop()
            except Exception:  # recording the abort must not keep the process alive
                pass
        # The KeyboardInterrupt raised next can be swallowed (raised inside a weakref callback or a __del__), or a
        # library's cleanup can wait for worker processes that the same signal ended: end the process regardless.
        self._exit_timer = threading.Timer(self.HARD_EXIT_S, os._exit, (130,))
        self._exit_timer.daemon = True
        self._exit_timer.start()

    @contextmanager
    def deferred(self):
        """Signals inside this block only ask to stop (the caller checks `requested` afterwards)."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False

    def on_train_begin(self, args, state, control, **kw):
        self.trainer_running = True

    def on_step_end(self, args, state, control, **kw):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kw):
        self.trainer_running = False

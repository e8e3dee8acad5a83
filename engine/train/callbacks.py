"""Trainer callbacks: the run's live record (trainer_log.jsonl, status.json) and graceful stop on SIGTERM."""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager, suppress
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

    def __init__(self, output_dir: str, resumed_step: int = 0, stop: "GracefulStop | None" = None,
                 on_checkpoint=None):
        self.output_dir = Path(output_dir)
        self.on_checkpoint = on_checkpoint  # called once a checkpoint is whole on disk
        self.start = time.time()
        self.start_step = resumed_step
        self.tokens_at_start = 0
        self.stop = stop

    @property
    def state_name(self) -> str:
        return rundir.ABORTING if self.stop is not None and self.stop.requested else "training"

    def on_train_begin(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        self.start = time.time()
        self.start_step = state.global_step
        self.tokens_at_start = state.num_input_tokens_seen or 0
        rundir.write_status(self.output_dir, self.state_name, step=state.global_step, total_steps=state.max_steps)

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
            rundir.write_status(self.output_dir, self.state_name, step=t["step"], total_steps=t["total_steps"],
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
            rundir.write_status(self.output_dir, self.state_name, step=state.global_step,
                                total_steps=state.max_steps)

    def on_save(self, args, state, control, **kw):
        if state.is_world_process_zero:
            ckpt = rundir.checkpoint_dir(self.output_dir, state.global_step)
            if ckpt.is_dir():
                rundir.share_results(ckpt)
                (ckpt / rundir.COMPLETE).write_text(str(state.global_step))
                if self.on_checkpoint is not None:
                    self.on_checkpoint()


class BeginCallback(TrainerCallback):
    """Runs `begin` once, when training really starts: after the data, the model and (on resume) the checkpoint
    have loaded. Until then an attempt has changed nothing of the run already in the folder."""

    def __init__(self, begin):
        self.begin = begin

    def on_train_begin(self, args, state, control, **kw):
        self.begin()


class GracefulStop(TrainerCallback):
    """SIGTERM / SIGINT (Abort in the UI, `kill`, Ctrl-C) -> save a checkpoint at the end of the current step, then
    stop. Before training starts (and after the result is written) a stop is immediate: nothing is half-done then.

    While it stops, status.json says `aborting` with `stop_by`, the time by which it expects to be done (from the
    slowest step and checkpoint save seen so far), so whoever sent the signal waits that long before SIGKILL
    rather than a fixed grace that a slow step on a busy machine outlasts."""

    HARD_EXIT_S = 3.0  # after an immediate stop, the process ends within this long whatever the libraries do
    MIN_WAIT_S = 60.0  # the least a stopping run asks for: a first step and a save on a slow, busy machine
    SAVE_GUESS_S = 30.0  # a checkpoint save, until one has been timed

    def __init__(self, on_stop=None, output_dir: str | Path | None = None):
        self.requested = False
        self.graceful = False  # in the training loop or writing its result: a signal only asks to stop
        self.saving_result = False
        self.on_stop = on_stop  # called once on an immediate stop (rank 0 records the abort there)
        self.output_dir = Path(output_dir) if output_dir is not None and _rank0() else None
        self._previous: dict = {}
        self._exit_timer = None
        self._stopping = False
        self._pid = os.getpid()
        self._step_started = None
        self._step_ended = None
        self.slowest_step = 0.0
        self.slowest_save = 0.0

    def install(self):
        self._pid = os.getpid()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame):
        if os.getpid() == self._pid and self.graceful:
            if not self.requested:
                self.requested = True  # first: the same stop may arrive again while this handler runs
                log.warning("stop requested: %s, then stopping", "finishing the save in progress"
                            if self.saving_result else "saving a checkpoint after this step")
                self.announce()
                return
            # Abort signals the group and each process, so one stop can arrive twice: keep stopping cleanly.
            # Only a second Ctrl-C, typed by someone who means it, skips the checkpoint.
            if signum != signal.SIGINT or self.saving_result:
                return
            log.warning("second Ctrl-C: stopping now, without a checkpoint of this step")
        if self._stopping:  # the same stop again (group + process): the handler already at work raises, once
            return
        self._stopping = True
        self.requested = True
        self._stop_now()
        raise KeyboardInterrupt  # not in the loop: stop now

    def wait_needed(self) -> float:
        """Seconds this run still needs to stop cleanly: the step in progress, a checkpoint save, the result."""
        now = time.monotonic()
        step = max(self.slowest_step, now - self._step_started if self._step_started else 0.0)
        save = self.slowest_save or self.SAVE_GUESS_S
        return max(self.MIN_WAIT_S, 3 * step + 3 * save)

    def announce(self) -> None:
        """status.json: `aborting`, and by when it expects to be done (rank 0)."""
        if self.output_dir is None:
            return
        try:
            rundir.write_status_soon(self.output_dir, rundir.ABORTING, stop_by=time.time() + self.wait_needed())
        except OSError:  # a full disk: the stop goes on regardless
            pass

    def _stop_now(self):
        if self._exit_timer is not None:
            return
        if self.on_stop is not None and os.getpid() == self._pid:  # not in a forked worker that inherited this
            # The same group-wide signal kills the data loader's workers, and torch's SIGCHLD handler then raises
            # "worker killed" in this thread, possibly in the middle of recording the abort: we are stopping
            # anyway, so worker deaths need no handler from here on.
            with suppress(ValueError):  # not the main thread
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for _ in range(3):  # an exception another handler raises into the write: write again
                try:
                    self.on_stop()
                    break
                except Exception:  # recording the abort must not keep the process alive
                    continue
        # The KeyboardInterrupt raised next can be swallowed (raised inside a weakref callback or a __del__), or a
        # library's cleanup can wait for worker processes that the same signal ended: end the process regardless.
        self._exit_timer = threading.Timer(self.HARD_EXIT_S, os._exit, (130,))
        self._exit_timer.daemon = True
        self._exit_timer.start()

    @contextmanager
    def saving(self):
        """Writing the run's result after training: a signal waits for it (the caller checks `requested`)."""
        self.graceful, self.saving_result = True, True
        if self.requested:
            self.announce()
        try:
            yield
        finally:
            self.graceful = self.saving_result = False

    def on_train_begin(self, args, state, control, **kw):
        self.graceful = True
        if self.requested:  # asked while the checkpoint and data loaded: stop after the first step
            self.announce()

    def on_step_begin(self, args, state, control, **kw):
        self._step_started = time.monotonic()

    def on_step_end(self, args, state, control, **kw):
        now = time.monotonic()
        if self._step_started is not None:
            self.slowest_step = max(self.slowest_step, now - self._step_started)
        self._step_started, self._step_ended = None, now
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
            self.announce()  # the step is done: what is left is the save

    def on_save(self, args, state, control, **kw):
        if self._step_ended is not None:
            self.slowest_save = max(self.slowest_save, time.monotonic() - self._step_ended)
        if self.requested:  # a checkpoint of the last finished step is on disk: no further step
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kw):
        self._step_started = None


def _rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class AfterTheLoop(TrainerCallback):
    """What the Trainer would do at the last step, left to engine.train.workflow right after train() returns, so that
    train_runtime times the training alone:
    evaluate  a run whose evaluations engine.train.best planned leaves its last one to the evaluation every run makes
              after training, as the Trainer leaves it to do_eval when it evaluates only at the end: made once;
    save      the last step's checkpoint is written by workflow.save_last_checkpoint: the same files at the same
              point of the run, before the final model (a full fine-tune's last checkpoint, weights and optimizer
              state, was 12 s of a 56 s train_runtime: bench/README.md). Not with load_best_model_at_end, which
              reads that checkpoint inside train()."""

    def __init__(self, evaluate: bool = False, save: bool = False):
        self.flags = [f for f, on in (("should_evaluate", evaluate), ("should_save", save)) if on]

    def _skip_last(self, state, control):
        if state.max_steps and state.global_step >= state.max_steps:
            for flag in self.flags:
                setattr(control, flag, False)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        return self._skip_last(state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        return self._skip_last(state, control)

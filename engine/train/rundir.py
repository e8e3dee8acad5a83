"""The files of a run directory, in one place: status, log lines, checkpoints.

The web UI and `tuneboard doctor` read the same files, so their names live here.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from .. import procs
from ..utils import atomic_write_json

STATUS = "status.json"
LOG = "trainer_log.jsonl"
RUNNING_LOG = "running.log"
CONFIG = "training_args.yaml"
STATS = "dataset_stats.json"
RESULTS = "all_results.json"
USAGE = "usage.json"  # the trainer's own CPU / memory / GPU peaks so far (engine.usage.Recorder)
COMPLETE = ".tuneboard_complete"  # written into a checkpoint once it is fully on disk
_CKPT = re.compile(r"^checkpoint-(\d+)$")
FINAL_STATES = ("finished", "failed", "aborted")


def write_status(run_dir: str | Path, state: str, **fields) -> dict:
    path = Path(run_dir) / STATUS
    old = read_status(run_dir) or {}
    now = time.time()
    # pid + its start time: a later reader tells this process from a zombie or a reused pid (active_pid)
    data = {**old, **fields, "state": state, "pid": os.getpid(), "pid_create_time": procs.own_create_time(),
            "updated": now}
    data.setdefault("started", now)
    atomic_write_json(path, data)
    return data


def read_status(output_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(output_dir) / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_log(output_dir: str | Path) -> list[dict]:
    """trainer_log.jsonl as a list; a half-written last line (a run still writing) is skipped."""
    out = []
    try:
        with open(Path(output_dir) / LOG, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out


def truncate_log(output_dir: str | Path, last_step: int) -> None:
    """On resume: drop log lines after the checkpoint's step so the curve has no duplicates."""
    path = Path(output_dir) / LOG
    if not path.exists():
        return
    keep = [json.dumps(r, ensure_ascii=False) for r in read_log(output_dir) if r.get("step", 0) <= last_step]
    from ..utils import atomic_write_text
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _is_complete(ckpt: Path) -> bool:
    if (ckpt / COMPLETE).exists():
        return True
    try:  # checkpoints written by other tools: trainer_state.json is the last file the Trainer writes
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any((ckpt / f).exists() for f in ("adapter_model.safetensors", "model.safetensors",
                                               "model.safetensors.index.json", "pytorch_model.bin",
                                               "adapter_model.bin"))


def checkpoints(output_dir: str | Path, complete_only: bool = True) -> list[Path]:
    """checkpoint-N folders sorted by N (nested one level too: output_dir/*/checkpoint-N)."""
    root = Path(output_dir)
    found = []
    for pattern in ("checkpoint-*", "*/checkpoint-*"):
        for p in root.glob(pattern):
            m = _CKPT.match(p.name)
            if m and p.is_dir() and (not complete_only or _is_complete(p)):
                found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def last_checkpoint(output_dir: str | Path) -> Path | None:
    c = checkpoints(output_dir)
    return c[-1] if c else None


def checkpoint_step(ckpt: str | Path) -> int:
    m = _CKPT.match(Path(ckpt).name)
    return int(m.group(1)) if m else 0


def holds_run(output_dir: str | Path) -> bool:
    """True if the folder has a run's results: a log, checkpoints or weights. A config file alone, or the
    status of an attempt that failed before its first step, is not a run (the user just fixes and retries)."""
    root = Path(output_dir)
    return root.is_dir() and (any((root / f).exists() for f in (LOG, RESULTS, "adapter_config.json",
                                                                 "model.safetensors"))
                              or bool(checkpoints(root, complete_only=False)))


def active_pid(output_dir: str | Path) -> int | None:
    """pid of a live process that is writing this run, if any. A killed run's pid is not one: a zombie that its
    parent has not reaped yet, or a pid reused by another process since (its start time differs), is dead."""
    st = read_status(output_dir)
    if not st or st.get("state") in FINAL_STATES or not st.get("pid") or st["pid"] == os.getpid():
        return None
    try:
        pid = int(st["pid"])
    except (TypeError, ValueError):
        return None
    # status files written before the start time was recorded: liveness by pid alone (zombies still excluded)
    return pid if procs.alive(pid, st.get("pid_create_time")) else None


def clear_run(output_dir: str | Path) -> None:
    """overwrite_output_dir: remove a previous run's outputs (only the files a run writes)."""
    root = Path(output_dir)
    for p in checkpoints(root, complete_only=False):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob("runs/*/events.out.tfevents.*"):  # report_to=tensorboard: the old curves would mix in
        p.unlink(missing_ok=True)
    for pattern in (LOG, RESULTS, STATUS, STATS, USAGE, RUNNING_LOG, "train_results.json", "eval_results.json",
                    "trainer_state.json", "adapter_config.json", "adapter_model.safetensors", "model*.safetensors",
                    "model.safetensors.index.json", "training_*.png", "README.md"):
        for p in root.glob(pattern):
            p.unlink(missing_ok=True)

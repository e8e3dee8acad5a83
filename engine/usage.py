"""What a run uses: CPU and memory of its whole process tree (psutil), each GPU's memory and utilisation.

    sample(run) -> {"cpu_percent", "rss_mb", "processes", "gpus", "peak"}   the run panel's live monitor
    Recorder(output_dir)                                                     inside the trainer: the peaks

The UI samples a run from outside each time it refreshes the progress bar; the trainer samples itself with a
Recorder so the peaks are known whether or not a page watched, and they land in the run's results
(all_results.json) beside the estimate's inputs. No torch import here: the trainer's GPU figures come from
torch only when the trainer has already imported it.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from . import devices
from .train import rundir
from .utils import atomic_write_json

RECORD_EVERY_S = 1.0
_last: dict[str, tuple[float, dict[int, float]]] = {}  # run id -> (when, {pid: cpu seconds}) of the last sample


def _psutil():
    import psutil
    return psutil


def tree(root_pid: int) -> list:
    """The live processes of a tree: the root and all its descendants."""
    psutil = _psutil()
    try:
        root = psutil.Process(root_pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def measure(procs: list, key: str | None = None) -> dict:
    """RSS summed over the processes and their CPU use (% of one core) since the last call with the same key
    (the first call: on average since each process started)."""
    psutil = _psutil()
    now = time.time()
    rss, cpu, n = 0, {}, 0
    for p in procs:
        try:
            with p.oneshot():
                if p.status() == psutil.STATUS_ZOMBIE:
                    continue
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = (t.user + t.system, p.create_time())
                n += 1
        except psutil.Error:
            continue
    prev = _last.get(key) if key else None
    if prev is not None and now > prev[0]:
        used = sum(c - prev[1].get(pid, 0.0) if pid in prev[1] else c for pid, (c, _) in cpu.items())
        pct = 100.0 * max(used, 0.0) / (now - prev[0])
    elif cpu:
        pct = 100.0 * sum(c / max(now - start, 1e-3) for c, start in cpu.values())
    else:
        pct = None
    if key:
        _last[key] = (now, {pid: c for pid, (c, _) in cpu.items()})
    return {"cpu_percent": None if pct is None else round(pct, 1), "rss_mb": round(rss / 2**20, 1),
            "processes": n}


def run_gpus(run_devices) -> list[dict]:
    """Each GPU the run may use (all of them when it picked none) with its memory and utilisation now."""
    want = devices.gpu_ids({"devices": run_devices})
    return [{"id": g.id, "name": g.name, "used_mb": g.used_mb, "total_mb": g.total_mb, "util": g.util}
            for g in devices.gpus() if not want or g.id in want]


def sample(run) -> dict:
    """The live monitor of a run (engine.runs.Run): its tree's CPU and memory, its GPUs, the peaks its trainer
    recorded so far (or kept in its results)."""
    meta = run.meta or {}
    out = measure(run.processes(), run.id)
    out["gpus"] = [] if devices.picked(meta) == [devices.CPU] else run_gpus(meta.get("devices"))
    out["peak"] = read_peaks(run.output)
    return out


def read_peaks(output_dir) -> dict:
    try:
        data = json.loads((Path(output_dir) / rundir.USAGE).read_text(encoding="utf-8"))
        return data.get("peak", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class Recorder:
    """A thread in the trainer that samples its own process tree every RECORD_EVERY_S and keeps the peaks in
    <output_dir>/usage.json; stop() returns them for the results (peak_tree_rss_mb, peak_gpu_reserved_mb).
    With publish=False it samples from the start but writes nothing until publish(): an attempt that never starts
    training must leave the folder (and a run already in it) as it was."""

    def __init__(self, output_dir, every: float = RECORD_EVERY_S, publish: bool = True):
        self.path = Path(output_dir) / rundir.USAGE
        self.every = every
        self.published = publish
        self.peak: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="usage-recorder", daemon=True)

    def start(self) -> "Recorder":
        self._thread.start()
        return self

    def record(self) -> dict:
        now = measure(tree(os.getpid()))
        self.peak["peak_tree_rss_mb"] = max(self.peak.get("peak_tree_rss_mb", 0.0), now["rss_mb"])
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            reserved = sum(torch.cuda.max_memory_reserved(i) for i in range(torch.cuda.device_count()))
            self.peak["peak_gpu_reserved_mb"] = round(reserved / 2**20, 1)
        if self.published:
            atomic_write_json(self.path, {"now": now, "peak": self.peak, "updated": time.time()})
        return self.peak

    def publish(self) -> None:
        self.published = True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.record()
            except OSError:  # a full disk must not stop training
                pass
            self._stop.wait(self.every)

    def stop(self) -> dict:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        try:
            return dict(self.record())
        except OSError:
            return dict(self.peak)

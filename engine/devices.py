"""The devices a run can use: what this machine has (each GPU with its name and free memory, the CPU with its
cores) and the environment that puts one run on the ones picked.

    detect() -> [Device]            choices() -> [(label, value)] for the UI
    check(values)                   devices / cpu_threads that this machine cannot honour -> ConfigError
    env_for(values) -> {VAR: value} the child's CUDA_VISIBLE_DEVICES / thread count (that process alone)
    apply(values)                   the same for this process (`tuneboard train` started by hand)

No torch here (the UI lists devices at start-up and every page load): GPUs are read from `nvidia-smi`, whose
indices are PCI-bus order, so a run also gets CUDA_DEVICE_ORDER=PCI_BUS_ID and CUDA numbers them the same way.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .utils import get_logger

CPU = "cpu"
SMI_TIMEOUT_S = 5.0
CACHE_S = 2.0  # nvidia-smi takes ~0.1-0.5 s: a page tick and a validation in the same second share one reading
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_QUERY = "index,name,memory.free,memory.total,memory.used,utilization.gpu"

_cache: tuple[float, list] | None = None
_cache_lock = threading.Lock()


@dataclass
class Device:
    id: str                 # "cpu" or the GPU index as nvidia-smi numbers it
    name: str
    cores: int | None = None          # CPU: logical cores this process may use
    free_mb: float | None = None      # GPU
    total_mb: float | None = None
    used_mb: float | None = None
    util: float | None = None         # GPU utilisation, %

    @property
    def is_gpu(self) -> bool:
        return self.id != CPU

    def label(self) -> str:
        if not self.is_gpu:
            return f"CPU · {self.name} · {self.cores} cores"
        return f"GPU {self.id} · {self.name} · {_gib(self.free_mb)} free of {_gib(self.total_mb)}"


def _gib(mb) -> str:
    return "?" if mb is None else f"{mb / 1024:.1f} GiB"


def _num(s: str):
    try:
        return float(s)
    except ValueError:  # "[N/A]" on some boards
        return None


def gpus(fresh: bool = False) -> list[Device]:
    """The NVIDIA GPUs `nvidia-smi` reports (none where it is missing or fails), read at most every CACHE_S."""
    global _cache
    with _cache_lock:
        if not fresh and _cache is not None and time.monotonic() - _cache[0] < CACHE_S:
            return list(_cache[1])
        smi = shutil.which("nvidia-smi")
        found: list[Device] = []
        if smi:
            try:
                out = subprocess.run([smi, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=True).stdout
            except (OSError, subprocess.SubprocessError) as e:
                get_logger().debug("nvidia-smi failed: %s", e)
                out = ""
            for line in out.splitlines():
                f = [p.strip() for p in line.split(",")]
                if len(f) == 6 and f[0].isdigit():
                    found.append(Device(f[0], f[1], free_mb=_num(f[2]), total_mb=_num(f[3]), used_mb=_num(f[4]),
                                        util=_num(f[5])))
        _cache = (time.monotonic(), found)
        return list(found)


def cpu() -> Device:
    name = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return Device(CPU, name, cores=cores)


def detect(fresh: bool = False) -> list[Device]:
    """The CPU first, then every GPU."""
    return [cpu()] + gpus(fresh)


def choices() -> list[tuple[str, str]]:
    return [(d.label(), d.id) for d in detect()]


def picked(values: dict) -> list[str]:
    """The `devices` value as a list of ids ([] = whatever the process sees, the default)."""
    v = values.get("devices") or []
    return [str(x).strip().lower() for x in (v.split(",") if isinstance(v, str) else v) if str(x).strip()]


def gpu_ids(values: dict) -> set[str]:
    return {d for d in picked(values) if d != CPU}


def check(values: dict) -> None:
    """devices: "cpu" or GPU indices of this machine, not both; cpu_threads: at most the cores there are."""
    ids = picked(values)
    bad = [d for d in ids if d != CPU and not d.isdigit()]
    if bad:
        raise ConfigError(f"devices: {bad[0]!r} is neither cpu nor a GPU index (0, 1, ...); pick from "
                          f"{', '.join(d.id for d in detect())}.", "devices")
    if CPU in ids and len(ids) > 1:
        raise ConfigError("devices: pick the CPU or GPUs, not both (a run trains on one kind of device).", "devices")
    want = gpu_ids(values)
    if want:
        have = {d.id for d in gpus()}
        missing = sorted(want - have, key=int)
        if missing:
            here = ", ".join(["cpu"] + sorted(have, key=int))
            raise ConfigError(f"devices: GPU {', '.join(missing)} is not on this machine (it has: {here}).",
                              "devices")
    n = values.get("cpu_threads")
    if n is not None:
        cores = cpu().cores or 1
        if n > cores:
            raise ConfigError(f"cpu_threads: {n} is more than the {cores} CPU cores this process may use.",
                              "cpu_threads")


def env_for(values: dict) -> dict[str, str]:
    """The environment variables that put a run on its picked devices (nothing when none were picked)."""
    env: dict[str, str] = {}
    ids = picked(values)
    if ids == [CPU]:
        env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU is visible: the trainer falls back to the CPU
    elif ids:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's numbers = nvidia-smi's
    n = values.get("cpu_threads")
    if n:
        env.update({k: str(int(n)) for k in THREAD_VARS})
    return env


def apply(values: dict) -> dict[str, str]:
    """env_for for this process, before CUDA starts (a run started by hand rather than by the UI or the queue)."""
    env = env_for(values)
    for k, v in env.items():
        if os.environ.get(k) != v:
            get_logger().info("devices: %s=%s", k, v)
            os.environ[k] = v
    n = values.get("cpu_threads")
    if n:
        if "torch" in sys.modules:  # already imported: its thread pool read the variable at import
            sys.modules["torch"].set_num_threads(int(n))
    return env

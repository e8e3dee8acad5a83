"""Small shared helpers: user-facing errors, atomic writes, logging, device facts."""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


class UserError(Exception):
    """A problem the user can fix. The CLI prints str(e) and exits 2: no traceback."""


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def get_logger(name: str = "tuneboard") -> logging.Logger:
    logger = logging.getLogger(name)
    if not logger.handlers and not logging.getLogger().handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%H:%M:%S"))
        logger.addHandler(h)
        logger.setLevel(os.environ.get("TUNEBOARD_LOG", "INFO"))
        logger.propagate = False
    return logger


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def device_info() -> dict:
    """What the trainer will run on. Imports torch: call only when a model is needed."""
    import torch
    if torch.cuda.is_available():
        return {"device": "cuda", "count": torch.cuda.device_count(), "name": torch.cuda.get_device_name(0),
                "bf16": torch.cuda.is_bf16_supported(), "fp16": True}
    return {"device": "cpu", "count": 1, "name": "cpu", "bf16": cpu_has_bf16(), "fp16": False}


def cpu_has_bf16() -> bool:
    """True where the CPU has native bf16 matmul (AVX512-BF16 / AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since it started. VmHWM, not getrusage: ru_maxrss survives
    execve, so a child forked from a big process would report its parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def human_size(n: float) -> str:
    """Bytes as people read them: 517.4 MB, 12.0 KB (decimal units, as file managers and the hubs show)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"

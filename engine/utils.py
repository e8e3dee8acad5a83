"""Small shared helpers: atomic writes, logging, device facts."""
from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any


def umask() -> int:
    """The process umask, read without changing it (os.umask can only set it, which races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_like_umask(path: str | Path) -> None:
    """Add the permissions the umask allows to a file, or a folder and everything in it: temporary files and
    folders (mkstemp, mkdtemp, safetensors' writer) start 0600/0700, and a result that only its writer can read
    is no use to a colleague or a container. Never removes a permission."""
    mask = umask()
    root = Path(path)
    items = [root] + (list(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
    for p in items:
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_symlink():
            continue
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        if st.st_mode & want != want:
            try:
                os.chmod(p, (st.st_mode & 0o7777) | want)
            except OSError:
                pass


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def clock(seconds) -> str:
    """Seconds as a clock, [h:]mm:ss; "--:--" when unknown (None, NaN, not a number)."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "--:--"
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~umask())  # mkstemp makes it 0600; a plain open() would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_jsonl_objects(path: str | Path) -> list[dict]:
    """The JSON objects of a JSON-lines file, one per line; a line that is not one (a half-written last line of a
    live writer) is skipped, a missing or unreadable file is []."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    out.append(row)
    except OSError:
        pass
    return out


def read_json_object(path: str | Path) -> dict:
    """A JSON object file's contents; {} when it is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _HeldBack(logging.Filter):
    """Keeps a library's warning out of the console, remembering it for whoever does need it."""

    def __init__(self, starts: str):
        super().__init__()
        self.starts = starts
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(self.starts):
            self.held.append(record)
            return False
        return True


# bitsandbytes (imported by peft and transformers whatever the run) warns on import that an optional 4-bit CPU
# kernel package is missing: noise for every command that does not quantize. engine.models.quantize shows it
# when quantization is asked for.
BNB_KERNELS = _HeldBack("Failed to load CPU gemm_4bit_forward")
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(BNB_KERNELS)


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def human_size(n: float) -> str:
    """Bytes as people read them: 517.4 MB, 12.0 KB (decimal units, as file managers and the hubs show)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"

"""Where runs go and which folders a path typed into the web UI may point at (the ground floor: no project imports
but errors and utils).

saves_root is TUNEBOARD_SAVES_DIR, else ./saves; a run without an output_dir goes to
<saves>/<model>/<method>/<prefix>_<time> (default_output_dir), from the CLI and the web UI alike.

The UI can be served to other machines (--host, --share), so a path it accepts is refused unless it resolves
(`..` and symlinks followed) inside the data, saves or models root, or the shipped examples for reading.
TUNEBOARD_ROOTS (folders separated by os.pathsep) adds more roots. The CLI and recipes are not confined:
whoever runs a command already owns the machine.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .errors import ConfigError
from .utils import repo_root

SAVES_ENV = "TUNEBOARD_SAVES_DIR"
ROOTS_ENV = "TUNEBOARD_ROOTS"
READ, WRITE = "read", "write"
PATH_ARGS = {"model_name_or_path": READ, "adapter_name_or_path": READ, "dataset_dir": READ, "deepspeed": READ,
             "resume_from_checkpoint": READ, "output_dir": WRITE, "export_dir": WRITE,
             "reward_funcs": READ}  # a GRPO reward of the user's own: path/to/file.py:function (its code runs)
_LAST = {"true", "last", "latest", "yes"}  # resume_from_checkpoint values that are not paths


def saves_root(saves: str | Path | None = None) -> Path:
    return Path(saves or os.environ.get(SAVES_ENV) or "saves")


def model_dir_name(model: str | None) -> str:
    return Path(str(model or "model").rstrip("/")).name or "model"


def run_name(prefix: str = "train") -> str:
    """A new run's folder name: the prefix and the time, e.g. train_2026-12-05-06-30-00."""
    return f"{prefix}_{time.strftime('%Y-%m-%d-%H-%M-%S')}"


def default_output_dir(model: str | None, method: str, name: str | None = None,
                       saves: str | Path | None = None) -> str:
    """<saves>/<model folder name>/<method>/<name> (name: run_name() when not given)."""
    return str(saves_root(saves) / model_dir_name(model) / method / (name or run_name()))


def resolve_output_dir(value: str | None, model: str, method: str, saves: str | Path | None = None) -> str | None:
    """A bare name (no path separator) lives under <saves>/<model>/<method>/, as in the UI's output-dir box."""
    if not value or not str(value).strip():
        return None
    v = str(value).strip()
    if os.sep in v or "/" in v:
        return v
    return default_output_dir(model, method, v, saves)


def roots(mode: str = READ, saves: str | Path | None = None) -> list[Path]:
    repo = repo_root()
    found = [Path("data"), repo / "data", saves_root(saves), Path("models"), repo / "models"]
    if mode == READ:
        found.append(repo / "examples")
    found += [Path(p) for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for r in found:
        r = r.expanduser().resolve()
        if r not in out:
            out.append(r)
    return out


def inside(path: str | Path, allowed: list[Path]) -> bool:
    p = Path(path).expanduser().resolve()
    return any(p == r or r in p.parents for r in allowed)


def _is_path(field: str, value: str) -> bool:
    """False for values that name something rather than point at it: a registry name or hub id
    (model_name_or_path, resolved into models/ or the hub cache) and resume_from_checkpoint=true."""
    if field == "resume_from_checkpoint" and value.strip().lower() in _LAST:
        return False
    if field == "reward_funcs":  # a preset name, or path/to/file.py:function
        return ".py:" in value
    if field == "model_name_or_path":
        looks_like_path = value.startswith(("/", ".", "~")) or ".." in Path(value).parts or "\\" in value
        return looks_like_path or Path(value).exists()
    return True


def confine(value: str, field: str, mode: str = READ, saves: str | Path | None = None) -> str:
    """`value` when it may be used; ConfigError naming the field when it points outside the allowed roots."""
    if value is None or not str(value).strip() or not _is_path(field, str(value)):
        return value
    allowed = roots(mode, saves)
    path = str(value).rpartition(":")[0] if field == "reward_funcs" else str(value)
    if inside(path, allowed):
        return value
    cwd = Path.cwd().resolve()
    shown = ", ".join(str(r.relative_to(cwd)) if r.is_relative_to(cwd) else str(r) for r in allowed)
    what = "write to" if mode == WRITE else "read"
    raise ConfigError(f"{field}: {value} is outside the folders the web UI may {what} ({shown}); use a path "
                      f"inside them, or start the UI with {ROOTS_ENV}=<folder> to allow another one.", field)


def check_values(values: dict, saves: str | Path | None = None) -> dict[str, str]:
    """{field: message} for every path argument in `values` that points outside the allowed roots."""
    errors = {}
    for field, mode in PATH_ARGS.items():
        v = values.get(field)
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            if item is None:
                continue
            try:
                confine(str(item), field, mode, saves)
            except ConfigError as e:
                errors[field] = str(e)
                break
    return errors


def unwritable_folder(value: str | Path) -> str | None:
    """Why a folder that a command will create or write into cannot be: it is a file, a part of its path is a
    file, or the nearest existing folder above it is not writable (permissions, a read-only file system).
    None when it can be written. Looks only, creates nothing."""
    p = Path(value).expanduser()
    try:
        if p.exists() and not p.is_dir():
            return f"{p} is a file, not a folder"
        probe = p
        while True:
            try:
                probe.stat()
                break
            except (FileNotFoundError, NotADirectoryError):
                if probe.parent == probe:
                    return None
                probe = probe.parent
        if not probe.is_dir():
            return f"{p} cannot be created: {probe} is a file, not a folder"
        if not os.access(probe, os.W_OK | os.X_OK):
            why = "a read-only file system" if _read_only(probe) else "no write permission for this user"
            return f"{probe} is not writable ({why}), so {p} cannot be written" if probe != p else \
                f"{p} is not writable ({why})"
    except PermissionError:
        return f"{p} cannot be reached: a folder on its path is not readable by this user"
    except OSError as e:
        return f"{p} cannot be used: {e.strerror or e}"
    return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False

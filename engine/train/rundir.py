"""The files of a run directory, in one place: status, log lines, checkpoints, the run's record, and who may write
them.

The web UI, `tuneboard doctor`, eval and export read the same files, so their names live here (no other module
spells one: tests/test_owners.py), and so does the one reader of a run's record. So do the rules that keep
a run safe: one writer per folder (an exclusive lock), a replaced run set aside until the new one has a
checkpoint, a checkpoint verified before a resume trusts it, and what to say when the disk is full.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
import zipfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from .. import procs
from ..errors import ConfigError
from ..utils import (atomic_write_json, atomic_write_text, human_bytes, read_json_object, read_jsonl_objects,
                     share_like_umask)

STATUS = "status.json"
LOG = "trainer_log.jsonl"
RUNNING_LOG = "running.log"
CONFIG = "training_args.yaml"
STATS = "dataset_stats.json"
RESULTS = "all_results.json"
COMPLETIONS = "completions.jsonl"  # reward runs (grpo): a few prompts with their sampled completions, per log step
USAGE = "usage.json"  # the trainer's own CPU / memory / GPU peaks so far (engine.usage.Recorder)
COMPLETE = ".tuneboard_complete"  # written into a checkpoint once it is fully on disk
PISSA_INIT = "pissa_init"  # PiSSA's initial adapter, kept until the trained one is converted
REPLACED = ".tuneboard_replaced"  # overwrite_output_dir: the previous run, kept until the new one has a checkpoint
EVAL_CONFIG = "eval_args.yaml"  # an evaluation's folder (tuneboard eval): its arguments, predictions and scores
PREDICTIONS = "generated_predictions.jsonl"
EVAL_RESULTS = "predict_results.json"
EXPORT_CONFIG = "export_args.yaml"  # an export started from the web UI: its arguments
CHECKPOINT_PREFIX = "checkpoint-"  # + the step: the Trainer's name for a checkpoint folder
_CKPT = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
# The same record (a run's arguments) under the names other tools, or the Train tab's Save, give it
_OTHER_CONFIGS = ("training_config.yaml", "train_config.yaml")
FINAL_STATES = ("finished", "failed", "aborted")
ABORTING = "aborting"  # status.json while a stopped run finishes its step and saves (with stop_by: a deadline)

# Everything else a run writes at the top of its folder (the Trainer's, peft's and the tokenizer's files, our
# plots, tensorboard's events, PiSSA's initial adapter). Only these move when a run is replaced: a user's own
# files and other runs' folders stay where they are.
_OWN_NAMES = {STATUS, LOG, CONFIG, STATS, RESULTS, USAGE, COMPLETIONS, "train_results.json", "eval_results.json",
              "trainer_state.json", "training_args.bin", "README.md", "adapter_config.json", "adapter_model.safetensors",
              "adapter_model.bin", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json", "config.json", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt",
              "tokenizer.model", "added_tokens.json", "runs", PISSA_INIT}
_OWN_PATTERNS = (re.compile(r"^model-\d+-of-\d+\.safetensors$"), re.compile(r"^pytorch_model-\d+-of-\d+\.bin$"),
                 re.compile(r"^training_.*\.png$"), _CKPT)
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "adapter_model.bin")


# ---------------------------------------------------------------- status and log
_writing = []  # a status write in progress in this process (a signal handler may run in the middle of it)
_after_write: list = []


def write_status(run_dir: str | Path, state: str, **fields) -> dict:
    path = Path(run_dir) / STATUS
    _writing.append(path)
    try:
        old = read_status(run_dir) or {}
        now = time.time()
        # pid + its start time: a later reader tells this process from a zombie or a reused pid (active_pid)
        data = {**old, **fields, "state": state, "pid": os.getpid(), "pid_create_time": procs.own_create_time(),
                "updated": now}
        data.setdefault("started", now)
        atomic_write_json(path, data)
    finally:
        _writing.pop()
    while _after_write and not _writing:
        _after_write.pop(0)()
    return data


def write_status_soon(run_dir: str | Path, state: str, **fields) -> None:
    """write_status from a signal handler: if it interrupted a status write of this process, after that write
    (else the interrupted write, finishing, would put back what it read before)."""
    if _writing:
        _after_write.append(lambda: write_status(run_dir, state, **fields))
    else:
        write_status(run_dir, state, **fields)


def status_file(output_dir: str | Path) -> Path:
    return Path(output_dir) / STATUS


def log_file(output_dir: str | Path) -> Path:
    return Path(output_dir) / LOG


def read_status(output_dir: str | Path) -> dict | None:
    try:
        data = json.loads((Path(output_dir) / STATUS).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def status_bytes(output_dir: str | Path) -> bytes | None:
    """status.json as it is now, to put back if the attempt that is starting never trains."""
    try:
        return (Path(output_dir) / STATUS).read_bytes()
    except OSError:
        return None


def put_status_back(output_dir: str | Path, data: bytes) -> None:
    atomic_write_text(Path(output_dir) / STATUS, data.decode("utf-8", errors="replace"))


def mark_ended(output_dir: str | Path, state: str, error: str) -> bool:
    """Record the end of a run whose process can no longer do it (killed after its grace period): only when
    status.json still says it is going and the process it names is gone. True if written."""
    st = read_status(output_dir)
    if not st or st.get("state") in FINAL_STATES or procs.alive(st.get("pid"), st.get("pid_create_time")):
        return False
    st.update(state=state, error=error, updated=time.time(), ended=time.time())
    atomic_write_json(Path(output_dir) / STATUS, st)
    return True


def read_log(output_dir: str | Path) -> list[dict]:
    """trainer_log.jsonl as a list; a half-written last line (a run still writing) is skipped."""
    return read_jsonl_objects(Path(output_dir) / LOG)


def truncate_log(output_dir: str | Path, last_step: int) -> None:
    """On resume: drop log lines (and logged completions) after the checkpoint's step so nothing is there twice."""
    for name in (LOG, COMPLETIONS):
        path = Path(output_dir) / name
        if not path.exists():
            continue
        keep = [json.dumps(r, ensure_ascii=False) for r in read_jsonl_objects(path) if r.get("step", 0) <= last_step]
        atomic_write_text(path, "".join(line + "\n" for line in keep))


def read_completions(output_dir: str | Path, max_bytes: int = 1_000_000) -> dict | None:
    """The last completions table a reward run logged: {"step", "rows": [{"prompt", "completion", "rewards",
    "advantage"}]}; None when there is none. Reads only the end of the file."""
    try:
        with open(Path(output_dir) / COMPLETIONS, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("rows"), list):
            return entry
    return None


def mean_train_loss(rows: list[dict], upto: int) -> tuple[float, int] | None:
    """(sum of the per-step training losses of steps 1..upto, steps covered) from logged rows. A logged loss is
    the mean over the steps since the previous log line; steps after the last line count at its mean."""
    total, prev = 0.0, 0
    last = None
    for r in sorted((r for r in rows if isinstance(r.get("loss"), (int, float)) and 0 < r.get("step", 0) <= upto),
                    key=lambda r: r["step"]):
        total += r["loss"] * (r["step"] - prev)
        prev, last = r["step"], r["loss"]
    if last is None:
        return None
    return total + last * (upto - prev), upto


# ---------------------------------------------------------------- checkpoints
def _is_complete(ckpt: Path) -> bool:
    if (ckpt / COMPLETE).exists():
        return True
    try:  # checkpoints written by other tools: trainer_state.json is the last file the Trainer writes
        json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return any((ckpt / f).exists() for f in _WEIGHTS)


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    """Where the Trainer saves the checkpoint of `step`."""
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}{step}"


def is_checkpoint(path: str | Path) -> bool:
    return bool(_CKPT.match(Path(path).name))


def checkpoints(output_dir: str | Path, complete_only: bool = True) -> list[Path]:
    """checkpoint-N folders sorted by N (nested one level too: output_dir/*/checkpoint-N, not in hidden folders
    such as a replaced run set aside)."""
    root = Path(output_dir)
    found = []
    for pattern in (f"{CHECKPOINT_PREFIX}*", f"*/{CHECKPOINT_PREFIX}*"):
        for p in root.glob(pattern):
            m = _CKPT.match(p.name)
            if p.parent != root and p.parent.name.startswith("."):
                continue
            if m and p.is_dir() and (not complete_only or _is_complete(p)):
                found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def last_checkpoint(output_dir: str | Path) -> Path | None:
    c = checkpoints(output_dir)
    return c[-1] if c else None


def checkpoint_step(ckpt: str | Path) -> int:
    m = _CKPT.match(Path(ckpt).name)
    return int(m.group(1)) if m else 0


def checkpoint_problem(ckpt: str | Path) -> str | None:
    """Why a checkpoint cannot be resumed from (a file cut short or garbled), or None when it reads whole:
    trainer_state.json parses, every safetensors file's header covers the file, every torch file's zip index
    is there. Reads headers only (milliseconds), not the weights."""
    ckpt = Path(ckpt)
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
            return "trainer_state.json has no global_step"
    except FileNotFoundError:
        return "trainer_state.json is missing"
    except (OSError, ValueError) as e:
        return f"trainer_state.json cannot be read ({type(e).__name__}: {str(e)[:80]})"
    files = [p for p in sorted(ckpt.rglob("*")) if p.is_file()]
    if not any(p.name in _WEIGHTS or p.suffix == ".safetensors" for p in files):
        return "it holds no weights"
    for p in files:
        name = p.relative_to(ckpt)
        if p.suffix == ".safetensors":
            from safetensors import safe_open
            try:
                with safe_open(str(p), "pt"):
                    pass
            except Exception as e:  # SafetensorError: the header does not cover the file, or is not JSON
                return f"{name} cannot be read ({str(e)[:100]})"
        elif p.suffix in (".pt", ".pth", ".bin"):
            try:
                with open(p, "rb") as f:
                    head = f.read(2)
                if not head:
                    return f"{name} is empty"
                if head == b"PK":  # torch.save's zip format: the index at the end is gone when the file is cut
                    zipfile.ZipFile(p).close()
            except (OSError, zipfile.BadZipFile) as e:
                return f"{name} cannot be read ({str(e)[:100]})"
    return None


def last_good_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint that reads whole, and the newer ones passed over with what is wrong."""
    skipped = []
    for c in reversed(checkpoints(output_dir)):
        problem = checkpoint_problem(c)
        if problem is None:
            return c, skipped
        skipped.append((c, problem))
    return None, skipped


# ---------------------------------------------------------------- what a folder holds
def run_evidence(output_dir: str | Path) -> str | None:
    """What shows that the folder holds a run's results: the name of its log, its results, its weights or a
    checkpoint folder; None when there is none. A config file alone, or the status of an attempt that failed
    before its first step, is not a run (the user just fixes and retries)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    for name in (LOG, RESULTS, "adapter_config.json", "model.safetensors"):
        if (root / name).exists():
            return name
    found = checkpoints(root, complete_only=False)
    return str(found[-1].relative_to(root)) if found else None


def holds_run(output_dir: str | Path) -> bool:
    """True if the folder has a run's results (run_evidence)."""
    return run_evidence(output_dir) is not None


# ---------------------------------------------------------------- a run's record
@dataclass(frozen=True)
class Record:
    """What a run folder says about its run: the arguments it trained with (training_args.yaml), its final metrics
    (all_results.json), its status and its data's stats; {} / None for what is missing or unreadable."""
    folder: Path
    config: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    status: dict | None = None
    stats: dict | None = None
    config_file: Path | None = None
    results_file: Path | None = None


def _yaml_object(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        return {}
    return data if isinstance(data, dict) else {}


def read_record(output_dir: str | Path) -> Record:
    """The record in this folder (nothing found is an empty one)."""
    root = Path(output_dir)
    config_file = next((root / n for n in (CONFIG, *_OTHER_CONFIGS) if (root / n).is_file()), None)
    results_file = root / RESULTS if (root / RESULTS).is_file() else None
    return Record(root, _yaml_object(config_file), read_json_object(results_file) if results_file else {},
                  read_status(root), read_json_object(root / STATS) or None, config_file, results_file)


def record_of(path: str | Path) -> Record | None:
    """The record of the run that wrote `path` (an adapter or model folder): in the folder itself, else one level
    up (the run folder of a checkpoint-N); None when neither has a config or results."""
    for folder in (Path(path), Path(path).parent):
        rec = read_record(folder)
        if rec.config or rec.results:
            return rec
    return None


def _own(name: str) -> bool:
    return name in _OWN_NAMES or any(p.match(name) for p in _OWN_PATTERNS)


def own_files(output_dir: str | Path) -> list[Path]:
    """The files and folders at the top of output_dir that a run wrote (its console log aside)."""
    root = Path(output_dir)
    try:
        return sorted(p for p in root.iterdir() if _own(p.name))
    except OSError:
        return []


def other_runs(output_dir: str | Path) -> list[Path]:
    """Sub-folders that hold runs of their own (output_dir is a folder of runs, such as saves/<model>/<method>)."""
    root = Path(output_dir)
    try:
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and not _own(p.name))
    except OSError:
        return []
    return [p for p in subs if holds_run(p)]


def refuse_to_write(output_dir: str | Path, overwrite: bool) -> None:
    """ConfigError when a run may not start in output_dir without resuming: it holds another run (and overwrite
    was not asked), or it holds other runs' folders (overwrite only ever replaces one run's own files)."""
    out = Path(output_dir)
    if not holds_run(out):
        return
    others = other_runs(out)
    names = ", ".join(p.name for p in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    own = bool([p for p in own_files(out) if p.name != STATUS])
    if others and (overwrite or not own):
        what = ("overwrite_output_dir replaces one run's own files and never other runs" if overwrite else
                "a new run would mix with them")
        raise ConfigError(f"output_dir: {out} is a folder of runs ({names}); {what}. Give the new run a folder of "
                          f"its own, for example {out / 'train_2'}, or set output_dir to one of those runs' folders "
                          f"to resume or replace that run.", "output_dir")
    if not overwrite:
        last = last_checkpoint(out)
        last = last if last is not None and last.parent == out else None
        hint = f" To continue it: resume_from_checkpoint=true (last checkpoint: {last.name})." if last else ""
        raise ConfigError(f"output_dir: {out} already holds another run. Choose a new output_dir, or set "
                          f"overwrite_output_dir=true to replace it.{hint}", "output_dir")


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


# ---------------------------------------------------------------- one writer per folder
class FolderBusy(ConfigError):
    """Another process holds the run folder's lock."""


_HELD: dict[str, list] = {}  # real path -> [fd, depth]: this process's locks (reentrant: the CLI, then run())


def _busy(out: Path) -> FolderBusy:
    pid = active_pid(out)
    who = f" (process {pid})" if pid else ""
    return FolderBusy(f"output_dir: another run is writing to {out} right now{who}; wait for it to end or abort "
                      f"it, or choose another output_dir.", "output_dir")


@contextmanager
def lock(output_dir: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on the run folder (flock on the folder itself, created if needed) for the block:
    a second writer is refused with FolderBusy instead of mixing its steps into this run. The kernel drops the
    lock when the process ends, however it ends, so a killed run never leaves the folder locked."""
    out = Path(output_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(out)
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
        try:
            yield out
        finally:
            held[1] -= 1
        return
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # close-on-exec: programs started later do not hold it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy(out) from None
    _HELD[key] = [fd, 1]
    try:
        yield out
    finally:
        _HELD.pop(key, None)
        if created:  # a run refused before it wrote anything leaves no empty folder behind
            with suppress(OSError):
                out.rmdir()
        fcntl.flock(fd, fcntl.LOCK_UN)  # for forked helpers that share the open file too
        os.close(fd)


def check_free(output_dir: str | Path) -> None:
    """FolderBusy if another process holds the folder's lock now (a look, not a hold: the web UI asks before it
    starts a run, which then takes the lock itself)."""
    out = Path(output_dir)
    if not out.is_dir() or os.path.realpath(out) in _HELD:
        return
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(out) from None
    finally:
        os.close(fd)  # closing drops the lock if we got it


# ---------------------------------------------------------------- replacing a run (overwrite_output_dir)
def set_aside(output_dir: str | Path, old_status: bytes | None) -> None:
    """Move the previous run's own files into REPLACED (one rename each, same file system), so the new run starts
    in a clean folder and the old one can come back if the new one never gets a checkpoint. `old_status` is the
    previous run's status.json (the file itself now belongs to the attempt that is starting)."""
    root = Path(output_dir)
    aside = root / REPLACED
    aside.mkdir(exist_ok=True)
    for p in own_files(root):
        if p.name != STATUS:
            os.replace(p, aside / p.name)
    if old_status is not None:
        (aside / STATUS).write_bytes(old_status)
    (aside / COMPLETE).write_text("")  # all of it is here: what is at the top from now on is the new run's


def drop_replaced(output_dir: str | Path) -> bool:
    """The new run has a checkpoint (or finished): the replaced run goes for good. True if there was one."""
    aside = Path(output_dir) / REPLACED
    if not aside.is_dir():
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def restore_replaced(output_dir: str | Path) -> bool:
    """The new run ended without a checkpoint: remove what it wrote and put the replaced run back as it was. If
    setting aside was cut short (no marker), the files at the top are still the old run's: they stay."""
    root = Path(output_dir)
    aside = root / REPLACED
    if not aside.is_dir():
        return False
    if (aside / COMPLETE).exists():
        for p in own_files(root):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        (aside / COMPLETE).unlink()
    for p in aside.iterdir():
        os.replace(p, root / p.name)
    aside.rmdir()
    return True


_TMP = re.compile(r"^\.(.+)\.[A-Za-z0-9_]+\.tmp$")  # utils.atomic_write_text's temporary file for <name>


def drop_stale_temporaries(output_dir: str | Path) -> list[str]:
    """Temporary files of atomic writes that a killed process left behind (a kill -9 between the write and the
    rename). Call with the folder's lock held: no other process is writing them."""
    gone = []
    try:
        for p in Path(output_dir).iterdir():
            m = _TMP.match(p.name)
            if m and _own(m.group(1)) and p.is_file():
                p.unlink(missing_ok=True)
                gone.append(p.name)
    except OSError:
        pass
    return gone


def recover(output_dir: str | Path) -> str | None:
    """What a kill -9 left half-done, put right before a new attempt (call with the folder's lock held):
    temporary files of interrupted writes go; a replace is finished if the new run had a whole checkpoint, else
    undone. Returns what was done to the replaced run, for the log."""
    root = Path(output_dir)
    drop_stale_temporaries(root)
    if not (root / REPLACED).is_dir():
        return None
    new_run = (root / REPLACED / COMPLETE).exists()  # else the kill came while the old run was being moved
    if new_run and (any(c.parent == root for c in checkpoints(root)) or (root / RESULTS).exists()):
        drop_replaced(root)
        return f"{root}: removed the run that an earlier overwrite replaced (the new run has a checkpoint)"
    restore_replaced(root)
    return f"{root}: put back the run that an earlier overwrite was replacing (the new run stopped before its " \
           f"first checkpoint)"


# ---------------------------------------------------------------- disk full
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def is_disk_full(e: BaseException, output_dir: str | Path) -> bool:
    """The error (or one it came from) is a write that found no space: ENOSPC/EDQUOT, the same from Rust
    (safetensors: "os error 28"), or torch.save's "file write failed" on a file system that is full."""
    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in _NO_SPACE:
            return True
        text = str(x)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        if "file write failed" in text or "PytorchStreamWriter failed" in text:
            return free_bytes(output_dir) < 16 << 20
    return False


def free_bytes(path: str | Path) -> int:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 0


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def drop_partial_checkpoints(output_dir: str | Path) -> list[str]:
    """Remove this run's checkpoint folders that never became whole (newer than its last whole one): they cannot
    be resumed from and, after a full disk, hold the space the run's status needs. Returns their names."""
    root = Path(output_dir)
    whole = {c for c in checkpoints(root) if c.parent == root}
    last = max((checkpoint_step(c) for c in whole), default=0)
    gone = []
    for c in checkpoints(root, complete_only=False):
        if c.parent == root and c not in whole and checkpoint_step(c) > last:
            shutil.rmtree(c, ignore_errors=True)
            gone.append(c.name)
    return gone


def disk_full_message(output_dir: str | Path, needed: int | None, dropped: list[str] = ()) -> str:
    """One message for a full disk: which folder, how much a checkpoint needs, what can be freed, how to go on."""
    root = Path(output_dir)
    own = [c for c in checkpoints(root) if c.parent == root]
    sizes = {c: _size(c) for c in own}
    need = sizes[own[-1]] if own else (needed or 0)  # a real checkpoint of this run says it best
    free = free_bytes(root)
    parts = [f"disk full: no space left on the file system of {root} ({human_bytes(free)} free now)"
             + (f"; the checkpoint being written ({', '.join(dropped)}) was incomplete and has been removed."
                if dropped else ".")]
    if need:
        parts.append(f"A checkpoint of this run takes about {human_bytes(need)}: free at least "
                     f"{human_bytes(max(need - free, 0) + need // 10)} there")
    else:
        parts.append("Free some space there")
    older = own[:-1]
    if older:
        parts[-1] += (f" — the older checkpoints {', '.join(c.name for c in older)} take "
                      f"{human_bytes(sum(sizes[c] for c in older))} (save_total_limit keeps only the newest ones)")
    parts[-1] += ", or choose an output_dir on a disk with room."
    if own:
        parts.append(f"{own[-1].name} is whole: run the same command with resume_from_checkpoint=true to continue "
                     f"from step {checkpoint_step(own[-1])}.")
    else:
        parts.append("No whole checkpoint was written: run it again once there is room.")
    return " ".join(parts)


class Attempt:
    """One `train` in a run folder, on rank 0, from the lock to its end. Until training really starts (begin: the
    data, the model and the checkpoint have loaded) it changes nothing of the run already there: writes that
    would (the config, the data stats, a replaced run set aside, a resumed log cut back) wait in `deferred`, and
    status.json, which shows the attempt's progress meanwhile, is put back as it was if it ends before that.
    A replaced run stays set aside until the new run has a whole checkpoint or its result, and comes back if it
    ends without one."""

    def __init__(self, output_dir: str | Path, resume: str | None = None, replacing: bool = False,
                 set_aside_too: list[Path] = ()):
        self.out = Path(output_dir)
        self.resume = resume
        self.replacing = replacing
        self.damaged = list(set_aside_too)  # checkpoints a resume passed over: renamed, never trusted again
        self.protecting = holds_run(self.out)  # a run is already in the folder
        self.old_status = status_bytes(self.out) if self.protecting else None
        self.began = False
        self.ended = False
        self.deferred: list = []
        self.checkpoint_bytes: int | None = None  # what one checkpoint takes, for a disk-full message

    def write(self, fn) -> None:
        """A write into the run folder: now if the folder holds no run to protect, else once training starts."""
        if self.began or not self.protecting:
            fn()
        else:
            self.deferred.append(fn)

    def start(self) -> None:
        write_status(self.out, "starting", started=time.time(), step=0, total_steps=None, error=None, ended=None,
                     stop_by=None, output_dir=str(self.out))

    def begin(self) -> None:
        if self.began:
            return
        if self.replacing:
            set_aside(self.out, self.old_status)
        self.began = True  # from here on the folder is this run's: an end records its state
        if self.resume:
            truncate_log(self.out, checkpoint_step(self.resume))
        for c in self.damaged:
            target = c.with_name(f"{c.name}.damaged")
            if c.is_dir() and not target.exists():
                os.replace(c, target)
        for write in self.deferred:
            write()

    def saved(self) -> bool:
        """A whole checkpoint or the final result is on disk: the replaced run can go. True if it went now."""
        gone = self.replacing and drop_replaced(self.out)
        self.replacing = False
        return gone

    def end(self, state: str, error: str | None) -> str | None:
        """The attempt failed or was stopped. Returns a note for the log when an earlier state came back."""
        if self.ended:
            return None
        note = self._record_end(state, error)
        self.ended = True  # only once it is written: an exception that cut the write short lets a caller retry
        return note

    def _record_end(self, state: str, error: str | None) -> str | None:
        try:
            if self.replacing and restore_replaced(self.out):  # no checkpoint of the new run: the old one is back
                if self.old_status is not None:
                    put_status_back(self.out, self.old_status)
                return f"the new run ended before its first checkpoint: the run it was replacing is back in {self.out}"
            if not self.began and self.old_status is not None:
                put_status_back(self.out, self.old_status)
                return f"nothing in {self.out} was changed"
            write_status(self.out, state, error=error, ended=time.time())
        except OSError:  # no room for a new file: rewrite status.json in place, which frees its blocks first
            data = {**(read_status(self.out) or {}), "state": state, "error": error, "pid": os.getpid(),
                    "updated": time.time(), "ended": time.time()}
            try:
                with open(self.out / STATUS, "w", encoding="utf-8") as f:
                    f.write(json.dumps(data, ensure_ascii=False))
            except OSError:
                pass  # the caller still raises the error: the console and the web UI show it
        return None


def share_results(*paths: str | Path) -> None:
    """Give what the run wrote the permissions the umask allows (libraries write some files 0600)."""
    for p in paths:
        share_like_umask(p)

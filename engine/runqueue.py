"""The run queue: training runs waiting for their turn, on disk beside the run registry, shared by the web UI
and `tuneboard queue`.

    add(values) -> item         items() -> [item]          cancel(id)          move(id, to)
    ensure_runner() -> started?                            run_queue()  (the runner itself)

<saves>/.tuneboard_runs/queue.json holds the items in order; every change is a read-modify-write under a file
lock (queue.lock), so the UI and the CLI never lose each other's edits. One runner at a time works through it:
a background process (`python -m engine queue run`) that holds queue.runner.lock while it lives, started by
whoever queues a run when none is running, and by the UI at start-up when the queue holds work. The runs it
starts are ordinary runs (engine.runs): killing the UI leaves the runner going; killing the runner leaves the
run going, and the next runner follows it to its end before starting the next. A run is validated when its
turn comes: one that fails then is skipped with its reason and the next one starts.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from . import devices, paths, runs
from .args import BY_NAME
from .config import changed, load_config, parse_overrides, read_yaml
from .errors import ConfigError
from .utils import atomic_write_json, get_logger
from .errors import UserError

STATE, LOCK, RUNNER_LOCK, RUNNER_LOG = "queue.json", "queue.lock", "queue.runner.lock", "queue.runner.log"
QUEUED, RUNNING, SKIPPED, CANCELLED = "queued", "running", "skipped", "cancelled"
WAITING = (QUEUED, RUNNING)  # an item in these states still needs the runner
POLL_S = 1.0
COMMAND = "train"  # what a queued run runs (the queue stores the command, so others can follow)


def _dir(saves=None) -> Path:
    return paths.saves_root(saves) / runs.REGISTRY


@contextmanager
def _locked(saves=None) -> Iterator[dict]:
    """The queue's state, read under the lock; written back (atomically) when the block ends without error."""
    d = _dir(saves)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / LOCK, "w") as lf:
        fcntl.flock(lf, fcntl.LOCK_EX)
        try:
            state = _read(saves)
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                atomic_write_json(d / STATE, state)
        finally:
            fcntl.flock(lf, fcntl.LOCK_UN)


def _read(saves=None) -> dict:
    try:
        data = json.loads((_dir(saves) / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"items": []}
    except (OSError, ValueError) as e:
        raise UserError(f"{_dir(saves) / STATE}: the queue file is unreadable ({e}); move it away to start an "
                        "empty queue.") from None
    return data if isinstance(data, dict) and isinstance(data.get("items"), list) else {"items": []}


def items(saves=None) -> list[dict]:
    """Every item, in queue order (finished ones stay listed with their outcome)."""
    return _read(saves)["items"]


def get(item_id: str, saves=None) -> dict | None:
    return next((it for it in items(saves) if it["id"] == item_id), None)


# ---------------------------------------------------------------- editing
def recipe_values(path: str | None, overrides) -> dict:
    """A recipe YAML plus key=value overrides, as the queue stores them: checked now as `tuneboard train` checks
    them; what depends on the moment (the output folder, the data on disk) is checked when the run's turn comes."""
    raw = dict(read_yaml(path)) if path else {}
    raw.update(overrides if isinstance(overrides, dict) else parse_overrides(overrides or ()))
    typed = load_config(None, raw, COMMAND, finalize=False).values  # unknown keys, types, ranges: refused now
    load_config(None, dict(raw), COMMAND)  # and the cross-field rules (its derived values are not stored)
    return changed(typed, COMMAND)


def add(values: dict, saves=None, source: str = "", cwd: str | None = None) -> dict:
    """Queue a run of `values` (a recipe: the values that differ from the defaults). Returns the item."""
    item = {"id": f"q{time.strftime('%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}", "command": COMMAND,
            "values": dict(values), "source": source, "cwd": cwd or os.getcwd(), "added": time.time(),
            "state": QUEUED, "reason": None, "run_id": None, "output": values.get("output_dir"),
            "started": None, "ended": None}
    with _locked(saves) as st:
        st["items"].append(item)
    return item


def _find(st: dict, item_id: str) -> dict:
    for it in st["items"]:
        if it["id"] == item_id:
            return it
    known = ", ".join(it["id"] for it in st["items"] if it["state"] in WAITING) or "none"
    raise UserError(f"queue: no item {item_id!r} (waiting or running: {known}); see `tuneboard queue list`.")


def cancel(item_id: str, saves=None) -> dict:
    """A queued item never starts; a running one's run is aborted (its checkpoint stays)."""
    with _locked(saves) as st:
        it = _find(st, item_id)
        if it["state"] not in WAITING:
            raise UserError(f"queue: {item_id} is already {it['state']}; nothing to cancel.")
        was = it["state"]
        it.update(state=CANCELLED, reason="cancelled by user", ended=time.time())
    if was == RUNNING and it.get("run_id"):
        run = runs.get_run(it["run_id"], saves)
        if run is not None and run.alive():
            run.abort()
    return it


def move(item_id: str, to: int | str, saves=None) -> list[dict]:
    """Reorder a queued item: to = "up" / "down" / "top" / a 0-based position among the queued items."""
    with _locked(saves) as st:
        it = _find(st, item_id)
        if it["state"] != QUEUED:
            raise UserError(f"queue: {item_id} is {it['state']}; only queued runs can be moved.")
        queued = [x for x in st["items"] if x["state"] == QUEUED]
        i = queued.index(it)
        j = {"up": i - 1, "down": i + 1, "top": 0}.get(str(to))
        if j is None:
            try:
                j = int(to)
            except ValueError:
                raise UserError(f"queue: move to up, down, top or a position, got {to!r}.") from None
        j = max(0, min(len(queued) - 1, j))
        queued.insert(j, queued.pop(i))
        slots = iter(queued)  # the queued items take their new order in the places queued items held
        st["items"] = [next(slots) if x["state"] == QUEUED else x for x in st["items"]]
        return list(st["items"])


def clear_done(saves=None) -> int:
    """Forget the items that have ended; the runs themselves stay on disk."""
    with _locked(saves) as st:
        keep = [it for it in st["items"] if it["state"] in WAITING]
        n = len(st["items"]) - len(keep)
        st["items"] = keep
    return n


# ---------------------------------------------------------------- the runner
def runner_alive(saves=None) -> bool:
    """A runner holds the runner lock while it lives (a lock, not a pid file: it dies with its holder)."""
    d = _dir(saves)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / RUNNER_LOCK, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def runner_pid(saves=None) -> int | None:
    if not runner_alive(saves):
        return None
    try:
        return int((_dir(saves) / RUNNER_LOCK).read_text().strip())
    except (OSError, ValueError):
        return None


def pending(saves=None) -> bool:
    return any(it["state"] in WAITING for it in items(saves))


def ensure_runner(saves=None) -> bool:
    """Start a background runner when the queue holds work and none is running. True when one was started."""
    if not pending(saves):
        return False
    d = _dir(saves)
    saves_abs = str(paths.saves_root(saves).resolve())
    with open(d / RUNNER_LOCK, "a") as lock, open(d / RUNNER_LOG, "ab") as log:
        try:  # taken here and handed to the runner: two callers at once never start two runners
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        subprocess.Popen([sys.executable, "-m", "engine", "queue", "run", "--saves", saves_abs, "--lock-fd",
                          str(lock.fileno())], pass_fds=(lock.fileno(),), stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return True  # closing our copy leaves the lock with the runner's


def _busy_devices(saves) -> list[set | None]:
    """The GPU sets of the runs going now (None: a run on every device, or on the CPU)."""
    out = []
    for r in runs.all_runs(saves):
        if r.returncode is None and r.alive():
            out.append(devices.gpu_ids({"devices": r.meta.get("devices")}) or None)
    return out


def can_start(item: dict, saves=None) -> bool:
    """Nothing runs, or the item and every run going now name GPUs and share none (side by side)."""
    busy = _busy_devices(saves)
    if not busy:
        return True
    mine = devices.gpu_ids(item["values"])
    return bool(mine) and all(b is not None and not (b & mine) for b in busy)


def _values_for_turn(item: dict, saves) -> dict:
    """The item's values as a run takes them: its output folder named now (under saves/ when none was given)."""
    v = dict(item["values"])
    model = v.get("model_name_or_path") or BY_NAME["model_name_or_path"].default
    method = v.get("finetuning_type") or BY_NAME["finetuning_type"].default
    out = paths.resolve_output_dir(v.get("output_dir"), model, method, saves)
    if out is None:
        out = paths.default_output_dir(model, method, saves=saves)
    v["output_dir"] = str(Path(item.get("cwd") or ".", out).resolve())  # the runner may sit elsewhere
    return v


@contextmanager
def _cwd(path: str | None) -> Iterator[None]:
    """Relative paths of a recipe mean what they meant where it was queued (the runner is single-threaded)."""
    old = os.getcwd()
    if path and Path(path).is_dir():
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _start(item: dict, saves) -> None:
    """Start the item's run, or mark it skipped with the reason it cannot run (the next one goes on)."""
    try:
        with _cwd(item.get("cwd")):
            v = _values_for_turn(item, saves)
            run = runs.spawn(item.get("command") or COMMAND, v, saves, beside=True)
    except runs.RunBusy:
        return  # someone started a run between our look and our start: try again on the next round
    except (ConfigError, UserError) as e:
        item.update(state=SKIPPED, reason=str(e), ended=time.time())
        get_logger().warning("queue: %s skipped: %s", item["id"], e)
        return
    item.update(state=RUNNING, run_id=run.id, output=run.output, started=time.time())
    get_logger().info("queue: %s started %s", item["id"], run.output)


def step(saves=None) -> bool:
    """One round of the runner: note the runs that ended, start what may start. True while work remains."""
    with _locked(saves) as st:
        for it in st["items"]:
            if it["state"] != RUNNING:
                continue
            run = runs.get_run(it.get("run_id"), saves)
            status = run.status() if run is not None else {"state": "failed", "error": "its run record is gone"}
            if status["state"] != "running":
                it.update(state=status["state"], reason=status.get("error"), ended=time.time())
        while True:
            head = next((it for it in st["items"] if it["state"] == QUEUED), None)
            if head is None or not can_start(head, saves):
                break
            _start(head, saves)
            if head["state"] == QUEUED:  # busy after all
                break
        return any(it["state"] in WAITING for it in st["items"])


def run_queue(saves=None, poll: float = POLL_S, lock_fd: int | None = None) -> int:
    """The runner: work through the queue until nothing waits. Returns at once if another runner is alive.
    lock_fd: the runner lock, already taken by ensure_runner for this process."""
    d = _dir(saves)
    d.mkdir(parents=True, exist_ok=True)
    with (os.fdopen(lock_fd, "a") if lock_fd is not None else open(d / RUNNER_LOCK, "a")) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another queue runner is running; it works through the queue.")
            return 0
        f.truncate(0)
        f.write(str(os.getpid()))  # for `queue list` (the lock, not this number, says whether it lives)
        f.flush()
        get_logger().info("queue runner %d: working through %s", os.getpid(), d / STATE)
        while step(saves):
            time.sleep(poll)
        get_logger().info("queue runner %d: nothing left to run", os.getpid())
    return 0


# ---------------------------------------------------------------- `tuneboard queue ...`
SUBCOMMANDS = ("add", "list", "cancel", "move", "clear", "run")


def describe(it: dict) -> str:
    v = it["values"]
    what = f"{v.get('stage', 'sft')} on {','.join(v.get('dataset') or []) or '?'}"
    where = it.get("output") or v.get("output_dir") or "(named at its turn)"
    line = f"{it['id']}  {it['state']:<9}  {what}  -> {where}"
    if it.get("reason") and it["state"] not in (RUNNING, "finished"):
        line += f"\n    reason: {it['reason']}"
    return line


def run_cli(opts) -> int:
    """`tuneboard queue SUBCOMMAND ...` (opts: parsed by engine.cli, whose table lists the forms)."""
    saves = opts.saves
    if not opts.words:
        raise UserError(f"queue: give a subcommand: {', '.join(SUBCOMMANDS)} (see `tuneboard queue --help`).")
    sub, rest = opts.words[0], opts.words[1:]
    if sub != "add" and (opts.recipe or opts.overrides):
        raise UserError(f"queue {sub}: {opts.recipe or opts.overrides[0]}: only `queue add` takes a recipe and "
                        "key=value overrides.")
    if sub == "add":
        path, overrides = opts.recipe, opts.overrides
        if rest or (path is None and not overrides):
            extra = f", not {rest}" if rest else ""
            raise UserError(f"queue add: give a recipe.yaml and/or key=value overrides{extra}.")
        it = add(recipe_values(path, overrides), saves, source=path or "command line")
        started = ensure_runner(saves)
        print(f"queued {it['id']} ({len([x for x in items(saves) if x['state'] == QUEUED])} waiting)"
              + ("; the queue runner started in the background" if started else ""))
        return 0
    if sub == "list":
        its = items(saves)
        print("\n".join(describe(it) for it in its) if its else "the queue is empty")
        pid = runner_pid(saves)
        if pid or pending(saves):
            print(f"runner: {f'process {pid}' if pid else 'not running (`tuneboard queue run` starts it)'}")
        return 0
    if sub in ("cancel", "move") and not rest:
        raise UserError(f"queue {sub}: give the item's ID (see `tuneboard queue list`).")
    if sub == "cancel":
        for item_id in rest:
            it = cancel(item_id, saves)
            print(f"cancelled {it['id']}")
        return 0
    if sub == "move":
        if len(rest) != 2:
            raise UserError("queue move: give the ID and where to: up, down, top or a position.")
        move(rest[0], rest[1], saves)
        print("\n".join(describe(it) for it in items(saves)))
        return 0
    if sub == "clear":
        print(f"forgot {clear_done(saves)} ended run(s)")
        return 0
    if sub == "run":
        return run_queue(saves, lock_fd=opts.lock_fd)
    raise UserError(f"queue: unknown subcommand {sub!r}; one of {', '.join(SUBCOMMANDS)} "
                    "(see `tuneboard queue --help`).")

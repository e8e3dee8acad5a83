"""A run on disk: spawn a `tuneboard train|eval|export` subprocess, follow it through its files, abort it,
and find it again after a page reload, from a second tab or from a restarted UI server.

The UI never trains in its own process. A run is a child process in its own process group (so Abort can
stop the whole tree) whose config, console log and results live in files; a small JSON record per run in
<saves>/.tuneboard_runs/ remembers pid + process start time, so liveness survives a restart of the UI.
No gradio (and no torch) here: the web UI imports this at start-up.
"""
from __future__ import annotations

import copy
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from . import devices
from .args import ARGS, SECRET_ENV, Namespace
from .config import changed, load_config, validate
from .errors import ConfigError
from .paths import model_dir_name, saves_root
from .procs import START_TOLERANCE_S, alive as _alive, create_time as _create_time, is_running as _proc_alive
from .train import rundir
from .utils import atomic_write_json, atomic_write_text
from .errors import UserError

REGISTRY = ".tuneboard_runs"
COMMANDS = ("train", "eval", "export")
CONFIG_COMMAND = {"train": "train", "eval": "infer", "export": "export"}  # which schema args each one reads
CONFIG_NAME = {"train": rundir.CONFIG, "eval": rundir.EVAL_CONFIG, "export": rundir.EXPORT_CONFIG}
RESULT_FILES = {"train": rundir.RESULTS, "eval": rundir.EVAL_RESULTS, "export": "config.json"}
TERM_GRACE_S = 7.0   # SIGTERM -> a run that does not say how long it needs gets this long before SIGKILL
MAX_STOP_WAIT_S = 1800.0  # the most a stopping trainer may ask for (status.json's stop_by), whatever it says
EXIT_WAIT_S = 30.0   # a trainer that has recorded its end: time to exit (freeing memory, joining threads)
KILL_WAIT_S = 2.5    # after SIGKILL, until the processes are gone

_POPENS: dict[str, subprocess.Popen] = {}  # runs started by this process (we must reap them)
_RECORD_LOCK = threading.Lock()


class RunBusy(UserError):
    """A second Start while a run is going."""

    def __init__(self, message: str, run: "Run"):
        super().__init__(message)
        self.run = run


def _registry(saves: str | Path | None = None) -> Path:
    return saves_root(saves) / REGISTRY


# ---------------------------------------------------------------- processes
def _psutil():
    import psutil
    return psutil


def _group_members(pgid: int) -> list:
    """Every live process of a process group (children that double-fork stay in it)."""
    psutil = _psutil()
    out = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and _proc_alive(p):
                out.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error, OSError):
            continue
    return out


# ---------------------------------------------------------------- one run
@dataclass
class Run:
    id: str
    command: str
    run_dir: str             # holds the config YAML and running.log
    output: str              # what the run produces: output_dir (train/eval) or export_dir
    config: str
    log: str
    argv: list = field(default_factory=list)
    pid: int | None = None
    create_time: float | None = None
    started: float = 0.0
    ended: float | None = None
    returncode: int | None = None
    aborted: bool = False
    saves: str = "saves"
    meta: dict = field(default_factory=dict)  # model / method / stage, for listings

    # ---- record
    @property
    def record_path(self) -> Path:
        return _registry(self.saves) / f"{self.id}.json"

    def save(self) -> None:
        atomic_write_json(self.record_path, asdict(self))

    def _update(self, **fields) -> None:
        """Read-modify-write of the record (the reaper thread and abort() both write it)."""
        with _RECORD_LOCK:
            fresh = load_run(self.record_path) or Run(**asdict(self))
            for k, v in fields.items():
                setattr(fresh, k, v)
            fresh.save()
            self.__dict__.update(fresh.__dict__)

    def refresh(self) -> "Run":
        fresh = load_run(self.record_path)
        if fresh is not None:
            self.__dict__.update(fresh.__dict__)
        return self

    # ---- liveness
    def alive(self) -> bool:
        """The run's root process exists and is not a zombie (an exited child not reaped yet is not alive)."""
        popen = _POPENS.get(self.id)
        if popen is not None and popen.returncode is not None:
            return False
        if self.create_time is None:
            return False
        return _alive(self.pid, self.create_time)  # gone, a zombie, or the pid reused by another process

    def processes(self) -> list:
        """The live process tree: the root, its descendants and anything left in its process group."""
        psutil = _psutil()
        if not self.alive() and not self.pid:
            return []
        found = {}
        try:
            root = psutil.Process(self.pid)
            if self.create_time is None or abs(root.create_time() - self.create_time) <= START_TOLERANCE_S:
                for p in [root] + root.children(recursive=True):
                    if _proc_alive(p):
                        found[p.pid] = p
        except psutil.Error:
            pass
        for p in _group_members(self.pid):
            found.setdefault(p.pid, p)
        return list(found.values())

    # ---- what the files say
    def trainer_status(self) -> dict | None:
        st = rundir.read_status(self.output)
        if not st:
            return None
        # a resumed run's folder holds the previous run's status until the new process writes its own
        if float(st.get("updated") or 0) < self.started - 1.0:
            return None
        return st

    def status(self) -> dict:
        """{'state': running|finished|failed|aborted, 'phase', 'step', 'total_steps', 'elapsed', 'remaining',
        'error', 'returncode'}: process liveness first, then what the run wrote."""
        self.refresh()
        st = self.trainer_status() or {}
        popen = _POPENS.get(self.id)
        if self.returncode is None and popen is not None:
            self.returncode = popen.returncode  # the reaper has it before the record does
        # our own child that exited but is not reaped yet still counts as running for a moment
        alive = self.alive() or (popen is not None and popen.returncode is None)
        out = {"state": "running", "phase": st.get("state") or "starting", "step": st.get("step"),
               "total_steps": st.get("total_steps"), "elapsed": st.get("elapsed"), "remaining": st.get("remaining"),
               "error": st.get("error"), "returncode": self.returncode}
        if alive:
            if self.aborted:  # Abort was pressed: say so at once, before the trainer has written anything
                out["phase"] = rundir.ABORTING
            elif out["phase"] in rundir.FINAL_STATES:
                out["phase"] = "saving"
            out["error"] = None
            return out
        final = st.get("state") if st.get("state") in rundir.FINAL_STATES else None
        if self.aborted:
            state = "aborted"
        elif self.returncode is not None:
            state = "finished" if self.returncode == 0 else "failed"
            if final == "aborted":
                state = "aborted"  # stopped by a SIGTERM from outside the UI
        elif final:
            state = final
        else:  # ended while no UI process was watching it: judge by its result file
            res = Path(self.output) / RESULT_FILES[self.command]
            state = "finished" if res.is_file() and res.stat().st_mtime >= self.started - 1 else "failed"
        out["state"] = state
        out["phase"] = state
        if state == "failed" and not out["error"]:
            out["error"] = self.last_error()
        if state == "aborted" and not out["error"]:
            out["error"] = "aborted by user"
        return out

    def last_error(self) -> str:
        """The most telling line of a failed run's console log (our `error: ...` line, else the last line)."""
        lines = [ln for ln in self.tail(80).splitlines() if ln.strip()]
        for ln in reversed(lines):
            if ln.startswith("error:") or "Error" in ln.split(":")[0]:
                return ln
        return lines[-1] if lines else f"the process exited with code {self.returncode}"

    def tail(self, n: int = 200, max_bytes: int = 256_000) -> str:
        """The last n lines of running.log (the trainer's log plus anything printed to stdout/stderr)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                data = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        # progress bars rewrite one line with \r: keep the last state of each line
        lines = [ln.rsplit("\r", 1)[-1] for ln in data.replace("\r\n", "\n").split("\n")]
        if size > max_bytes:
            lines = lines[1:]
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines[-n:])

    def log_records(self) -> list[dict]:
        return rundir.read_log(self.output) if self.command == "train" else []

    def progress(self) -> dict:
        """step / total / elapsed / remaining / percentage: status.json (updated every step) over the last log line."""
        recs = self.log_records()
        last = recs[-1] if recs else {}
        st = self.trainer_status() or {}
        step = st.get("step") if st.get("step") is not None else last.get("step")
        total = st.get("total_steps") or last.get("total_steps")
        elapsed = st.get("elapsed") if st.get("elapsed") is not None else last.get("elapsed")
        if elapsed is None and self.started:
            elapsed = (self.ended or time.time()) - self.started
        remaining = st.get("remaining") if st.get("remaining") is not None else last.get("remaining")
        pct = 100.0 * step / total if step is not None and total else 0.0
        return {"step": step or 0, "total_steps": total, "elapsed": elapsed, "remaining": remaining,
                "percentage": round(min(pct, 100.0), 2)}

    def results(self) -> dict:
        """Final metrics: all_results.json (train) or predict_results.json (eval)."""
        if self.command == "export":
            return {}
        try:
            data = json.loads((Path(self.output) / RESULT_FILES[self.command]).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def adapter_path(self) -> str | None:
        """The trained adapter (or full model) folder once the run has written it."""
        out = Path(self.output)
        if (out / "adapter_config.json").is_file() or (out / "config.json").is_file():
            return str(out)
        return None

    # ---- stop it
    def request_abort(self) -> bool:
        """Ask the run to stop and return at once: SIGTERM to its process group (a trainer saves a checkpoint of
        the step in progress, then ends), and status() says phase `aborting` from now on. False if nothing runs.
        abort() does the same and waits for the end."""
        procs = self.processes()
        if not procs:
            return False
        self._update(aborted=True)
        _signal_group(self.pid, signal.SIGTERM)
        for p in procs:  # descendants that left the group (setsid) get the signal too
            _signal(p, signal.SIGTERM)
        return True

    def stop_deadline(self, signalled: float, grace: float | None = None) -> float:
        """When to give up waiting and SIGKILL (time.time()): `grace` seconds after the signal when given, else as
        long as a stopping trainer says it needs (status.json: `aborting`, stop_by), TERM_GRACE_S for any other
        program, and never more than MAX_STOP_WAIT_S."""
        if grace is not None:
            return signalled + grace
        st = self.trainer_status() if self.command == "train" else None
        wait = TERM_GRACE_S
        if st and st.get("state") == rundir.ABORTING and isinstance(st.get("stop_by"), (int, float)):
            wait = st["stop_by"] - signalled
        elif st and st.get("state") in rundir.FINAL_STATES and st.get("pid") == self.pid:
            wait = float(st.get("updated") or signalled) + EXIT_WAIT_S - signalled  # done: it is exiting
        return signalled + min(max(wait, TERM_GRACE_S), MAX_STOP_WAIT_S)

    def abort(self, grace: float | None = None, kill_wait: float = KILL_WAIT_S) -> bool:
        """request_abort(), then wait until the run has stopped (a trainer: its checkpoint saved), SIGKILL to
        whatever is left after stop_deadline(). True once no process of the run is left. A trainer killed that
        way cannot record its end: its status.json is marked aborted here."""
        procs = self.processes()
        if not procs:
            return True
        signalled = time.time()
        self.request_abort()
        pgid = self.pid
        latest = [signalled]

        def deadline() -> float:  # never earlier than a deadline already seen (status.json is rewritten often)
            latest[0] = max(latest[0], self.stop_deadline(signalled, grace))
            return latest[0]
        if not _wait_gone(self, procs, deadline):
            _signal_group(pgid, signal.SIGKILL)
            for p in procs + _group_members(pgid):
                _signal(p, signal.SIGKILL)
            end = time.time() + kill_wait
            _wait_gone(self, procs, lambda: end)
            if self.command == "train":
                last = rundir.last_checkpoint(self.output)
                rundir.mark_ended(self.output, "aborted", f"killed {time.time() - signalled:.0f} s after Abort "
                                  "without having stopped; " + (f"the last whole checkpoint is {last.name}"
                                                                 if last else "no checkpoint was saved"))
        elif self.command == "train":  # it stopped; if something kept it from recording that, record it here
            phase = (rundir.read_status(self.output) or {}).get("state")
            rundir.mark_ended(self.output, "aborted", "stopped by the user" + (
                f" while {phase}" if phase and phase != rundir.ABORTING else ""))
        return not any(_proc_alive(p) for p in procs) and not _group_members(pgid) and not self.alive()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(p, sig: int) -> None:
    try:
        p.send_signal(sig)
    except Exception:  # already gone
        pass


def _wait_gone(run: Run, procs: list, deadline) -> bool:
    """Wait until the run's processes are gone (True) or time.time() passes deadline(), asked again each poll:
    a stopping trainer says how long it needs once its signal handler has run."""
    while True:
        if not any(_proc_alive(p) for p in procs) and not _group_members(run.pid) and not run.alive():
            return True
        if time.time() >= deadline():
            return False
        time.sleep(0.05)


# ---------------------------------------------------------------- registry
def load_run(path: str | Path) -> Run | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Run(**data)
    except (OSError, ValueError, TypeError):
        return None


def all_runs(saves: str | Path | None = None, command: str | None = None) -> list[Run]:
    """Every run the UI started, newest first."""
    reg = _registry(saves)
    runs = [r for r in (load_run(p) for p in reg.glob("*.json")) if r is not None] if reg.is_dir() else []
    runs = [r for r in runs if command is None or r.command == command]
    return sorted(runs, key=lambda r: r.started, reverse=True)


def get_run(run_id: str | None, saves: str | Path | None = None) -> Run | None:
    if not run_id:
        return None
    return load_run(_registry(saves) / f"{run_id}.json")


def active_run(saves: str | Path | None = None, command: str | None = None) -> Run | None:
    for r in all_runs(saves, command):
        if r.returncode is None and r.alive():  # a recorded exit code means it is over: no process lookup
            return r
    return None


def latest_run(saves: str | Path | None = None, command: str | None = None) -> Run | None:
    """The run a freshly loaded page shows: the one going now, else the last one started."""
    runs = all_runs(saves, command)
    for r in runs:
        if r.returncode is None and r.alive():
            return r
    return runs[0] if runs else None


@contextmanager
def _spawn_lock(saves: str | Path | None) -> Iterator[None]:
    """Two tabs pressing Start at once: only one gets through the check-then-spawn."""
    reg = _registry(saves)
    reg.mkdir(parents=True, exist_ok=True)
    with open(reg / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _reaper(run: Run, popen: subprocess.Popen) -> None:
    rc = popen.wait()
    try:
        run._update(returncode=rc, ended=time.time())
    finally:
        _POPENS.pop(run.id, None)


@dataclass(frozen=True)
class Checked:
    """A run's values checked once (check): `given` typed and range-checked field by field, as the form gave them
    (what the run's YAML and the command preview hold); `ns` the same with the cross-field rules applied and the
    derived defaults filled (what spawn reads to place the run)."""
    command: str
    given: Namespace
    ns: Namespace


def check(command: str, values: dict) -> Checked:
    """Validate UI values for a command (ConfigError names the field) and fill the derived defaults."""
    if command not in COMMANDS:
        raise UserError(f"unknown run command {command!r}; one of {', '.join(COMMANDS)}.")
    given = load_config(None, dict(values), CONFIG_COMMAND[command], finalize=False)
    ns = copy.deepcopy(given)
    validate(ns, CONFIG_COMMAND[command])
    v = ns.values
    if command == "eval" and not v.get("output_dir"):
        raise ConfigError("output_dir: give a folder for the predictions.", "output_dir")
    if command == "export" and not v.get("export_dir"):
        raise ConfigError("export_dir: give a folder to write the merged model to.", "export_dir")
    return Checked(command, given, ns)


def _refuse_if_busy(saves: str, beside: dict | None = None) -> None:
    """RunBusy while a run is going; with `beside` (a run's values), only when the two may share a device."""
    if beside is not None:  # the queue starts runs side by side on disjoint GPUs
        mine = devices.gpu_ids(beside)
        for r in all_runs(saves):
            theirs = devices.gpu_ids({"devices": r.meta.get("devices")})
            if r.returncode is None and r.alive() and not (mine and theirs and not mine & theirs):
                raise RunBusy(f"a {r.command} run is going on the same devices ({r.output}).", r)
        return
    busy = active_run(saves)
    if busy is not None:
        raise RunBusy(f"a {busy.command} run is already going ({busy.output}); wait for it to end or abort "
                      "it before starting another.", busy)


def recipe(checked: Checked, explicit=()) -> dict:
    """What the run's YAML holds: the values that differ from the defaults (the same as the command preview),
    plus `explicit` keys, which a command may treat differently when given (eval samples only when asked)."""
    typed = checked.given.values
    out = changed(typed, CONFIG_COMMAND[checked.command])
    for k in explicit:
        if k in typed:
            out[k] = typed[k]
    return out


def spawn(command: str, values: dict | Checked, saves: str | Path | None = None, env: dict | None = None,
          explicit=(), beside: bool = False) -> Run:
    """Validate, write the config YAML atomically, start `python -m engine <command> <yaml>` in its own
    process group with stdout+stderr appended to running.log, and record it. Refuses a second run while one
    is going (RunBusy; with beside=True only one on the same GPUs) and an output dir that holds another run
    unless resume or overwrite is asked. `values` checked already (check) are not checked again."""
    checked = values if isinstance(values, Checked) else check(command, values)
    v = checked.ns.values
    data = recipe(checked, explicit)
    saves = str(saves_root(saves))
    with _spawn_lock(saves):
        _refuse_if_busy(saves, v if beside else None)
        if command == "export":
            output = str(v["export_dir"])
            run_dir = None
        else:
            output = str(v["output_dir"])
            run_dir = Path(output)
        if command == "train":
            rundir.check_free(output)  # a `tuneboard train` from a shell is writing there
            if not v.get("resume_from_checkpoint"):
                rundir.refuse_to_write(output, bool(v.get("overwrite_output_dir")))
        run_id = _new_id(command)
        # a training run's YAML goes to the registry: a run already in output_dir keeps its own config until the
        # new one really trains (it writes training_args.yaml then); running.log in output_dir gets the new lines
        own = command != "train" and run_dir is not None
        config = (Path(run_dir) if own else _registry(saves) / run_id) / CONFIG_NAME[command]
        run_dir = run_dir or config.parent
        atomic_write_text(config, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        meta = {k: v.get(k) for k in ("model_name_or_path", "finetuning_type", "stage", "dataset",
                                      "adapter_name_or_path", "template", "devices")}
        env = {**(os.environ if env is None else env), **devices.env_for(v)}  # the picked devices, this run alone
        secrets = {SECRET_ENV + a.name.upper(): str(v[a.name]) for a in ARGS if a.secret and v.get(a.name)}
        if secrets:  # credentials go to the run through its environment, never into the YAML above
            env = {**env, **secrets}
        return _start(run_id, command, [sys.executable, "-m", "engine", command, str(config)], run_dir,
                      output, str(config), saves, env, meta)


def launch(command: str, argv: list[str], run_dir: str | Path, output: str | Path | None = None,
           saves: str | Path | None = None, env: dict | None = None) -> Run:
    """Start any argv as a tracked run (same guard, log, process group and record as spawn)."""
    saves = str(saves_root(saves))
    with _spawn_lock(saves):
        _refuse_if_busy(saves)
        return _start(_new_id(command), command, list(argv), Path(run_dir), str(output or run_dir), "", saves,
                      env, {})


def _new_id(command: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{command}-{os.getpid()}-{time.monotonic_ns() % 1000000:06d}"


def _start(run_id: str, command: str, argv: list[str], run_dir: Path, output: str, config: str, saves: str,
           env: dict | None, meta: dict) -> Run:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / rundir.RUNNING_LOG
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    child_env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with open(log_path, "ab") as logf:
        logf.write(f"$ {' '.join(argv)}\n".encode())
        logf.flush()
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=child_env, cwd=os.getcwd())
    run = Run(id=run_id, command=command, run_dir=str(run_dir), output=output, config=config, log=str(log_path),
              argv=list(argv), pid=popen.pid, create_time=_create_time(popen.pid), started=time.time(),
              saves=saves, meta=meta)
    _POPENS[run.id] = popen
    run.save()
    threading.Thread(target=_reaper, args=(run, popen), name=f"reap-{run_id}", daemon=True).start()
    return run


# ---------------------------------------------------------------- runs on disk (also those started by the CLI)
def checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoint-N folders of a run, sorted by step (nested output_dir/*/checkpoint-N too)."""
    return rundir.checkpoints(output_dir)


def inspect_output_dir(path: str | Path | None) -> dict | None:
    """What an existing output dir holds, for the UI's resume offer; None when it holds no run."""
    if not path or not rundir.holds_run(path):
        return None
    st = rundir.read_status(path) or {}
    last, _ = rundir.last_good_checkpoint(path)  # never offer one that a kill or a full disk cut short
    return {"path": str(path), "state": st.get("state"), "step": st.get("step"),
            "total_steps": st.get("total_steps"), "last_checkpoint": str(last) if last else None,
            "last_step": rundir.checkpoint_step(last) if last else None}


def list_runs(saves: str | Path | None = None, model: str | None = None, method: str | None = None) -> list[dict]:
    """Training runs under <saves>/<model>/<method>/ (newest first), whoever started them (UI or CLI)."""
    root = saves_root(saves)
    models = [root / model_dir_name(model)] if model else [p for p in root.iterdir() if p.is_dir()] \
        if root.is_dir() else []
    out = []
    for mdir in models:
        methods = [mdir / method] if method else [p for p in mdir.iterdir() if p.is_dir()] if mdir.is_dir() else []
        for meth in methods:
            if not meth.is_dir():
                continue
            for run in meth.iterdir():
                if not run.is_dir() or run.name.startswith("."):
                    continue
                if not rundir.holds_run(run):
                    continue
                st = rundir.read_status(run) or {}
                out.append({"path": str(run), "name": run.name, "model": mdir.name, "method": meth.name,
                            "state": st.get("state"), "adapter": (run / "adapter_config.json").is_file(),
                            "checkpoints": [str(c) for c in rundir.checkpoints(run)],
                            "mtime": run.stat().st_mtime})
    return sorted(out, key=lambda r: r["mtime"], reverse=True)


def adapter_choices(saves: str | Path | None, model: str | None, method: str | None) -> list[tuple[str, str]]:
    """(label, path) of every loadable adapter for this model and method: finished runs and their
    checkpoints, nested checkpoint-N included. Labels are relative to the method folder."""
    out = []
    for r in list_runs(saves, model, method):
        base = Path(r["path"]).parent
        if r["adapter"]:
            out.append((r["name"], r["path"]))
        for c in r["checkpoints"]:
            if (Path(c) / "adapter_config.json").is_file():
                out.append((str(Path(c).relative_to(base)), c))
    return out

"""Processes: is a recorded pid still that process, and making helper processes die with the trainer.

A pid alone proves little. After `kill -9` the process stays a zombie until its parent reaps it (forever when
the parent does not wait, or when PID 1 of a container does not reap orphans), and `os.kill(pid, 0)` succeeds on a
zombie; later the number can belong to an unrelated process. So a recorded process counts as alive only while it
is not a zombie and its start time is the one recorded with it. No torch here; psutil is imported on first use.
"""
from __future__ import annotations

import functools
import os
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

START_TOLERANCE_S = 1.0  # psutil derives start times from boot time + clock ticks: equal to well within this

_own_start: dict[int, float | None] = {}  # pid -> start time (a forked child has its own pid, so its own entry)


def _psutil():
    import psutil
    return psutil


def create_time(pid: int) -> float | None:
    """When the process started (seconds since the epoch), or None if there is no such process."""
    psutil = _psutil()
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def own_create_time() -> float | None:
    pid = os.getpid()
    if pid not in _own_start:
        _own_start[pid] = create_time(pid)
    return _own_start[pid]


def is_running(p) -> bool:
    """A psutil.Process exists and is not a zombie (a child that exited but is not reaped yet)."""
    psutil = _psutil()
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def alive(pid: int | None, started: float | None = None) -> bool:
    """pid is a live process, not a zombie, and (when `started` is given) the one that started at `started`."""
    if not pid:
        return False
    psutil = _psutil()
    try:
        p = psutil.Process(int(pid))
        if started is not None and abs(p.create_time() - float(started)) > START_TOLERANCE_S:
            return False  # the number was reused by another process
    except (psutil.Error, ValueError, TypeError):
        return False
    return is_running(p)


# ---------------------------------------------------------------- children die with their parent
_PR_SET_PDEATHSIG = 1
_prctl = None
_hook_installed = False
_active = False
_fork_parent: list[int] = []


def _load_prctl():
    """libc's prctl, loaded once in the parent: a child between fork and exec should not dlopen anything."""
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        try:
            import ctypes
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    return _prctl or None


def die_with_parent(expected_parent: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies (prctl PR_SET_PDEATHSIG, kept across exec).
    If the parent is gone already (it died before the request took effect), die now. False where unsupported.

    Linux sends it when the parent *thread* that created this process ends, so this suits children made from
    a thread that lives as long as its process (the main thread, for datasets and DataLoader workers)."""
    prctl = _load_prctl()
    if prctl is None or prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
    return True


def preexec_die_with_parent():
    """preexec_fn for subprocess.Popen: the program it starts is killed when this process dies (None where
    that is not possible: Windows has no preexec_fn at all)."""
    return functools.partial(die_with_parent, os.getpid()) if _load_prctl() is not None else None


_shielded = False
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _before_fork() -> None:
    _fork_parent[:] = [os.getpid()]


def _after_fork_in_child() -> None:
    if _active:  # (a child inherits the flag: its own forks die with it in turn)
        die_with_parent(_fork_parent[0] if _fork_parent else None)
    if _shielded:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _install_fork_hook() -> bool:
    global _hook_installed
    if not _hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _hook_installed = True
    return _hook_installed


@contextmanager
def shielded_children() -> Iterator[None]:
    """Processes forked inside this block (DataLoader workers) never see SIGTERM or SIGINT (blocked, a mask that
    torch's own worker signal handlers do not undo). A stop signal sent to the whole process group (the web UI's
    Abort, `kill -TERM -PGID`, Ctrl-C in a terminal) would otherwise end them, and the trainer that waits on them
    would fail before it saves the checkpoint the stop asks for. They end with the trainer: it shuts them down,
    or they die with it (children_die_with_me), or SIGKILL, which nothing blocks."""
    global _shielded
    _install_fork_hook()
    before, _shielded = _shielded, True
    try:
        yield
    finally:
        _shielded = before


@contextmanager
def children_die_with_me() -> Iterator[None]:
    """Every process forked inside this block (datasets.map workers, DataLoader workers, and their own forks)
    is killed when the process that forked it dies, even by SIGKILL: a `kill -9` of `tuneboard train` leaves
    nothing behind. Programs started with subprocess need `preexec_fn=preexec_die_with_parent()` (subprocess
    does not run fork hooks without one). Forks after the block (a test process that trained in-process goes
    on) are left alone."""
    global _active
    if _load_prctl() is not None:
        _install_fork_hook()
    before, _active = _active, True
    try:
        yield
    finally:
        _active = before

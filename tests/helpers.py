"""What many test files need: a free port, waiting on a condition with a deadline, a server started in its own
process group and stopped with everything it spawned. A plain module (like modelkit.py): `conftest` is ambiguous
with tests/browser/conftest.py."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float = 30.0, what: str = "the condition", interval: float = 0.05,
             ignore: tuple = ()):
    """Poll `cond` until it returns something true (returned) or `timeout` seconds pass (AssertionError).
    Exceptions of the types in `ignore` count as "not yet" (the condition may race the thing it waits for);
    any other exception, e.g. an assert that the process is still alive, ends the wait at once."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = cond()
        except ignore as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def start_server(argv: list[str], log: Path, env: dict | None = None, drop: tuple = ("GRADIO_SERVER_NAME",)):
    """Start a server (`python app.py`, `python -m tuneboard webui ...`) at the repo root in a new session, its output
    in `log`. `argv` after the interpreter; `env` is added to this environment, the names in `drop` removed."""
    full = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    for k in drop:
        full.pop(k, None)
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=full, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def serving(proc: subprocess.Popen, url: str, log: Path | None = None):
    """A condition for wait_for: the server answers `url` with 200 (its body); fails at once if it exited."""
    import urllib.request

    def cond():
        if proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}): "
                                 f"{log.read_text(errors='replace')[-3000:] if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read() if r.status == 200 else None
        except OSError:  # not listening yet
            return None
    return cond


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after `grace` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


class frozen:
    """`with frozen(pid):` the process is stopped (SIGSTOP, waited for) inside the block and continued after it,
    so several reads of the files it writes see one moment. `kill()` inside the block ends it there instead."""

    def __init__(self, pid: int, timeout: float = 30.0):
        self.pid, self.timeout, self.killed = pid, timeout, False

    def __enter__(self):
        import psutil
        os.kill(self.pid, signal.SIGSTOP)
        proc = psutil.Process(self.pid)
        wait_for(lambda: proc.status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE), self.timeout,
                 f"process {self.pid} to stop", interval=0.01)
        return self

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)  # a stopped process dies at once: it runs nothing more
        self.killed = True

    def __exit__(self, *exc):
        if not self.killed:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

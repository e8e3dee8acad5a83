"""Web UI start-up: seconds from `python app.py` to the first HTTP 200, and the server's RSS at that moment.

    .venv/bin/python bench/webui_startup.py [--runs 3]

The page must answer within 5 s without importing torch / transformers (they load when a model is needed).
Run it on a quiet machine: other jobs on the same cores stretch every number here.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once() -> tuple[float, float]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TUNEBOARD_SAVES_DIR": "/tmp/tuneboard-bench-saves"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = t0 + 120
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        dt = time.perf_counter() - t0
                        rss = psutil.Process(proc.pid).memory_info().rss / 2**30
                        return dt, rss
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the web UI did not answer within 120 s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    n = ap.parse_args().runs
    results = [once() for _ in range(n)]
    for i, (dt, rss) in enumerate(results, 1):
        print(f"run {i}: first response after {dt:.2f} s, RSS {rss:.2f} GiB")
    best = min(r[0] for r in results)
    print(f"best {best:.2f} s; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

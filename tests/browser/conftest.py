"""Real-browser tests: the suite starts `python app.py` on a free port (its runs go to a temporary saves dir),
drives it with Playwright in Debian's Chromium and stops everything afterwards. Every page records the hosts
it requests: the page must work air-gapped, so anything but the local server fails the test.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from uikit import ROOT, UI, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@dataclass
class Server:
    url: str
    port: int
    saves: Path
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    base = tmp_path_factory.mktemp("webui")
    saves = base / "saves"
    port = free_port()
    log = base / "server.log"
    env = {**os.environ, "TUNEBOARD_SAVES_DIR": str(saves), "GRADIO_ANALYTICS_ENABLED": "False",
           "TUNEBOARD_ROOTS": str(tmp_path_factory.getbasetemp()),  # the tests' folders are allowed UI paths
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("GRADIO_SERVER_NAME", None)
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"

    def up():
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200

    try:
        wait_until(lambda: _quiet(up), 90, "the web UI to answer")
        yield Server(url, port, saves, proc, log)
    finally:
        from engine import runs
        for r in runs.all_runs(saves):
            r.abort(grace=5)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)


def _quiet(fn):
    try:
        return fn()
    except RuntimeError:
        raise
    except Exception:
        return False


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    hosts = set()
    pg.on("request", lambda r: hosts.add(r.url.split("/")[2] if "://" in r.url else r.url))
    yield pg
    ctx.close()
    outside = {h for h in hosts if h not in (f"127.0.0.1:{server.port}",) and not h.startswith("data:")}
    assert not outside, f"the page requested outside hosts: {sorted(outside)}"


@pytest.fixture
def ui(page, server) -> UI:
    return UI(page, server).open()


@pytest.fixture(scope="session")
def bundled() -> Path:
    p = ROOT / "models" / "SmolLM2-135M-Instruct"
    if not (p / "model.safetensors").is_file():
        pytest.fail("bundled model missing: run `make model`")
    return p


def cleanup_dir(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)

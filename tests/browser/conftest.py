"""Real-browser tests: the suite starts `python app.py` on a free port (its runs go to a temporary saves dir),
drives it with Playwright in Debian's Chromium and stops everything afterwards. Every page records the hosts
it requests: the page must work air-gapped, so anything but the local server fails the test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect

from helpers import ROOT, free_port, serving, start_server, stop_group, wait_for
from uikit import UI

CHROMIUM = "/usr/bin/chromium"
# expect() waits 5 s by default, actions 30 s (the page fixture): on a loaded 2-core CI machine a click's answer
# (a spawned run saying "Started") took longer than 5 s, so assertions wait as long as actions do
expect.set_options(timeout=30_000)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def pytest_collection_modifyitems(items):
    for item in items:
        if _in_browser(item):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
    # The browser tests go last: their server and Chromium are session fixtures, and an idle Gradio server and
    # browser kept alive through the rest of the suite take CPU from it. (A stable sort: order is kept otherwise.)
    items.sort(key=_in_browser)


def _in_browser(item) -> bool:
    return Path(str(item.fspath)).parent == Path(__file__).parent


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
    # the tests' folders are allowed UI paths, besides any the caller allowed
    roots = os.pathsep.join(filter(None, [str(tmp_path_factory.getbasetemp()), os.environ.get("TUNEBOARD_ROOTS")]))
    proc = start_server(["app.py", "--port", str(port)], log, {"TUNEBOARD_SAVES_DIR": str(saves),
                                                              "TUNEBOARD_ROOTS": roots})
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(serving(proc, url, log), 90, "the web UI to answer")
        yield Server(url, port, saves, proc, log)
    finally:
        from engine import runs
        for r in runs.all_runs(saves):
            r.abort(grace=5)
        stop_group(proc, grace=15)


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

"""Load: the API answers 32 concurrent streamed requests, every one, with bounded memory; the web UI serves
several tabs watching one run. Memory figures are printed (pytest -s) and only bounded here, not timed.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time

import httpx
import psutil
import pytest

from engine import paths, runs
from helpers import free_port, serving, start_server, stop_group, wait_for
from kits.args import as_args

N = 32
MiB = 1 << 20


# ---------------------------------------------------------------- the API
@pytest.fixture(scope="module")
def api(tiny_model):
    from engine.api import create_app, start_server_thread
    from engine.chat import ChatEngine
    engine = ChatEngine(as_args({"model_name_or_path": str(tiny_model)}, "infer"))
    app = create_app(engine, api_key="")
    srv, thread, port = start_server_thread(app)
    yield {"url": f"http://127.0.0.1:{port}", "worker": app.state.worker}
    srv.should_exit = True
    thread.join(30)


async def _stream(client: httpx.AsyncClient, url: str, i: int) -> dict:
    body = {"model": "default", "stream": True, "max_tokens": 6, "temperature": 0,
            "messages": [{"role": "user", "content": f"Request {i}: tell me something."}]}
    chunks, ids, finish, done = [], set(), None, False
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, await r.aread()
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            c = json.loads(data)
            assert "error" not in c, c
            ids.add(c["id"])
            for ch in c["choices"]:
                chunks.append(ch["delta"].get("content") or "")
                finish = ch["finish_reason"] or finish
    return {"text": "".join(chunks), "ids": ids, "finish": finish, "done": done}


async def _round(url: str, n: int = N) -> list[dict]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300), limits=limits) as client:
        return await asyncio.gather(*(_stream(client, url, i) for i in range(n)))


def _run_async(coro):
    """asyncio.run in a thread of its own: an earlier test (gradio, playwright) may leave an event loop
    registered on the main thread, where asyncio.run refuses to start."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def test_api_answers_32_concurrent_streams_with_bounded_memory(api):
    me = psutil.Process()
    worker = api["worker"]
    before_threads = threading.active_count()
    _run_async(_round(api["url"], 2))  # warm-up: the first generations allocate the model's work buffers
    rss0 = me.memory_info().rss
    completed0 = worker.stats["completed"]
    results = _run_async(_round(api["url"]))
    rss1 = me.memory_info().rss
    results2 = _run_async(_round(api["url"]))
    rss2 = me.memory_info().rss
    for res in (results, results2):
        assert len(res) == N and all(r["done"] and r["finish"] in ("stop", "length") for r in res)
        assert all(len(r["ids"]) == 1 for r in res) and len({next(iter(r["ids"])) for r in res}) == N  # 32 answers
        assert sum(bool(r["text"]) for r in res) == N
    assert worker.stats["completed"] - completed0 == 2 * N
    wait_for(lambda: worker.idle, 30, "the worker to go idle")  # it clears its slot just after the last [DONE]
    # the same prompt twice (greedy) gives the same answer: requests did not leak into each other
    assert [r["text"] for r in results] == [r["text"] for r in results2]
    print(f"\nAPI, {N} concurrent streams: RSS {rss0 / MiB:.0f} MiB -> {rss1 / MiB:.0f} MiB after one round, "
          f"{rss2 / MiB:.0f} MiB after a second")
    assert rss1 - rss0 < 200 * MiB and rss2 - rss1 < 40 * MiB  # bounded: a second round costs ~nothing more
    assert threading.active_count() <= before_threads + 2  # no thread per request


# ---------------------------------------------------------------- the web UI
def _progress(html: str) -> dict:
    return {k: v for k, v in re.findall(r"data-(step|total|state)='([^']*)'", html)}


def _tab(url: str, stop: threading.Event, seen: list, errors: list):
    """One browser tab: connects, then refreshes the live view like the page's timer does."""
    from gradio_client import Client
    try:
        c = Client(url, verbose=False)
        last = None
        while not stop.is_set():
            status, progress = c.predict(api_name="/tick")[:2]
            if isinstance(progress, str):  # otherwise nothing changed since this tab's last refresh
                last = (status, _progress(progress))
                seen.append(last)
            time.sleep(0.3)  # the page's own timer period is 1 s
    except Exception as e:  # reported by the test thread
        errors.append(repr(e))


def test_web_ui_serves_several_tabs_watching_one_run(tiny_model, data_dir, tmp_path, monkeypatch):
    saves = tmp_path / "saves"
    monkeypatch.setenv(paths.SAVES_ENV, str(saves))
    port = free_port()
    server = start_server(["app.py", "--port", str(port)], tmp_path / "server.log", {paths.SAVES_ENV: str(saves)})
    url = f"http://127.0.0.1:{port}/"
    tabs, stop = [], threading.Event()
    run = None
    try:
        wait_for(serving(server, url, tmp_path / "server.log"), 180, "the web UI")
        out = tmp_path / "watched"
        run = runs.spawn("train", {"model_name_or_path": str(tiny_model), "template": "chatml",
                                   "dataset": ["identity"], "dataset_dir": str(data_dir), "cutoff_len": 64,
                                   "max_samples": 16, "per_device_train_batch_size": 2, "logging_steps": 1,
                                   "max_steps": 100000, "save_steps": 100000, "output_dir": str(out)}, saves)
        rss_before = psutil.Process(server.pid).memory_info().rss
        for _ in range(4):
            seen, errors = [], []
            t = threading.Thread(target=_tab, args=(url, stop, seen, errors), daemon=True)
            t.start()
            tabs.append((t, seen, errors))

        def running_steps(seen):
            return sorted({int(p["step"]) for _, p in seen if p.get("state") == "running" and int(p["step"]) > 0})

        wait_for(lambda: all(len(running_steps(s)) >= 3 for _, s, e in tabs) or any(e for _, _, e in tabs),
                 240, "every tab to follow the run for three steps")
        assert run.status()["state"] == "running", run.tail()
        assert run.abort() is True
        wait_for(lambda: all(s and s[-1][1].get("state") == "aborted" for _, s, _ in tabs) or
                 any(e for _, _, e in tabs), 60, "every tab to show the abort")
        stop.set()
        for t, seen, errors in tabs:
            t.join(60)
            assert not errors, errors
            steps = [int(p["step"]) for _, p in seen if p.get("state") == "running"]
            assert steps == sorted(steps)  # each tab's progress only moves forward
            assert all(str(out) in status for status, _ in seen)  # every tab watches the same run
            assert seen[-1][1]["state"] == "aborted"
        rss_after = psutil.Process(server.pid).memory_info().rss
        print(f"\nweb UI server, 4 tabs polling one run: RSS {rss_before / MiB:.0f} -> {rss_after / MiB:.0f} MiB")
        assert rss_after - rss_before < 150 * MiB
    finally:
        stop.set()
        if run is not None:
            run.abort(grace=2)
        stop_group(server)

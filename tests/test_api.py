"""The OpenAI-compatible API, driven by the official `openai` client against a real uvicorn server."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from engine.api import MAX_BODY, create_app, host_port, start_server_thread
from engine.args import Namespace
from engine.errors import UserError
from helpers import wait_for

KEY = "sk-test-key"
HI = [{"role": "user", "content": "Hello there, who are you?"}]


@pytest.fixture(scope="module")
def engine(tiny_model):
    from engine.chat import ChatEngine
    return ChatEngine({"model_name_or_path": str(tiny_model)})


@pytest.fixture(scope="module")
def server(engine):
    app = create_app(engine, api_key=KEY)
    srv, thread, port = start_server_thread(app)
    yield {"app": app, "port": port, "url": f"http://127.0.0.1:{port}", "worker": app.state.worker,
           "model": app.state.model_id}
    srv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def narrow(engine):
    """A second server on the same engine that decodes one request at a time (the rest wait in its queue)."""
    app = create_app(engine, api_key="", max_batch=1)
    srv, thread, port = start_server_thread(app)
    yield {"app": app, "port": port, "url": f"http://127.0.0.1:{port}", "worker": app.state.worker, "key": ""}
    srv.should_exit = True
    thread.join(30)


def client(server, key=KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=key, max_retries=0, timeout=120)


def wait_idle(worker, timeout=60.0):
    wait_for(lambda: worker.idle, timeout, "the generation worker to go idle", interval=0.02)


def assert_error_shape(resp: httpx.Response, status: int, code=None, param=None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err


def test_models_list(server, tiny_model):
    models = client(server).models.list().data
    assert [m.id for m in models] == [tiny_model.name] == [server["model"]]
    assert client(server).models.retrieve(tiny_model.name).id == tiny_model.name


def test_plain_completion_usage_and_greedy(server, engine):
    c = client(server)
    r = c.chat.completions.create(model=server["model"], messages=HI, max_tokens=12, temperature=0)
    choice = r.choices[0]
    assert r.object == "chat.completion" and choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    # the prompt is the templated conversation with the template's default system prompt
    assert r.usage.prompt_tokens == len(engine.encode(HI))
    assert 1 <= r.usage.completion_tokens <= 12
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # temperature 0 is greedy: the same request gives the same answer
    again = c.chat.completions.create(model=server["model"], messages=HI, max_tokens=12, temperature=0)
    assert again.choices[0].message.content == choice.message.content


def test_streamed_equals_plain(server):
    c = client(server)
    plain = c.chat.completions.create(model="default", messages=HI, max_tokens=12, temperature=0)
    chunks = list(c.chat.completions.create(model=server["model"], messages=HI, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens


def test_stream_ends_with_done_line(server):
    body = {"model": server["model"], "messages": HI, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server["url"] + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])


def test_system_and_multi_turn_reach_the_prompt(server, engine):
    c = client(server)
    system = "You are a terse assistant that answers in one word."
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "What is two plus two?"}]
    r = c.chat.completions.create(model=server["model"], max_tokens=2, temperature=0,
                                  messages=[{"role": "system", "content": system}] + turns)
    assert r.usage.prompt_tokens == len(engine.encode(turns, system))
    short = c.chat.completions.create(model=server["model"], max_tokens=2, temperature=0, messages=turns[-1:])
    assert r.usage.prompt_tokens > short.usage.prompt_tokens
    # content given as OpenAI text parts is the same prompt
    parts = c.chat.completions.create(model=server["model"], max_tokens=2, temperature=0, messages=[
        {"role": "system", "content": [{"type": "text", "text": system}]}] + turns)
    assert parts.usage.prompt_tokens == r.usage.prompt_tokens


def test_stop_sequence_cuts_the_answer(server):
    c = client(server)
    # the random tiny model only says "\n" when greedy; seeded sampling gives varied, repeatable text
    kw = dict(model=server["model"], messages=HI, max_tokens=24, temperature=1.0, seed=7)
    text = c.chat.completions.create(**kw).choices[0].message.content
    words = [w for w in text.split() if len(w) >= 3]
    assert len(words) >= 2, text
    stop = words[1][:3]
    r = c.chat.completions.create(**kw, stop=["\u2603never", stop])
    assert r.choices[0].message.content == text[:text.find(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_sampling_parameters_are_honoured(server):
    c = client(server)
    kw = dict(model=server["model"], messages=HI, max_tokens=10, temperature=1.5, top_p=0.9, seed=123)
    a = c.chat.completions.create(**kw).choices[0].message.content
    b = c.chat.completions.create(**kw).choices[0].message.content
    assert a == b  # the seed makes sampling repeatable
    others = {c.chat.completions.create(**{**kw, "seed": s}).choices[0].message.content for s in range(4)}
    assert len(others) > 1  # and sampling really samples (a random tiny model spreads its probability)


def test_wrong_or_missing_key_is_401(server):
    with pytest.raises(openai.AuthenticationError) as e:
        client(server, key="sk-wrong").chat.completions.create(model=server["model"], messages=HI, max_tokens=2)
    assert e.value.status_code == 401
    r = httpx.post(server["url"] + "/v1/chat/completions", json={"messages": HI}, timeout=30)
    assert_error_shape(r, 401, code="invalid_api_key")
    r = httpx.get(server["url"] + "/v1/models", headers={"Authorization": "Bearer sk-wrong"}, timeout=30)
    assert_error_shape(r, 401, code="invalid_api_key")


def _post(server, body, raw=None):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    return httpx.post(server["url"] + "/v1/chat/completions", timeout=30, headers=headers,
                      content=raw if raw is not None else json.dumps(body))


def test_malformed_bodies_get_400_with_a_message(server):
    err = assert_error_shape(_post(server, None, raw=b"{not json"), 400)
    assert "JSON" in err["message"]
    err = assert_error_shape(_post(server, {"model": server["model"]}), 400, param="messages")
    assert "messages" in err["message"]
    assert_error_shape(_post(server, {"messages": "hello"}), 400, param="messages")
    assert_error_shape(_post(server, {"messages": HI, "temperature": 5}), 400, param="temperature")
    assert_error_shape(_post(server, {"messages": HI, "max_tokens": 0}), 400, param="max_tokens")
    assert_error_shape(_post(server, {"messages": [{"role": "tool", "content": "x"}]}), 400,
                       param="messages.0.role")
    assert_error_shape(_post(server, {"messages": HI + [{"role": "assistant", "content": "x"}]}), 400,
                       param="messages")
    assert_error_shape(_post(server, {"messages": HI, "n": 2}), 400, param="n")
    assert_error_shape(_post(server, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}), 400)
    with pytest.raises(openai.BadRequestError) as e:
        client(server).chat.completions.create(model=server["model"], messages=HI, temperature=3)
    assert "temperature" in str(e.value)
    # unknown route: same error shape
    assert_error_shape(httpx.get(server["url"] + "/v1/nope", timeout=30), 404)


def test_a_number_that_is_not_finite_is_named_as_such(server):
    for raw in (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
                b'{"messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}'):
        err = assert_error_shape(_post(server, None, raw=raw), 400)
        assert "finite number" in err["message"] and "less than or equal" not in err["message"], err


def test_unknown_model_is_404_and_aliases_work(server, tiny_model):
    with pytest.raises(openai.NotFoundError) as e:
        client(server).chat.completions.create(model="gpt-17-ultra", messages=HI, max_tokens=2)
    assert e.value.code == "model_not_found"
    for alias in (str(tiny_model), tiny_model.name.upper(), "default"):
        r = client(server).chat.completions.create(model=alias, messages=HI, max_tokens=2)
        assert r.model == server["model"]
    assert_error_shape(httpx.get(server["url"] + "/v1/models/gpt-17-ultra", timeout=30,
                                 headers={"Authorization": f"Bearer {KEY}"}), 404, code="model_not_found")


def test_sixteen_concurrent_requests_all_answered(server):
    worker = server["worker"]
    wait_idle(worker)
    before = worker.stats["completed"]

    def ask(i):
        c = client(server)
        msgs = [{"role": "user", "content": f"Request number {i}: say something."}]
        if i % 2:
            chunks = list(c.chat.completions.create(model=server["model"], messages=msgs, max_tokens=6,
                                                    temperature=0, stream=True))
            return "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        return c.chat.completions.create(model=server["model"], messages=msgs, max_tokens=6,
                                         temperature=0).choices[0].message.content

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(16)))
    assert len(answers) == 16 and all(isinstance(a, str) and a for a in answers)
    assert worker.stats["completed"] - before == 16
    # still up and answering
    assert httpx.get(server["url"] + "/health", timeout=30).json()["status"] == "ok"
    assert client(server).chat.completions.create(model=server["model"], messages=HI, max_tokens=2).choices


def test_disconnect_mid_stream_stops_generation(server, engine):
    c = client(server)
    worker = server["worker"]
    msgs = [{"role": "user", "content": "Write a very long story."}]
    # greedy runs 300 tokens without meeting a stop token, so a 2000-token stream would run long
    probe = c.chat.completions.create(model=server["model"], messages=msgs, max_tokens=300, temperature=0)
    assert probe.choices[0].finish_reason == "length" and probe.usage.completion_tokens == 300
    wait_idle(worker)
    cancelled = worker.stats["cancelled"]
    stream = c.chat.completions.create(model=server["model"], messages=msgs, max_tokens=2000, temperature=0,
                                       stream=True)
    got = 0
    for ch in stream:
        if ch.choices and ch.choices[0].delta.content:
            got += 1
            if got == 3:
                break
    stream.close()  # the client goes away mid-answer
    wait_idle(worker)
    assert worker.stats["cancelled"] == cancelled + 1
    # the worker counted the tokens it really generated: far fewer than the 300 it would have made by then
    assert worker.last["finish_reason"] == "cancelled"
    assert 3 <= worker.last["completion_tokens"] < 300


def test_queued_request_whose_client_left_is_skipped(narrow, engine, monkeypatch):
    """A request still waiting in the queue when its client goes away is never generated."""
    worker = narrow["worker"]
    wait_idle(worker)
    before = dict(worker.stats)
    rows = []
    real_row = engine.row
    monkeypatch.setattr(engine, "row", lambda prompt: rows.append(prompt) or real_row(prompt))
    with ThreadPoolExecutor(1) as pool:
        with engine.lock:  # the worker cannot generate: the first request holds the only row, the second waits
            busy = pool.submit(client(narrow).chat.completions.create, model="default", messages=HI, max_tokens=5)
            wait_for(lambda: len(worker.active) == 1, 60, "the first request to take the row")
            body = json.dumps({"messages": HI, "max_tokens": 5}).encode()
            sock = socket.create_connection(("127.0.0.1", narrow["port"]))
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            queued = wait_for(lambda: list(worker.queued), 60, "the second request to wait")[0]
            sock.close()  # the queued client goes away
            wait_for(queued.cancel.is_set, 60, "the server to notice the queued client leaving")
        assert busy.result().choices[0].message.content
    wait_idle(worker)
    assert worker.stats["cancelled"] - before["cancelled"] == 1
    assert worker.stats["completed"] - before["completed"] == 1
    assert len(rows) == 1  # only the first request ever reached the model


def test_concurrent_requests_are_batched_and_answer_as_alone(server, engine):
    """Eight greedy requests of different lengths decoded together give, each, the answer it gets alone."""
    worker = server["worker"]
    asks = [[{"role": "user", "content": "Hi"}], HI,
            [{"role": "user", "content": "Tell me a long story about a dragon and a knight, please."},
             {"role": "assistant", "content": "Once upon a time"}, {"role": "user", "content": "Go on."}]]
    asks += [[{"role": "user", "content": "Why" + " and why" * (3 * i)}] for i in range(2, 7)]
    kw = dict(model="default", temperature=0, extra_body={"repetition_penalty": 2.0})  # varied text, still greedy
    lengths = [12, 30, 7, 25, 18, 30, 3, 21]  # rows end at different steps and leave the batch
    alone = [client(server).chat.completions.create(messages=m, max_tokens=n, **kw)
             for m, n in zip(asks, lengths)]
    wait_idle(worker)
    worker.peak = 0
    with ThreadPoolExecutor(8) as pool:
        with engine.lock:  # nothing generates until all eight wait: they are decoded together
            futures = [pool.submit(client(server).chat.completions.create, messages=m, max_tokens=n, **kw)
                       for m, n in zip(asks, lengths)]
            wait_for(lambda: worker.pending == 8, 60, "all eight requests to arrive")
        together = [f.result() for f in futures]
    assert worker.peak >= 7  # the first may have been prefilled alone, the others joined it
    assert [r.choices[0].message.content for r in together] == [r.choices[0].message.content for r in alone]
    assert [r.usage.completion_tokens for r in together] == [r.usage.completion_tokens for r in alone]
    assert len({r.usage.prompt_tokens for r in together}) == 8  # really different lengths: left padding was used


def test_engine_refusal_is_a_400_in_both_modes(server):
    c = client(server)
    huge = [{"role": "user", "content": "word " * 2100}]  # longer than the tiny model's 2048-token context
    with pytest.raises(openai.BadRequestError, match="context"):
        c.chat.completions.create(model=server["model"], messages=huge, max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="context"):
        list(c.chat.completions.create(model=server["model"], messages=huge, max_tokens=2, stream=True))
    assert c.chat.completions.create(model=server["model"], messages=HI, max_tokens=2).choices


def test_oversized_bodies_are_413_and_cost_nothing(server):
    """Bodies over the stated limit are refused before they are parsed, whether they say their length or not."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = server["url"] + "/v1/chat/completions"
    over = json.dumps({"messages": [{"role": "user", "content": "x" * MAX_BODY}]}).encode()  # just over 4 MiB
    huge = json.dumps({"messages": [{"role": "user", "content": "word " * (4 << 20)}]}).encode()  # 20 MiB
    rss = psutil.Process().memory_info().rss
    err = assert_error_shape(httpx.post(url, content=over, headers=headers, timeout=60), 413, code="request_too_large")
    assert "4 MiB" in err["message"]
    assert_error_shape(httpx.post(url, content=huge, headers=headers, timeout=60), 413, code="request_too_large")

    def chunked():  # no Content-Length: refused once the limit is passed
        for i in range(0, len(huge), 1 << 20):
            yield huge[i:i + (1 << 20)]
    assert_error_shape(httpx.post(url, content=chunked(), headers=headers, timeout=60), 413, code="request_too_large")
    assert psutil.Process().memory_info().rss - rss < 64 << 20  # nothing was kept (a parsed 20 MB body costs GBs)
    assert client(server).chat.completions.create(model="default", messages=HI, max_tokens=2).choices


def test_seed_out_of_range_is_a_400(server):
    for seed in (2**63, 2**64 + 5, -(2**63) - 1):
        assert_error_shape(_post(server, {"messages": HI, "seed": seed}), 400, param="seed")
    r = _post(server, {"messages": HI, "seed": 2**63 - 1, "temperature": 1.0, "max_tokens": 2})
    assert r.status_code == 200, r.text


def test_a_prompt_is_counted_while_the_model_is_busy(server, engine):
    """Tokenising (and refusing) a prompt does not wait for the generation thread."""
    worker = server["worker"]
    wait_idle(worker)
    huge = [{"role": "user", "content": "word " * 2100}]  # longer than the tiny model's context
    with ThreadPoolExecutor(1) as pool:
        with engine.lock:  # the model is busy: the worker holds a request it cannot start
            busy = pool.submit(client(server).chat.completions.create, model="default", messages=HI, max_tokens=2)
            wait_for(lambda: len(worker.active) == 1, 60, "the worker to take the first request")
            with pytest.raises(openai.BadRequestError, match="context"):
                client(server).chat.completions.create(model="default", messages=huge, max_tokens=2)
        assert busy.result().choices


def test_every_request_is_answered_by_its_deadline(engine):
    """With the model busy past the deadline, a request that never started gets a 503, and a whole answer still
    being written is cut and sent with what it has, so no client waits past its timeout."""
    app = create_app(engine, api_key="", max_batch=1, deadline_s=2)
    srv, thread, port = start_server_thread(app)
    worker = app.state.worker
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=120)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.chat.completions.create, model="default", messages=HI, max_tokens=2000,
                                temperature=0)
            row = wait_for(lambda: worker.active and worker.active[0].row, 60, "the first request to start")
            wait_for(lambda: row.count > 0, 60, "its first token")
            with engine.lock:  # the model is busy past every deadline
                second = pool.submit(lambda: list(c.chat.completions.create(model="default", messages=HI,
                                                                            max_tokens=5, stream=True)))
                with pytest.raises(openai.APIStatusError) as e:
                    second.result(timeout=60)
                assert e.value.status_code == 503 and "busy" in str(e.value)
            r = first.result(timeout=60)
        assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens < 2000
        wait_idle(worker)
        assert worker.stats["cancelled"] == 1 and worker.stats["completed"] == 1
    finally:
        srv.should_exit = True
        thread.join(30)


def test_a_model_that_cannot_batch_is_served_one_request_at_a_time(engine, monkeypatch):
    monkeypatch.setattr(engine, "_batches", False)
    app = create_app(engine, api_key="")
    srv, thread, port = start_server_thread(app)
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=120)
    kw = dict(model="default", messages=HI, max_tokens=12, temperature=0, extra_body={"repetition_penalty": 2.0})
    try:
        expected = engine.chat(HI, max_new_tokens=12, do_sample=False, repetition_penalty=2.0).text
        with ThreadPoolExecutor(3) as pool:
            plain = [pool.submit(c.chat.completions.create, **kw) for _ in range(2)]
            streamed = pool.submit(lambda: "".join(ch.choices[0].delta.content or "" for ch in
                                                   c.chat.completions.create(**kw, stream=True) if ch.choices))
            assert [f.result().choices[0].message.content for f in plain] == [expected] * 2
            assert streamed.result() == expected
        assert app.state.worker.peak == 1 and app.state.worker.stats["completed"] == 3
    finally:
        srv.should_exit = True
        thread.join(30)


def test_host_port_resolution():
    from engine.cli import COMMANDS, parse

    def host_port_of(argv, env):
        return host_port(parse("api", COMMANDS["api"], argv), env=env)
    assert host_port_of([], env={}) == ("127.0.0.1", 8000)
    assert host_port_of([], env={"API_HOST": "0.0.0.0", "API_PORT": "9001"}) == ("0.0.0.0", 9001)
    assert host_port_of(["--host", "::1", "--port", "8123"], env={"API_PORT": "9001"}) == ("::1", 8123)
    assert host_port_of(["--port=8124"], env={}) == ("127.0.0.1", 8124)
    with pytest.raises(UserError, match="--port"):
        host_port_of(["--port", "eighty"], env={})
    with pytest.raises(UserError, match="API_PORT"):
        host_port_of([], env={"API_PORT": "70000"})
    with pytest.raises(UserError, match="--hots"):
        host_port_of(["--hots", "x"], env={})


def test_cli_serves_with_api_key(tiny_model, tmp_path):
    """`python -m engine api` end to end: binds the port given, requires the key from API_KEY."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "API_KEY": "sk-cli", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "api.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "api", f"model_name_or_path={tiny_model}",
                             "--port", str(port)], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    def healthy():
        assert proc.poll() is None, (tmp_path / "api.log").read_text()  # ends the wait at once
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200

    try:
        wait_for(healthy, 120, "the API server's /health", interval=0.2, ignore=(httpx.TransportError,))
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-cli", max_retries=0, timeout=60)
        assert c.chat.completions.create(model=tiny_model.name, messages=HI, max_tokens=3).choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-other", max_retries=0).models.list()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    out = (tmp_path / "api.log").read_text()
    assert f"http://127.0.0.1:{port}/v1" in out and "API_KEY is set" in out


def test_cli_bad_port_is_a_clear_error(tmp_path):
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "engine", "api", "--port", "http"], cwd=root,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port: expected a port number" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_bundled_model_answers_over_the_api(bundled_model):
    from engine.chat import ChatEngine
    app = create_app(ChatEngine({"model_name_or_path": str(bundled_model)}), api_key="")
    srv, thread, port = start_server_thread(app)
    try:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
        r = c.chat.completions.create(model="SmolLM2-135M-Instruct", temperature=0, max_tokens=20,
                                      messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert "Paris" in r.choices[0].message.content
        chunks = list(c.chat.completions.create(model="SmolLM2-135M-Instruct", temperature=0, max_tokens=20,
                                                stream=True, messages=[{"role": "user", "content":
                                                                        "What is the capital of France?"}]))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == \
            r.choices[0].message.content
    finally:
        srv.should_exit = True
        thread.join(30)


def test_example_recipe_is_valid():
    from engine.api import model_names
    from engine.config import load_config
    args = load_config(Path(__file__).resolve().parent.parent / "examples/api/smollm2.yaml", [], command="infer")
    served, aliases = model_names(args)
    assert served == "SmolLM2-135M-Instruct" and "models/smollm2-135m-instruct" in aliases
    served, _ = model_names(Namespace({"model_name_or_path": "m/base", "adapter_name_or_path": ["saves/run_7/"]}))
    assert served == "run_7"

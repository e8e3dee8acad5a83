"""OpenAI-compatible API: `tuneboard api [recipe.yaml] [key=value ...] [--host H] [--port P]`.

GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions (streamed as SSE `chat.completion.chunk`s
ending with `data: [DONE]`, or one `chat.completion`), GET /health.

Tools: `tools` (OpenAI function specs) and `tool_choice` "auto" / "none" are accepted; messages may hold assistant
`tool_calls` and role `tool` results. The model's calls (engine.data.tools' format, read back by the parser the Chat
tab uses) come back as `message.tool_calls` with finish_reason "tool_calls"; a streamed request with tools streams
the plain text as it is generated and holds back only what may be a call (engine.data.tools.CallHoldback), sent
as one `delta.tool_calls` chunk once the answer is complete.

Generation runs in ONE worker thread and the event loop never waits on the model. Requests running together are
rows of one engine.batching.Decoder: a request that arrives joins at the next model step, each leaves when its
answer ends, so tokens/s grows with concurrency (up to MAX_BATCH rows; the rest wait in arrival order). A request
whose client has gone away is skipped if still waiting and dropped from the batch at the next step if running.
Limits (docs/guide/serving.md): MAX_BODY bytes of body (413), prompts tokenised off the worker thread, DEADLINE_S
to start (503) and to finish a non-streamed answer (cut, finish_reason "length"), MAX_QUEUE waiting (429).
When API_KEY is set every /v1 request must carry `Authorization: Bearer $API_KEY`. Errors use OpenAI's shape:
{"error": {"message", "type", "param", "code"}}.

Shape: the request models (ChatRequest...) at module level; GenerationWorker drives the model; Routes puts the
endpoints on a fastapi APIRouter over one worker; create_app assembles the app (body limit, error handlers, router).
Only `tuneboard api` and tests import this module (the command table names it as a string), so fastapi and uvicorn
are imported at the top.
"""
import asyncio
import hmac
import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .args import Namespace
from .chat import SEED_MAX, SEED_MIN, ChatEngine, friendly_error
from .cli import env_port
from .config import load_config
from .data.tools import FUNCTION, OBSERVATION, CallHoldback, calls_json, openai_tool_calls, parse_calls, parse_tools
from .errors import UserError
from .utils import get_logger

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
MAX_QUEUE = 128          # waiting requests beyond this get 429 instead of an unbounded backlog
MAX_BATCH = 32           # requests decoded together; the others wait for a row to end
MAX_BODY = 4 << 20       # bytes of a request body; more is a 413 before any of it is parsed
DEADLINE_S = 540.0       # every request is answered within this, under OpenAI clients' default 600 s timeout
MAX_STOP = 16
log = get_logger("tuneboard.api")


# ---------------------------------------------------------------- errors

class APIError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# ---------------------------------------------------------------- the worker

@dataclass
class Job:
    prompt: Any  # engine.chat.Prompt: token ids and settings, checked in the request's thread
    stream: bool
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    deadline: float  # time.monotonic() by which the client must have its answer (Routes.chat_completions)
    cancel: threading.Event = field(default_factory=threading.Event)
    tools: list | None = None  # function specs offered to the model (None: no tools)
    row: Any = None  # its engine.batching.Row while it runs
    hold: Any = None  # CallHoldback when tools were offered
    parts: list = field(default_factory=list)

    def emit(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: the server is gone, nobody is listening
            self.cancel.set()

    def overdue(self) -> bool:
        """A whole answer (not a stream, which is read as it comes) must be sent before the client gives up."""
        return not self.stream and time.monotonic() >= self.deadline


class GenerationWorker:
    """One thread drives the model. With an engine that batches (engine.batching), every running request is a row
    of one Decoder: requests that arrive join at the next step, prefilled together, and each leaves as soon as it
    ends, so tokens/s grows with the number of concurrent requests (up to max_batch rows; the rest wait in
    arrival order). An engine that cannot batch answers one request at a time, in arrival order."""

    def __init__(self, engine, max_queue: int = MAX_QUEUE, max_batch: int = MAX_BATCH):
        self.engine = engine
        self.max_queue, self.max_batch = max_queue, max_batch
        self.queued: deque[Job] = deque()
        self.active: list[Job] = []
        self.cond = threading.Condition()
        self.stats = {"completed": 0, "cancelled": 0, "failed": 0}
        self.last: dict = {}  # the stats of the last request that ended (finished or cancelled)
        self.peak = 0  # the most requests decoded together so far
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.cond:
            self._stopping = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="tuneboard-api-worker", daemon=True)
                self._thread.start()

    def stop(self, timeout: float | None = 10) -> None:
        with self.cond:
            t = self._thread
            self._stopping = True
            for job in self.active:
                job.cancel.set()
            self.cond.notify_all()
        if t is not None and t.is_alive():
            t.join(timeout)

    @property
    def waiting(self) -> int:
        return len(self.queued)

    @property
    def pending(self) -> int:
        """Requests running or waiting."""
        with self.cond:
            return len(self.active) + len(self.queued)

    @property
    def idle(self) -> bool:
        with self.cond:
            return not self.active and not self.queued

    def submit(self, job: Job) -> None:
        with self.cond:
            if len(self.queued) >= self.max_queue:
                raise APIError(429, f"The server is busy ({len(self.queued)} requests waiting); retry later.",
                               type="server_error", code="server_busy")
            self.queued.append(job)
            self.cond.notify()
        self.start()

    def _take(self, room: int) -> list[Job] | None:
        """Up to `room` waiting jobs (blocks while nothing runs); None when the worker stops."""
        with self.cond:
            while not self._stopping and not self.queued and not self.active:
                self.cond.wait()
            if self._stopping:
                return None
            new = []
            while self.queued and len(new) < room:
                job = self.queued.popleft()
                if job.cancel.is_set():  # its client left (or gave up) while it waited
                    self.stats["cancelled"] += 1
                else:
                    new.append(job)
            self.active += new
            self.peak = max(self.peak, len(self.active))
            return new

    def _end(self, job: Job, failed: BaseException | None = None) -> None:
        with self.cond:
            self.active.remove(job)
        if failed is not None:
            self.stats["failed"] += 1
            job.emit("error", failed)
            return
        stats = job.row.stats()
        self.last = stats
        if stats["finish_reason"] == "cancelled":
            self.stats["cancelled"] += 1
            return
        self.stats["completed"] += 1
        stats["text"] = "".join(job.parts)
        if job.hold:
            rest, stats["text"], calls = job.hold.finish()
            if job.stream and rest:
                job.emit("delta", rest)
            if calls:
                stats["tool_calls"] = openai_tool_calls(calls)
                stats["finish_reason"] = "tool_calls"
        job.emit("done", stats)

    def _loop(self) -> None:
        batches = self.engine.batches
        decoder = None
        while True:
            new = self._take(self.max_batch - len(self.active) if batches else 1)
            if new is None:
                return
            if not batches:
                for job in new:
                    self._serial(job)
                continue
            try:
                if decoder is None:
                    decoder = self.engine.decoder()
                for job in new:
                    job.row = self.engine.row(job.prompt)
                    job.hold = CallHoldback() if job.tools else None
                if new:
                    with self.engine.lock:
                        decoder.add([job.row for job in new])
                    for job in new:
                        job.emit("started")
                    self._deliver()
                for job in list(self.active):  # clients that left, answers whose time is up
                    if job.cancel.is_set() or job.overdue():
                        decoder.remove(job.row, "cancelled" if job.cancel.is_set() else "length")
                if len(decoder):
                    with self.engine.lock:
                        decoder.step()
                self._deliver()
            except Exception as e:  # e.g. out of memory: every running request fails, the worker keeps serving
                log.exception("generation failed")
                err = friendly_error(e)
                for job in list(self.active):
                    self._end(job, err)
                decoder = None

    def _deliver(self) -> None:
        """Each running job's new text to its client; jobs whose row ended are answered and leave."""
        for job in list(self.active):
            delta = job.row.take()
            if delta:
                job.parts.append(delta)
                shown = job.hold.feed(delta) if job.hold else delta
                if job.stream and shown:
                    job.emit("delta", shown)
            if job.row.finish is not None:
                self._end(job)

    def _serial(self, job: Job) -> None:
        """One request start to end through engine.stream_prompt (an engine that cannot batch)."""
        job.hold = CallHoldback() if job.tools else None
        try:
            gen = self.engine.stream_prompt(job.prompt)
            job.emit("started")
            finish = None
            try:
                for delta in gen:
                    if job.cancel.is_set() or job.overdue():
                        finish = "cancelled" if job.cancel.is_set() else "length"
                        break
                    job.parts.append(delta)
                    shown = job.hold.feed(delta) if job.hold else delta
                    if job.stream and shown:
                        job.emit("delta", shown)
            finally:
                gen.close()  # stops generation when we left early
            st = dict(getattr(self.engine, "last_stats", None) or {})
            job.row = _Ended({**st, "finish_reason": finish or st.get("finish_reason") or "stop"})
            self._end(job)
        except Exception as e:  # reported to this request only; the worker keeps serving
            log.exception("generation failed")
            self._end(job, e)


@dataclass
class _Ended:
    """What _end reads from a request answered by _serial."""
    fields: dict

    def stats(self) -> dict:
        return dict(self.fields)


# ---------------------------------------------------------------- the request

class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: Union[str, list[TextPart], None] = None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # NaN is no temperature, not "above 2"
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    stop: Union[str, list[str], None] = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    presence_penalty: float | None = Field(None, ge=-2, le=2)   # accepted, not used
    frequency_penalty: float | None = Field(None, ge=-2, le=2)  # accepted, not used
    logprobs: bool | None = None
    tools: list | None = None
    tool_choice: Any = None
    response_format: dict | None = None


def model_names(args: Namespace) -> tuple[str, set[str]]:
    """The served model id and the names a request may use for it.

    The id is the adapter folder's name when adapters are loaded (that is what was trained), else the
    model folder's name. Also accepted: the paths as configured, the base model's name, `default`, and
    any of these case-insensitively."""
    model = str(args.model_name_or_path or "").rstrip("/")
    adapters = [str(a).rstrip("/") for a in (args.adapter_name_or_path or [])]
    base = Path(model).name or model or "tuneboard"
    served = Path(adapters[-1]).name if adapters else base
    names = {served, base, model, "default", "tuneboard"} | set(adapters) | {Path(a).name for a in adapters}
    if adapters:
        names.add(f"{base}+{served}")
    return served, {n.lower() for n in names if n}


def _text(content: str | list[TextPart] | None, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if part.type != "text":
            raise APIError(400, f"messages[{i}].content[{j}]: only text parts are supported, got type "
                                f"{part.type!r}.", param=f"messages.{i}.content")
        parts.append(part.text or "")
    return "".join(parts)


def to_engine_messages(messages: list[Message]) -> tuple[list[dict], str | None]:
    """OpenAI messages -> (user/assistant turns, system text or None for the template's default). An assistant
    message with tool_calls becomes a `function` turn, a `tool` message an `observation` (engine.data.tools)."""
    system, turns = [], []
    for i, m in enumerate(messages):
        role, text = m.role, _text(m.content, i)
        if role in ("system", "developer"):
            system.append(text)
        elif role == "assistant" and m.tool_calls:
            try:
                turns.append({"role": FUNCTION, "content": calls_json(parse_calls(m.tool_calls,
                                                                                  f"messages[{i}].tool_calls"))})
            except UserError as e:
                raise APIError(400, str(e), param=f"messages.{i}.tool_calls") from None
        elif role in ("tool", "function"):
            if not turns or turns[-1]["role"] not in (FUNCTION, OBSERVATION):
                raise APIError(400, f"messages[{i}].role: a {role!r} message (a tool result) must follow an assistant "
                                    "message with tool_calls.", param=f"messages.{i}.role")
            turns.append({"role": OBSERVATION, "content": text})
        elif role in ("user", "assistant"):
            turns.append({"role": role, "content": text})
        else:
            raise APIError(400, f"messages[{i}].role: {role!r} is not supported; use system, user, assistant or "
                                "tool.", param=f"messages.{i}.role")
    if not turns:
        raise APIError(400, "messages: at least one user message is required.", param="messages")
    if turns[-1]["role"] not in ("user", OBSERVATION):
        raise APIError(400, "messages: the last message must come from the user (or be a tool result).",
                       param="messages")
    return turns, ("\n\n".join(system) if system else None)


def to_tools(req: ChatRequest) -> list | None:
    """The request's tools as function specs for the prompt, or None (no tools, or tool_choice "none")."""
    choice = req.tool_choice
    if choice not in (None, "auto", "none"):
        raise APIError(400, "tool_choice: only \"auto\" and \"none\" are supported (the model decides whether to "
                            "call a tool).", param="tool_choice")
    if not req.tools or choice == "none":
        return None
    try:
        return parse_tools(list(req.tools)) or None
    except UserError as e:
        raise APIError(400, str(e), param="tools") from None


def to_gen_kwargs(req: ChatRequest) -> dict:
    """Request sampling fields -> ChatEngine keyword arguments (unset fields keep the engine's defaults)."""
    gen: dict[str, Any] = {}
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if max_tokens is not None:
        gen["max_new_tokens"] = max_tokens
    if req.temperature is not None:
        if req.temperature == 0:
            gen["do_sample"] = False  # OpenAI's temperature 0 = deterministic
        else:
            gen["do_sample"] = True
            gen["temperature"] = req.temperature
    if req.top_p is not None:
        if req.top_p == 0:
            gen["do_sample"] = False
        else:
            gen["top_p"] = req.top_p
    for key in ("top_k", "repetition_penalty", "seed"):
        if getattr(req, key) is not None:
            gen[key] = getattr(req, key)
    if req.stop is not None:
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop)
        stop = [s for s in stop if s]
        if len(stop) > MAX_STOP:
            raise APIError(400, f"stop: at most {MAX_STOP} stop sequences.", param="stop")
        if stop:
            gen["stop"] = stop
    return gen


@dataclass
class Call:
    """What a chat request asks the engine for, checked: engine.prepare's arguments and the tools offered."""
    messages: list[dict]
    system: str | None
    tools: list | None
    gen: dict

    @classmethod
    def of(cls, req: ChatRequest) -> "Call":
        """Refuses (APIError 400) what this server does not do, in the order a client reads its fields."""
        if req.n != 1:
            raise APIError(400, "n: only n=1 is supported.", param="n")
        if req.logprobs:
            raise APIError(400, "logprobs: not supported by this server.", param="logprobs")
        tools = to_tools(req)
        if req.response_format and req.response_format.get("type", "text") != "text":
            raise APIError(400, "response_format: only type 'text' is supported.", param="response_format")
        messages, system = to_engine_messages(req.messages)
        return cls(messages, system, tools, to_gen_kwargs(req))

    def prepare(self, engine):
        """The engine's Prompt (token ids and settings); run on the tokenising thread."""
        extra = {"tools": self.tools} if self.tools else {}
        return engine.prepare(self.messages, self.system, **extra, **self.gen)


def _validation_message(exc: Any) -> tuple[str, str | None]:
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return "Invalid request body.", None
    e = errors[0]
    loc = [str(p) for p in e.get("loc", ()) if p != "body"]
    if e.get("type") == "json_invalid":
        return f"The request body is not valid JSON ({e.get('ctx', {}).get('error', e.get('msg'))}).", None
    param = ".".join(loc) or None
    msg = e.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return (f"{param}: {msg}{more}." if param else f"{msg}{more}."), param


# ---------------------------------------------------------------- the answer

async def _wait_disconnect(request: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _next(job: Job, request: Request, until: float | None = None):
    """The worker's next event for this job; None when the client disconnected first, "late" when the
    monotonic time `until` came first. Either way the job is cancelled (skipped if queued, else stopped)."""
    waiter = asyncio.ensure_future(job.out.get())
    gone = asyncio.ensure_future(_wait_disconnect(request))
    timeout = None if until is None else max(0.0, until - time.monotonic())
    try:
        await asyncio.wait({waiter, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not waiter.done():
        job.cancel.set()
        waiter.cancel()
        return None if gone.done() and not gone.cancelled() else "late"
    kind, value = waiter.result()
    if kind == "error":
        if isinstance(value, UserError):  # the engine refused the request (too long, bad setting...)
            raise APIError(400, str(value))
        raise APIError(500, f"Generation failed: {value}", type="server_error")
    return kind, value


def _gone() -> JSONResponse:
    return JSONResponse(error_body("client disconnected", code="client_closed"), status_code=499)


def _usage(stats: dict) -> dict:
    pt, ct = int(stats.get("prompt_tokens") or 0), int(stats.get("completion_tokens") or 0)
    return {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


@dataclass
class Answer:
    """One request's answer in OpenAI's shapes: a whole `chat.completion` or a stream of chunks."""
    job: Job
    model: str
    include_usage: bool = False  # the stream ends with a chunk of token counts (stream_options.include_usage)
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    async def complete(self, request: Request):
        ev = await _next(self.job, request)
        if ev is None:
            return _gone()
        stats = ev[1]
        text = stats.get("text") or ""
        message = {"role": "assistant", "content": text}
        if stats.get("tool_calls"):
            message = {"role": "assistant", "content": text or None, "tool_calls": stats["tool_calls"]}
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message,
                         "logprobs": None, "finish_reason": stats.get("finish_reason") or "stop"}],
            "usage": _usage(stats),
        }

    def chunk(self, delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> dict:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                if choices else []}
        if self.include_usage:
            body["usage"] = usage
        return {"data": json.dumps(body, ensure_ascii=False)}

    async def stream(self):
        job, chunk = self.job, self.chunk
        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, value = await job.out.get()
                if kind == "delta":
                    yield chunk({"content": value})
                elif kind == "error":
                    yield {"data": json.dumps(error_body(f"Generation failed: {value}", type="server_error"))}
                    return
                else:
                    # the calls, parsed once the answer was complete (its text came as deltas)
                    calls = (value.get("tool_calls") or []) if job.tools else []
                    if calls:
                        yield chunk({"tool_calls": [{"index": k, **c} for k, c in enumerate(calls)]})
                    yield chunk({}, value.get("finish_reason") or "stop")
                    if self.include_usage:
                        yield chunk({}, usage=_usage(value), choices=False)
                    yield {"data": "[DONE]"}
                    return
        finally:
            job.cancel.set()  # no-op after a normal end; stops the generation when the client went away

    async def closed(self, message) -> None:
        """sse-starlette's call when the client closed the stream: generation stops at the next step."""
        self.job.cancel.set()


# ---------------------------------------------------------------- the routes

class Routes:
    """The API's routes over one GenerationWorker (and through it, its engine): GET /health, GET /v1/models,
    GET /v1/models/{id}, POST /v1/chat/completions, on `router` (a fastapi APIRouter); `lifespan` starts the
    worker and stops it. `key` non-empty: every /v1 route asks for `Authorization: Bearer <key>`."""

    def __init__(self, worker: GenerationWorker, served: str, aliases: set[str], key: str = "",
                 deadline_s: float = DEADLINE_S):
        self.worker, self.served, self.aliases, self.key, self.deadline_s = worker, served, aliases, key, deadline_s
        self.created = int(time.time())
        # one thread counts tokens for every request (a tokenizer is not shared between threads), off the worker's
        self.tokenize = ThreadPoolExecutor(1, thread_name_prefix="tuneboard-api-tokenize")
        self.router = APIRouter()
        guard = [Depends(self.check_key)]
        self.router.add_api_route("/health", self.health, methods=["GET"])
        self.router.add_api_route("/v1/models", self.list_models, methods=["GET"], dependencies=guard)
        self.router.add_api_route("/v1/models/{name:path}", self.get_model, methods=["GET"], dependencies=guard)
        self.router.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"],
                                  dependencies=guard)

    @asynccontextmanager
    async def lifespan(self, app):
        self.worker.start()
        yield
        self.worker.stop(timeout=5)
        self.tokenize.shutdown(wait=False, cancel_futures=True)

    async def check_key(self, request: Request) -> None:
        if not self.key:
            return
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.key.encode()):
            raise APIError(401, "Incorrect or missing API key. Send it as `Authorization: Bearer <key>` "
                                "(the API_KEY the server was started with).", code="invalid_api_key")

    def model_card(self) -> dict:
        return {"id": self.served, "object": "model", "created": self.created, "owned_by": "tuneboard"}

    def resolve_model(self, name: str | None) -> str:
        if name is None or name.lower() in self.aliases:
            return self.served
        raise APIError(404, f"The model {name!r} does not exist; this server serves {self.served!r}.",
                       param="model", code="model_not_found")

    async def health(self):
        w = self.worker
        return {"status": "ok", "model": self.served, "waiting": w.waiting, "running": len(w.active),
                "busy": bool(w.active)}

    async def list_models(self):
        return {"object": "list", "data": [self.model_card()]}

    async def get_model(self, name: str):
        self.resolve_model(name)
        return self.model_card()

    async def chat_completions(self, req: ChatRequest, request: Request):
        model = self.resolve_model(req.model)
        call = Call.of(req)
        deadline = time.monotonic() + self.deadline_s
        loop = asyncio.get_running_loop()
        try:  # the engine's refusals (too long, bad setting) are 400s before anything is queued
            prompt = await loop.run_in_executor(self.tokenize, call.prepare, self.worker.engine)
        except UserError as e:
            raise APIError(400, str(e)) from None
        job = Job(prompt, req.stream, loop, asyncio.Queue(), deadline, tools=call.tools)
        self.worker.submit(job)
        answer = Answer(job, model, include_usage=bool(req.stream and req.stream_options
                                                        and req.stream_options.include_usage))
        # wait (queued) until generation starts: a stream's headers go out only then
        started = await _next(job, request, deadline)
        if started is None:
            return _gone()
        if started == "late":
            raise APIError(503, f"The server stayed busy for {self.deadline_s:.0f} s and did not start this "
                                "request; retry later.", type="server_error", code="timeout")
        if req.stream:
            return EventSourceResponse(answer.stream(), ping=10, client_close_handler_callable=answer.closed)
        return await answer.complete(request)


# ---------------------------------------------------------------- the app

class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is answered 413 (OpenAI's error shape) and none of it is
    kept: at once when Content-Length says so, else as soon as the streamed body passes the limit (the application
    then sees a disconnect and whatever it answers is dropped). The server reads and discards the rest, so the
    client, still sending, gets the 413 rather than a reset connection."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        seen, refused = 0, False

        async def counted():
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)

    async def _refuse(self, send) -> None:
        mib = self.limit / (1 << 20)
        body = json.dumps(error_body(f"The request body is larger than this server's limit of {mib:g} MiB; "
                                     "send a shorter conversation.", code="request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})



def create_app(engine, model_id: str | None = None, api_key: str | None = None,
               max_queue: int = MAX_QUEUE, max_batch: int = MAX_BATCH, max_body: int = MAX_BODY,
               deadline_s: float = DEADLINE_S) -> FastAPI:
    """A FastAPI app serving `engine` (a ChatEngine; its `args` name the served model, see model_names).

    api_key None -> read the API_KEY environment variable; "" -> no key required.
    Limits: a body over `max_body` bytes is a 413 before it is parsed; prompts are tokenised and checked in a
    thread of their own, never on the generation thread; a request not started within `deadline_s` (every slot
    busy) gets a 503, and a whole (not streamed) answer still running then is cut and sent with finish_reason
    "length", so a client never waits past its timeout without an answer. max_batch: requests decoded together."""
    args = engine.args
    if not isinstance(args, Namespace):  # engine.chat.ChatEngine keeps the values as a plain dict
        args = Namespace(args)
    served, aliases = model_names(args)
    if model_id:
        served = model_id
        aliases.add(model_id.lower())
    key = os.environ.get("API_KEY", "") if api_key is None else api_key
    worker = GenerationWorker(engine, max_queue=max_queue, max_batch=max_batch)
    routes = Routes(worker, served, aliases, key=key, deadline_s=deadline_s)
    app = FastAPI(title="TuneBoard OpenAI-compatible API", lifespan=routes.lifespan)
    app.add_middleware(BodyLimit, limit=max_body)
    app.state.engine, app.state.worker, app.state.model_id = engine, worker, served
    add_error_handlers(app)
    app.include_router(routes.router)
    return app


async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    msg, param = _validation_message(exc)
    return JSONResponse(error_body(msg, param=param), status_code=400)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    msg = f"{request.method} {request.url.path}: {exc.detail}"
    return JSONResponse(error_body(msg, code=code), status_code=exc.status_code)


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return JSONResponse(error_body(f"Internal server error: {exc}", type="server_error"), status_code=500)


def add_error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's shape: ours, a body that does not validate (400), an unknown route, a crash."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _crash)


# ---------------------------------------------------------------- serving

def start_server_thread(app, host: str = DEFAULT_HOST, port: int = 0, timeout: float = 30):
    """Serve `app` with uvicorn in a daemon thread (tests, the web UI). Returns (server, thread, port).
    port 0 picks a free port; the socket is bound before the thread starts, so there is no race."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="tuneboard-api")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)  # polling a flag uvicorn sets, with a deadline
    return server, thread, sock.getsockname()[1]


def host_port(opts, env: dict | None = None) -> tuple[str, int]:
    """--host / --port (parsed by engine.cli), else API_HOST / API_PORT, else 127.0.0.1:8000."""
    env = os.environ if env is None else env
    host = opts.host or env.get("API_HOST") or DEFAULT_HOST
    return host, opts.port or env_port(env, "API_PORT", DEFAULT_PORT)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(f"--port: cannot listen on {host}:{port} ({e.strerror}); "
                            "another server may be using it - pick another with --port.") from None


def run_cli(opts) -> int:
    """`tuneboard api [recipe.yaml] [key=value ...] [--host H] [--port P]` (opts: parsed by engine.cli)."""
    host, port = host_port(opts)
    args = load_config(opts.recipe, opts.overrides, command="infer")
    _check_port_free(host, port)
    engine = ChatEngine(args)
    app = create_app(engine)
    served = app.state.model_id
    shown = f"[{host}]" if ":" in host else host
    print(f"OpenAI-compatible API on http://{shown}:{port}/v1  (model: {served})", flush=True)
    if os.environ.get("API_KEY"):
        print("API_KEY is set: clients must send `Authorization: Bearer <API_KEY>`.", flush=True)
    elif host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host} without API_KEY; anyone who can reach this port can use it.", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0

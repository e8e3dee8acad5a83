"""Grow a dataset with a bigger model: for each record, ask an OpenAI-compatible endpoint for N new records of
the same kind, keep the replies that parse and convert, and register them as a new dataset beside the original.

    tuneboard augment dataset=NAME dataset_dir=DIR base_url=URL model=NAME n=N [max_samples=K] [prompt=FILE]

The key comes from OPENAI_API_KEY (or the web UI's password box) and lives only in the request headers: never in
a file, a log line or an error message. Requests run in a bounded thread pool; a timeout, a 429 or a 5xx is
retried with backoff, a reply that is not JSON (a fenced ```json block is found too) or does not convert to the
dataset's format is dropped and counted, and so is a repeat of a record already there. The job's files:

    <dataset_dir>/<output>.jsonl                 the new records, appended as they come (the dataset's file)
    <dataset_dir>/.augment/<output>.json         what was asked (never the key) and the counts
    <dataset_dir>/.augment/<output>.tasks.jsonl  one line per finished request: which record, which copy, outcome

so a job that stops (Ctrl-C, a closed UI, a crash) keeps what it finished, and the same command continues it:
only the requests without an outcome (and those that failed) are sent again, and records a request left
in the output without its outcome (stopped between the two writes) are removed first.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import args as schema
from ..config import load_config
from ..utils import atomic_write_json, get_logger, read_jsonl_objects
from ..errors import UserError
from .converters import Invalid, convert_row
from .readers import read_records
from .registry import INFO_FILE, add_entry, data_kind, dataset_stage, info_lock, load_dataset_info, read_json_file

KEY_ENV = "OPENAI_API_KEY"
JOBS = ".augment"
KEPT, DUPLICATE, BROKEN, INVALID, FAILED = "kept", "duplicate", "broken", "invalid", "failed"
OUTCOMES = (KEPT, DUPLICATE, BROKEN, INVALID, FAILED)
FINAL = (KEPT, DUPLICATE, BROKEN, INVALID)  # a failed request is sent again when the job continues
BACKOFF_S = float(os.environ.get("TUNEBOARD_AUGMENT_BACKOFF_S", "0.5"))  # first retry; doubles, at most 30 s
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_PROMPT = """Here is one example from a training dataset, as JSON:

{record}

Write one new example of the same kind: a different question or task on a similar topic, with a good answer. \
Reply with only the JSON object, with exactly the same keys."""
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
log = get_logger()


class Fatal(UserError):
    """The endpoint refuses every request (bad key, unknown model, wrong URL): stop the job, say why."""


@dataclass
class Job:
    dataset: str
    dataset_dir: str
    base_url: str
    model: str
    n: int = 2
    max_samples: int | None = None
    template: str = DEFAULT_PROMPT
    output: str | None = None
    workers: int = 4
    retries: int = 3
    timeout: float = 120.0
    temperature: float = 0.95
    max_tokens: int = 512

    def asked(self) -> dict:
        """What identifies the job on disk (a continuation must ask the same)."""
        keep = ("dataset", "base_url", "model", "n", "max_samples", "template", "temperature", "max_tokens")
        return {k: v for k, v in asdict(self).items() if k in keep}


@dataclass
class Progress:
    total: int = 0
    done: int = 0                 # requests with an outcome, this run and before
    counts: dict = field(default_factory=lambda: {k: 0 for k in OUTCOMES})
    retries: int = 0
    output: str = ""
    state: str = "starting"       # starting | running | finished | stopped | failed
    error: str | None = None

    def line(self) -> str:
        c = self.counts
        return (f"{self.done}/{self.total} requests · kept {c[KEPT]} · duplicates {c[DUPLICATE]} · broken replies "
                f"{c[BROKEN]} · not the dataset's format {c[INVALID]} · failed {c[FAILED]} · retries {self.retries}")


# ---------------------------------------------------------------- replies
def extract_json(text: str):
    """The JSON a reply holds: the whole text, else a fenced ```json block, else the first {...} / [...] in it."""
    text = (text or "").strip()
    candidates = [text] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for c in candidates:
        try:
            return json.loads(c)
        except ValueError:
            continue
    dec = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return dec.raw_decode(text, i)[0]
            except ValueError:
                continue
    raise ValueError("no JSON in the reply")


def _std_key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


# ---------------------------------------------------------------- the endpoint
def _client(timeout: float):
    import httpx
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def ask(client, job: Job, key: str | None, prompt: str, on_retry: Callable[[], None] = lambda: None) -> str:
    """One chat completion: the reply's text. Retries timeouts, dropped connections, 429 and 5xx with backoff;
    RuntimeError after the last try; Fatal for a refusal that no retry can fix (401, 403, 404...)."""
    import httpx
    url = job.base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": job.model, "messages": [{"role": "user", "content": prompt}], "temperature": job.temperature,
            "max_tokens": job.max_tokens}
    last = ""
    for attempt in range(job.retries + 1):
        if attempt:
            on_retry()
            time.sleep(min(BACKOFF_S * 2 ** (attempt - 1), 30.0) * (0.5 + random.random()))
        try:
            r = client.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            last = f"no reply within {job.timeout:g} s"
            continue
        except httpx.TransportError as e:
            last = f"connection failed ({type(e).__name__})"
            continue
        if r.status_code in RETRY_STATUS:
            last = f"HTTP {r.status_code}: {_short(r.text)}"
            continue
        if r.status_code >= 400:
            raise Fatal(f"the endpoint {job.base_url} refused the request: HTTP {r.status_code}: {_short(r.text)}"
                        + (" (check the API key)" if r.status_code in (401, 403) else "")
                        + (" (check base_url and model)" if r.status_code == 404 else ""))
        try:
            return r.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            last = f"an answer that is not a chat completion: {_short(r.text)}"
            continue
    raise RuntimeError(last or "failed")


# ---------------------------------------------------------------- the job on disk
def _jobs_dir(job: Job) -> Path:
    return Path(job.dataset_dir) / JOBS


def _state_path(job: Job, name: str) -> Path:
    return _jobs_dir(job) / f"{name}.json"


def _tasks_path(job: Job, name: str) -> Path:
    return _jobs_dir(job) / f"{name}.tasks.jsonl"


def output_name(job: Job, info: dict) -> str:
    """The job's dataset name: the one of an earlier job that asked the same (it continues), else the first of
    <output>, <output>2, ... that no dataset and no other job holds."""
    base = job.output or f"{job.dataset}_aug"
    k = 1
    while True:
        name = base if k == 1 else f"{base}{k}"
        state = _state_path(job, name)
        if state.is_file():
            try:
                if json.loads(state.read_text(encoding="utf-8")).get("asked") == job.asked():
                    return name
            except ValueError:
                pass
        elif name not in info and not (Path(job.dataset_dir) / f"{name}.jsonl").exists():
            return name
        if job.output and k == 1 and name in info and not state.is_file():
            raise UserError(f"output: a dataset named {name!r} exists already and was not made by this job; choose "
                            "another name (an existing dataset is never replaced).")
        k += 1


def _entry(job: Job, name: str) -> dict:
    """The new dataset's dataset_info entry: the original's mapping over the new file."""
    raw = read_json_file(Path(job.dataset_dir) / INFO_FILE)[job.dataset]
    keep = {k: v for k, v in raw.items() if k in ("formatting", "ranking", "columns", "tags")}
    return {"file_name": f"{name}.jsonl", **keep}


def _done_tasks(path: Path) -> tuple[dict[str, str], int | None]:
    """Each finished request's outcome, and where the output file ended after the last recorded append (None for
    a job recorded before the offsets were)."""
    out, end = {}, None
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    out[rec["task"]] = rec["outcome"]
                    if isinstance(rec.get("end"), int):
                        end = max(end or 0, rec["end"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a line cut short by a crash: that request is simply sent again
    except FileNotFoundError:
        pass
    if end is None and KEPT not in out.values():
        end = 0  # nothing kept yet: every record in the output is unaccounted for
    return out, end


def _drop_unrecorded_tail(out_file: Path, end: int | None) -> None:
    """A job stopped between appending a reply's records and recording its outcome leaves records no task
    accounts for; that request is sent again, so they go (else the dataset holds two answers to it)."""
    try:
        size = out_file.stat().st_size
    except FileNotFoundError:
        return
    if end is not None and size > end:
        with open(out_file, "r+b") as f:
            f.seek(end)
            cut = f.read().count(b"\n")
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        log.warning("augment: %s had %d record line(s) of a request stopped before its outcome was recorded; "
                    "removed, the request is sent again", out_file.name, cut)


def run(job: Job, key: str | None = None, progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None) -> Progress:
    """Run (or continue) an augmentation job. Returns its final Progress; state "stopped" when `stop` was set
    (what finished is kept, the rest waits for the next run)."""
    key = key if key is not None else os.environ.get(KEY_ENV) or None
    info = load_dataset_info(job.dataset_dir)
    if job.dataset not in info:
        raise UserError(f"dataset: {job.dataset!r} is not in {Path(job.dataset_dir) / INFO_FILE} "
                        f"(datasets there: {', '.join(info) or 'none'}).")
    if not job.model:
        raise UserError("model: give the model name the endpoint serves (its /v1/models lists them).")
    if "{record}" not in job.template:
        raise UserError("prompt: the template must hold {record} where the record goes.")
    attr = info[job.dataset]
    stage = data_kind(dataset_stage(attr))
    records = read_records(attr)[: job.max_samples or None]
    if not records:
        raise UserError(f"dataset {job.dataset!r}: no records.")
    name = output_name(job, info)
    out_file = Path(job.dataset_dir) / f"{name}.jsonl"
    _jobs_dir(job).mkdir(parents=True, exist_ok=True)
    state_path, tasks_path = _state_path(job, name), _tasks_path(job, name)
    done, end = _done_tasks(tasks_path)
    _drop_unrecorded_tail(out_file, end)
    seen = set()
    for row in records:
        try:
            seen.add(_std_key(convert_row(attr, row, stage)))
        except Invalid:
            pass
    for row in read_jsonl_objects(out_file):  # what earlier runs of this job kept
        try:
            seen.add(_std_key(convert_row(attr, row, stage)))
        except Invalid:
            pass
    # the columns every record has: a reply must fill them all (and brings no others into the dataset's file)
    columns = [c for c in records[0] if all(c in r for r in records)]
    tasks = [f"{i}:{k}" for i in range(len(records)) for k in range(job.n)]
    todo = [t for t in tasks if done.get(t) not in FINAL]
    prog = Progress(total=len(tasks), done=len(tasks) - len(todo), output=name, state="running")
    try:  # a continued job goes on counting its retries
        prog.retries = int(json.loads(state_path.read_text(encoding="utf-8")).get("retries") or 0)
    except (OSError, ValueError, TypeError):
        pass
    for t, outcome in done.items():
        if outcome in FINAL:
            prog.counts[outcome] += 1
    lock = threading.Lock()
    stop = stop or threading.Event()
    log.info("augment %s -> %s: %d records x %d, %d requests to send (%s, model %s)", job.dataset, name,
             len(records), job.n, len(todo), job.base_url, job.model)

    def save_state():
        atomic_write_json(state_path, {"asked": job.asked(), "output": name, "total": prog.total, "done": prog.done,
                                       "counts": prog.counts, "retries": prog.retries, "state": prog.state,
                                       "updated": time.time()})

    def retried():
        with lock:
            prog.retries += 1

    def one(task: str):
        if stop.is_set():
            return task, None, None
        i = int(task.split(":")[0])
        prompt = job.template.replace("{record}", json.dumps(records[i], ensure_ascii=False))
        try:
            reply = ask(client, job, key, prompt, retried)
        except Fatal:
            stop.set()  # here, before this worker takes the next request
            raise
        except RuntimeError as e:
            return task, FAILED, str(e)
        try:
            data = extract_json(reply)
        except ValueError:
            return task, BROKEN, _short(reply, 120)
        rows = data if isinstance(data, list) else [data]
        if not rows:
            return task, INVALID, "an empty list"
        good = []
        for row in rows:
            if not isinstance(row, dict):
                return task, INVALID, "not a JSON object"
            missing = [c for c in columns if c not in row]
            if missing:
                return task, INVALID, f"no {missing[0]!r} in the reply"
            row = {c: row[c] for c in columns}
            try:
                good.append((row, _std_key(convert_row(attr, row, stage))))
            except Invalid as e:
                return task, INVALID, str(e)
        return task, good, None

    def record(task: str, outcome, detail):
        if outcome is None:
            return
        with lock:
            if isinstance(outcome, list):
                fresh = [(row, k) for row, k in outcome if k not in seen]
                if fresh:
                    with open(out_file, "a", encoding="utf-8") as f:
                        for row, k in fresh:
                            f.write(json.dumps(row, ensure_ascii=False) + "\n")
                            seen.add(k)
                        f.flush()
                        os.fsync(f.fileno())
                outcome, detail = (KEPT, f"{len(fresh)} record(s)") if fresh else (DUPLICATE, None)
            entry = {"task": task, "outcome": outcome, "detail": detail}
            if outcome == KEPT:  # where the output ends with this reply's records (_drop_unrecorded_tail)
                entry["end"] = out_file.stat().st_size
            with open(tasks_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            prog.counts[outcome] += 1
            prog.done += 1
            save_state()
        if progress:
            progress(prog)

    save_state()
    if progress:
        progress(prog)
    client = _client(job.timeout)
    try:
        with ThreadPoolExecutor(max_workers=job.workers, thread_name_prefix="augment") as pool:
            pending: set = set()
            queue = iter(todo)
            while True:
                try:
                    while len(pending) < job.workers * 2 and not stop.is_set():  # bounded: a big dataset is not
                        t = next(queue, None)                                   # a million futures at once
                        if t is None:
                            break
                        pending.add(pool.submit(one, t))
                    if not pending:
                        break
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        try:
                            record(*fut.result())
                        except Fatal as e:  # the rest would be refused too: the queued ones now return at once
                            stop.set()
                            prog.state, prog.error = "failed", str(e)
                except KeyboardInterrupt:  # requests in flight finish and are kept; no new one starts
                    stop.set()
                    prog.state = "stopped"
    finally:
        client.close()
    if prog.state == "running":
        left = prog.total - prog.done
        prog.state = "stopped" if stop.is_set() and left else "finished"
    with lock:
        save_state()
    if prog.counts[KEPT] and out_file.is_file():
        register(job, name)
    if progress:
        progress(prog)
    if prog.state == "failed":
        raise Fatal(prog.error)
    return prog


def register(job: Job, name: str) -> None:
    """The new records as a dataset beside the original (its own entry only is ever rewritten)."""
    with info_lock(job.dataset_dir):
        current = load_dataset_info(job.dataset_dir)
    add_entry(job.dataset_dir, name, _entry(job, name), replace=name in current)


def job_from(values: dict, template: str | None = None) -> Job:
    """A Job from schema values (engine.args, command augment); `template` text wins over the prompt file."""
    names = values.get("dataset") or []
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    if len(names) != 1:
        raise UserError(f"dataset: name exactly one dataset to augment, got {', '.join(names) or 'none'}.")
    if template is None and values.get("prompt"):
        p = Path(values["prompt"])
        if not p.is_file():
            raise UserError(f"prompt: {p} does not exist (a text file with {{record}} in it).")
        template = p.read_text(encoding="utf-8")
    return Job(dataset=names[0], dataset_dir=values.get("dataset_dir") or "data", base_url=values["base_url"],
               model=values.get("model") or "", n=values["n"], max_samples=values.get("max_samples"),
               template=template or DEFAULT_PROMPT, output=values.get("output"), workers=values["workers"],
               retries=values["retries"], timeout=values["request_timeout"], temperature=values["temperature"],
               max_tokens=values["max_new_tokens"])


def run_cli(opts) -> int:
    """`tuneboard augment [recipe.yaml] [key=value ...]` (opts: parsed by engine.cli; the key comes from KEY_ENV)."""
    job = job_from(load_config(opts.recipe, opts.overrides, schema.AUGMENT).values)
    logging_quiet()
    last = [0.0]

    def show(p: Progress):
        now = time.monotonic()
        if now - last[0] >= 1.0 or p.done == p.total or p.state != "running":
            last[0] = now
            print(f"\raugment {p.output}: {p.line()}", end="", file=sys.stderr, flush=True)

    try:
        prog = run(job, progress=show)
    finally:
        print(file=sys.stderr)
    where = Path(job.dataset_dir) / f"{prog.output}.jsonl"
    if prog.state == "finished":
        print(f"dataset {prog.output!r} ({where}): {prog.counts[KEPT]} requests kept; registered in "
              f"{Path(job.dataset_dir) / INFO_FILE}.")
    else:
        print(f"stopped: {prog.done}/{prog.total} requests done, kept in {where}; run the same command again "
              "to continue.")
    if prog.counts[FAILED]:
        print(f"{prog.counts[FAILED]} request(s) failed after {job.retries} retries; running the same command "
              "again sends them again.")
    return 0 if prog.state == "finished" else 1


def logging_quiet() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


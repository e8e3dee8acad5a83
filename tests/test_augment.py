"""Dataset augmentation (engine.data.augment) against endpoints on loopback: a stand-in that answers broken
JSON, fenced JSON, slow replies, 500s, repeats and records of the wrong shape (each counted, retried where it
should be, nothing lost, the job killed half-way and continued); TuneBoard's own `tuneboard api`; the key never
on disk or in the output."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import augment
from engine.data.registry import INFO_FILE, load_dataset_info
from engine.errors import UserError
from helpers import ROOT, free_port, serving, start_server, stop_group, wait_for
from kits.args import as_args
from kits.augment import KEY, KINDS, TIMEOUT_S, StandIn, record


@pytest.fixture
def stand_in():
    s = StandIn()
    yield s
    s.close()


@pytest.fixture
def data(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "seed.json").write_text(json.dumps([record(i) for i in range(len(KINDS))]))
    (d / INFO_FILE).write_text(json.dumps({"seed": {"file_name": "seed.json"}}))
    return d


def tasks(data: Path, name: str) -> list[dict]:
    p = data / augment.JOBS / f"{name}.tasks.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []


def cli(data: Path, url: str, *extra: str, **popen):
    env = {**os.environ, augment.KEY_ENV: KEY, "TUNEBOARD_AUGMENT_BACKOFF_S": "0.05"}
    argv = [sys.executable, "-m", "tuneboard", "augment", "dataset=seed", f"dataset_dir={data}", f"base_url={url}",
            "model=stand-in", "n=2", "workers=3", "retries=2", f"request_timeout={TIMEOUT_S}", *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def test_stand_in_endpoint_counted_retried_killed_and_continued(stand_in, data, tmp_path):
    # the first run is killed (kill -9) once a few requests are done; what it finished stays
    first = cli(data, stand_in.url, start_new_session=True)
    wait_for(lambda: len(tasks(data, "seed_aug")) >= 4 or first.poll() is not None, 60, "four finished requests")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    before = tasks(data, "seed_aug")
    assert len(before) >= 4
    # what the recorded outcomes account for (a reply appended but not yet recorded when killed is sent again)
    end = max([t["end"] for t in before if "end" in t], default=0)
    out_file = data / "seed_aug.jsonl"
    kept_before = out_file.read_bytes()[:end].decode().splitlines() if out_file.is_file() else []
    calls_before = dict(stand_in.calls)
    # the same command continues the job: only the requests without an outcome are sent
    second = cli(data, stand_in.url)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    done = tasks(data, "seed_aug")
    final = {t["task"]: t["outcome"] for t in done}
    assert sorted(final) == sorted(f"{i}:{k}" for i in range(len(KINDS)) for k in range(2))  # nothing lost
    settled = [t["task"] for t in done if t["outcome"] != "failed"]
    assert len(settled) == len(set(settled))  # nothing answered twice (a failed request is sent again)
    by_kind = {KINDS[i]: sorted(final[f"{i}:{k}"] for k in range(2)) for i in range(len(KINDS))}
    assert by_kind == {"flaky500": ["kept", "kept"], "fenced": ["kept", "kept"], "broken": ["broken", "broken"],
                       "slow": ["kept", "kept"], "dup": ["duplicate", "duplicate"],
                       "invalid": ["invalid", "invalid"], "down": ["failed", "failed"]}
    for t in before:  # the second run did not send the first run's finished requests again
        i = int(t["task"].split(":")[0])
        assert stand_in.calls[i] >= calls_before[i]
    lines = (data / "seed_aug.jsonl").read_text().splitlines()
    assert lines[:len(kept_before)] == kept_before and len(lines) == len(set(lines)) == 6
    state = json.loads((data / augment.JOBS / "seed_aug.json").read_text())
    assert state["counts"] == {"kept": 6, "duplicate": 2, "broken": 2, "invalid": 2, "failed": 2}
    assert state["retries"] >= 2 * 2  # at least the down requests' (the flaky and slow ones' too, unless killed)
    assert "2 request(s) failed after 2 retries" in out
    info = load_dataset_info(data)
    assert info["seed_aug"].file_name == "seed_aug.jsonl" and info["seed"].file_name == "seed.json"
    # the endpoint is back: the failed requests, and only they, are sent again
    stand_in.healed = True
    third = cli(data, stand_in.url)
    out, _ = third.communicate(timeout=60)
    assert third.returncode == 0, out
    state = json.loads((data / augment.JOBS / "seed_aug.json").read_text())
    assert state["counts"]["kept"] == 8 and state["counts"]["failed"] == 0 and state["done"] == state["total"] == 14
    assert len((data / "seed_aug.jsonl").read_text().splitlines()) == 8
    from engine.data.records import load_records
    assert len(load_records(as_args({"dataset": "seed_aug", "dataset_dir": str(data)})).rows) == 8
    # the key went in the headers and nowhere else
    assert stand_in.auth == {f"Bearer {KEY}"}
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in out


def test_a_different_job_never_replaces_a_dataset_and_refusals_stop_at_once(stand_in, data):
    (data / INFO_FILE).write_text(json.dumps({"seed": {"file_name": "seed.json"},
                                              "seed_aug": {"file_name": "seed.json"}}))
    job = augment.Job(dataset="seed", dataset_dir=str(data), base_url=stand_in.url, model="m", n=1, max_samples=2,
                      retries=1, timeout=TIMEOUT_S)
    prog = augment.run(job, key="k")
    assert prog.output == "seed_aug2" and prog.counts["kept"] == 2  # seed_aug belongs to someone else
    assert load_dataset_info(data)["seed_aug"].file_name == "seed.json"
    with pytest.raises(UserError, match="'seed_aug' exists already and was not made by this job"):
        augment.run(augment.Job(**{**job.__dict__, "output": "seed_aug"}), key="k")
    with pytest.raises(UserError, match=r"must hold \{record\}"):
        augment.run(augment.Job(**{**job.__dict__, "template": "no placeholder"}), key="k")
    # 404 / 401: no retry, the job stops and says why
    bad = augment.Job(**{**job.__dict__, "base_url": stand_in.url + "/nope", "n": 3, "max_samples": None})
    before = stand_in.requests
    with pytest.raises(augment.Fatal, match="refused the request: HTTP 404.*check base_url and model"):
        augment.run(bad, key="k")
    assert stand_in.requests - before <= bad.workers  # the first refusals stop the job: no retry, no more sent


def test_json_is_found_in_fences_and_prose():
    assert augment.extract_json('{"a": 1}') == {"a": 1}
    assert augment.extract_json('Here:\n```json\n[{"a": 2}]\n```') == [{"a": 2}]
    assert augment.extract_json('Sure. {"a": 3} Hope it helps') == {"a": 3}
    with pytest.raises(ValueError):
        augment.extract_json('{"a": ')


@pytest.mark.slow
def test_against_tuneboards_own_api_serving_the_bundled_model(bundled_model, data, tmp_path):
    port = free_port()
    log = tmp_path / "api.log"
    api = start_server(["-m", "tuneboard", "api", f"model_name_or_path={bundled_model}", "template=chatml",
                        "--port", str(port)], log, {"API_KEY": KEY})
    try:
        wait_for(serving(api, f"http://127.0.0.1:{port}/health", log), 180, "tuneboard api")
        (data / "seed.json").write_text(json.dumps([
            {"instruction": "What is the capital of France?", "input": "", "output": "Paris."}]))
        job = augment.Job(dataset="seed", dataset_dir=str(data), base_url=f"http://127.0.0.1:{port}/v1",
                          model="SmolLM2-135M-Instruct", n=1, temperature=0.0, max_tokens=64, timeout=600,
                          retries=1)
        prog = augment.run(job, key=KEY)
    finally:
        stop_group(api)
    c = prog.counts
    assert prog.state == "finished" and prog.done == prog.total == 1 and c["failed"] == 0, prog.line()
    assert sum(c.values()) == 1 and prog.retries == 0  # answered (kept, or counted as broken / invalid)
    lines = (data / "seed_aug.jsonl").read_text().splitlines() if c["kept"] else []
    assert len(lines) == c["kept"]
    assert KEY not in log.read_text()


def test_a_reply_kept_but_not_recorded_is_not_in_the_dataset_twice(stand_in, data):
    """Killed after a reply's records were appended and before its outcome was recorded: the continued job sends
    that request again and the dataset holds its records once, the new reply's."""
    done = cli(data, stand_in.url)
    assert done.communicate(timeout=120)[0] is not None and done.returncode == 0
    path = data / augment.JOBS / "seed_aug.tasks.jsonl"
    recs = tasks(data, "seed_aug")
    last = max(i for i, t in enumerate(recs) if t["outcome"] == "kept")
    out_file = data / "seed_aug.jsonl"
    lines = out_file.read_text().splitlines()
    assert len(lines) == 6
    # the state a kill between the two writes leaves: the records are there, the outcome is not
    path.write_text("".join(json.dumps(t) + "\n" for i, t in enumerate(recs) if i != last))
    again = cli(data, stand_in.url)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    final = out_file.read_text().splitlines()
    assert len(final) == len(set(final)) == 6, final
    assert final[:5] == [ln for ln in lines if ln != lines[-1]][:5] and final[-1] != lines[-1]
    assert "sent again" in out


"""Learning-rate sweep on the tiny model: log-spaced plan, runs one after another with frequent evaluation, the
recommendation is the run with the lowest eval loss in its own log, and an abort stops the whole sweep (the
current run stops, no further run starts, no process is left)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import psutil
import pytest
import yaml

from engine.config import load_config
from engine.errors import ConfigError
from engine.insight import sweep as S
from engine.train import rundir
from helpers import wait_for

from kits.recipes import recipe, write_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("sweep") / "data")


def test_plan_is_log_spaced_around_the_centre():
    lrs = S.plan(1e-3, 5, 2.0)
    assert lrs == [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2]
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert all(r == pytest.approx(math.sqrt(10), rel=0.01) for r in ratios)
    assert S.plan(2e-4, 1) == [2e-4]
    for bad in [dict(center=0), dict(center=1e-3, k=0), dict(center=1e-3, span=0)]:
        with pytest.raises(ConfigError):
            S.plan(**bad)


def test_sweep_runs_in_sequence_and_recommends_the_lowest_eval_loss(tiny_model, data, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the runs are subprocesses; one thread each on a shared machine
    base = load_config(None, recipe(tiny_model, data, tmp_path / "unused")).values
    out = tmp_path / "sweep"
    state = S.run_sweep(base, [1e-4, 2e-2], out, steps=6, eval_every=2)
    assert state["state"] == "finished"
    runs = state["runs"]
    assert [r["state"] for r in runs] == ["finished", "finished"]
    assert runs[0]["ended"] <= runs[1]["started"]  # one after another
    best_by_log = {}
    for r in runs:
        cfg = yaml.safe_load((tmp_path / "sweep" / r["name"] / rundir.CONFIG).read_text())
        assert cfg["learning_rate"] == r["lr"] and cfg["max_steps"] == 6 and cfg["val_size"] == 0.1
        evals = [x for x in rundir.read_log(r["output_dir"]) if "eval_loss" in x]
        assert [x["step"] for x in evals] == [2, 4, 6]
        best_by_log[r["lr"]] = min(x["eval_loss"] for x in evals)
        assert r["best_eval_loss"] == pytest.approx(best_by_log[r["lr"]])
        assert not rundir.checkpoints(r["output_dir"], complete_only=False)  # no checkpoint left behind
    want = min(best_by_log, key=best_by_log.get)
    assert state["best"]["learning_rate"] == want and state["best"]["edge"] is True
    assert S.read_sweep(out)["best"]["learning_rate"] == want
    with pytest.raises(ConfigError, match="already holds a sweep"):
        S.run_sweep(base, [1e-4], out, steps=2, eval_every=1)


def test_abort_stops_the_whole_sweep(tiny_model, data, tmp_path):
    cfg = tmp_path / "base.yaml"
    cfg.write_text(yaml.safe_dump(recipe(tiny_model, data, tmp_path / "unused")))
    out = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "doctor", "--sweep", str(cfg), "--k", "3", "--center",
                             "1e-3", "--steps", "400", "--eval-every", "50", "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = out / "lr1_0.0001"
        wait_for(lambda: len(rundir.read_log(first)) >= 2, 120, "the first run to train")
        driver = psutil.Process(proc.pid)
        family = [driver] + driver.children(recursive=True)
        assert len(family) >= 2
        assert S.abort(out) is True
        rc = proc.wait(90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert rc == 130, proc.stdout.read().decode()[-2000:]
    state = json.loads((out / S.STATE).read_text())
    assert state["state"] == "aborted"
    assert [r["state"] for r in state["runs"]] == ["aborted", "skipped", "skipped"]
    assert not (out / "lr2_0.001").exists() and not (out / "lr3_0.01").exists()
    assert rundir.read_status(first)["state"] == "aborted"
    assert rundir.read_log(first)[-1]["step"] < 400
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family), 10,
             "every process of the sweep to be gone")
    assert S.abort(out) is False  # nothing left to stop

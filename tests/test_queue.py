"""The run queue (engine.runqueue) and device choice (engine.devices) with real runs of the tiny model: a queue
of three whose second cannot run when its turn comes, through the death of the UI and of the queue's runner;
runs side by side on disjoint (stand-in) GPUs with each child's environment holding its own devices; the
queue's editing verbs and CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest
import yaml

from engine import devices, paths, runqueue, runs, usage
from helpers import ROOT, free_port, serving, start_server, stop_group, wait_for

FAKE_SMI = """#!/bin/sh
echo "0, Stand-in GPU A, 70000, 81920, 11920, 3"
echo "1, Stand-in GPU B, 81000, 81920, 920, 0"
"""


@pytest.fixture
def saves(tmp_path, monkeypatch):
    s = tmp_path / "saves"
    monkeypatch.setenv(paths.SAVES_ENV, str(s))
    monkeypatch.setattr(runs, "_POPENS", {})
    yield s
    for it in runqueue.items(s):  # nothing left behind: queued items never start, running ones are aborted
        if it["state"] in runqueue.WAITING:
            runqueue.cancel(it["id"], s)
    pid = runqueue.runner_pid(s)
    if pid:
        psutil.Process(pid).kill()
    for r in runs.all_runs(s):
        r.abort(grace=2)


@pytest.fixture
def fake_gpus(tmp_path, monkeypatch):
    """nvidia-smi on PATH that reports two GPUs (this machine has none; torch here is the CPU build, so a run
    "on" them trains on the CPU with CUDA_VISIBLE_DEVICES set)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(devices, "_cache", None)
    return bin_dir


def recipe(tiny_model, data_dir, **kw) -> dict:
    v = {"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": "identity",
         "dataset_dir": str(data_dir), "cutoff_len": 64, "max_samples": 8, "per_device_train_batch_size": 2,
         "max_steps": 2, "logging_steps": 1, "save_steps": 1000, "plot_loss": False}
    v.update(kw)
    return v


def cli(*argv, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuneboard", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def states(saves) -> list[str]:
    return [it["state"] for it in runqueue.items(saves)]


def test_three_queued_runs_second_broken_through_a_killed_ui_and_runner(tiny_model, data_dir, tmp_path, saves):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tiny_model, data_dir)))
    a, b = tmp_path / "run_a", tmp_path / "run_b"
    port = free_port()
    ui = start_server(["app.py", "--port", str(port)], tmp_path / "ui.log", {paths.SAVES_ENV: str(saves)})
    try:
        wait_for(serving(ui, f"http://127.0.0.1:{port}/", tmp_path / "ui.log"), 120, "the web UI")
        # the second reuses the first's folder: fine when queued, refused when its turn comes (a run is there)
        for out, steps in ((a, 40), (a, 2), (b, 2)):  # the first runs long enough to kill the UI while it trains
            r = cli("queue", "add", str(path), f"output_dir={out}", f"max_steps={steps}")
            assert r.returncode == 0 and "queued" in r.stdout, r.stderr
        first, second, third = [it["id"] for it in runqueue.items(saves)]
        wait_for(lambda: runqueue.get(first, saves)["state"] == runqueue.RUNNING, 60, "the first run to start")
        # the UI and the queue's runner die while the first run trains; the run itself goes on
        runner = runqueue.runner_pid(saves)
        assert runner and runner != ui.pid
        os.killpg(ui.pid, 9)
        ui.wait(10)
        psutil.Process(runner).kill()
        wait_for(lambda: not runqueue.runner_alive(saves), 10, "the runner to be gone")
        assert states(saves) == ["running", "queued", "queued"]
        # a UI started again takes the queue up where it was
        ui = start_server(["app.py", "--port", str(port)], tmp_path / "ui2.log", {paths.SAVES_ENV: str(saves)})
        wait_for(lambda: states(saves)[2] not in runqueue.WAITING, 300, "the queue to be worked through")
    finally:
        stop_group(ui)
    items = {it["id"]: it for it in runqueue.items(saves)}
    assert items[first]["state"] == "finished", runs.get_run(items[first]["run_id"], saves).tail()
    assert items[third]["state"] == "finished", runs.get_run(items[third]["run_id"], saves).tail()
    assert items[second]["state"] == runqueue.SKIPPED and items[second]["run_id"] is None
    assert f"{a} already holds another run" in items[second]["reason"]
    results = json.loads((b / "all_results.json").read_text())
    assert results["total_steps"] == 2 and results["peak_tree_rss_mb"] > 0  # the trainer's own recorded peak
    listing = cli("queue", "list", env={paths.SAVES_ENV: str(saves)}).stdout
    assert f"{second}  skipped" in listing and "already holds another run" in listing
    assert "the run queue holds work: its runner started" in (tmp_path / "ui2.log").read_text()


def test_disjoint_gpus_run_side_by_side_each_with_its_own_devices(tiny_model, data_dir, tmp_path, saves,
                                                                    fake_gpus):
    long = dict(max_steps=100000, save_steps=100000)
    on0 = runqueue.add(recipe(tiny_model, data_dir, devices=["0"], cpu_threads=1, output_dir=str(tmp_path / "g0"),
                              **long), saves)
    on1 = runqueue.add(recipe(tiny_model, data_dir, devices=["1"], output_dir=str(tmp_path / "g1"), **long), saves)
    shared = runqueue.add(recipe(tiny_model, data_dir, devices=["0", "1"], output_dir=str(tmp_path / "g01")), saves)
    assert runqueue.ensure_runner(saves) is True
    assert runqueue.ensure_runner(saves) is False  # one runner at a time
    wait_for(lambda: states(saves)[:2] == ["running", "running"], 60, "two runs side by side")
    assert states(saves)[2] == "queued"  # it needs both GPUs: it waits
    envs = {}
    for it in runqueue.items(saves)[:2]:
        run = runs.get_run(it["run_id"], saves)
        envs[it["id"]] = wait_for(lambda: psutil.Process(run.pid).environ(), 30, "the child's environment")
    assert envs[on0["id"]]["CUDA_VISIBLE_DEVICES"] == "0" and envs[on0["id"]]["OMP_NUM_THREADS"] == "1"
    assert envs[on0["id"]]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert envs[on1["id"]]["CUDA_VISIBLE_DEVICES"] == "1"
    assert envs[on1["id"]].get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")  # not picked: inherited
    run0 = runs.get_run(runqueue.get(on0["id"], saves)["run_id"], saves)
    assert [(g["id"], g["used_mb"]) for g in usage.sample(run0)["gpus"]] == [("0", 11920.0)]  # its GPU alone
    saved = tmp_path / "g0" / "training_args.yaml"  # written atomically once training starts
    cfg = wait_for(lambda: saved.is_file() and yaml.safe_load(saved.read_text()), 60, "the run's saved recipe")
    assert cfg["devices"] == ["0"] and cfg["cpu_threads"] == 1  # the run's saved recipe carries them
    runqueue.cancel(shared["id"], saves)
    for it in (on0, on1):
        runqueue.cancel(it["id"], saves)
    wait_for(lambda: all(runs.get_run(it["run_id"], saves).status()["state"] != "running"
                         for it in runqueue.items(saves)[:2]), 60, "the cancelled runs to stop")
    assert states(saves) == ["cancelled"] * 3


def test_device_values_are_checked_against_this_machine(fake_gpus, monkeypatch):
    from engine.config import load_config
    from engine.errors import ConfigError
    ok = load_config(None, {"dataset": "identity", "devices": "1,0", "cpu_threads": "1"}, "train")
    assert devices.env_for(ok.values) == {"CUDA_VISIBLE_DEVICES": "1,0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                                          "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert devices.env_for({"devices": ["cpu"]}) == {"CUDA_VISIBLE_DEVICES": ""}
    assert devices.env_for({}) == {}
    for bad, field, words in ((dict(devices="2"), "devices", "GPU 2 is not on this machine (it has: cpu, 0, 1)"),
                              (dict(devices="cpu,0"), "devices", "not both"),
                              (dict(devices="gpu0"), "devices", "neither cpu nor a GPU index"),
                              (dict(cpu_threads="4096"), "cpu_threads", "more than the")):
        with pytest.raises(ConfigError) as e:
            load_config(None, {"dataset": "identity", **bad}, "train")
        assert e.value.field == field and words in str(e.value)
    listed = devices.detect()
    assert listed[0].id == "cpu" and listed[0].cores >= 1
    assert [(d.id, d.name, d.free_mb) for d in listed[1:]] == [("0", "Stand-in GPU A", 70000.0),
                                                             ("1", "Stand-in GPU B", 81000.0)]
    assert devices.choices()[1] == ("GPU 0 · Stand-in GPU A · 68.4 GiB free of 80.0 GiB", "0")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert devices.gpus(fresh=True) == []  # no nvidia-smi: the CPU alone


def test_queue_editing_and_cli_messages(tmp_path, saves):
    ids = [runqueue.add({"dataset": ["identity"], "learning_rate": lr}, saves)["id"] for lr in (1e-4, 2e-4, 3e-4)]
    runqueue.move(ids[2], "top", saves)
    assert [it["id"] for it in runqueue.items(saves)] == [ids[2], ids[0], ids[1]]
    runqueue.move(ids[2], "down", saves)
    assert [it["id"] for it in runqueue.items(saves)] == [ids[0], ids[2], ids[1]]
    runqueue.cancel(ids[0], saves)
    with pytest.raises(runqueue.UserError, match="already cancelled"):
        runqueue.cancel(ids[0], saves)
    with pytest.raises(runqueue.UserError, match="only queued runs can be moved"):
        runqueue.move(ids[0], "up", saves)
    assert runqueue.clear_done(saves) == 1 and len(runqueue.items(saves)) == 2
    env = {paths.SAVES_ENV: str(saves)}
    bad = cli("queue", "add", "dataset=identity", "learning_rat=1", env=env)
    assert bad.returncode == 2 and "learning_rat: unknown argument" in bad.stderr and "learning_rate" in bad.stderr
    bad = cli("queue", "add", "learning_rate=1e-4", env=env)  # the cross-field rules too: no dataset
    assert bad.returncode == 2 and "dataset: no dataset given" in bad.stderr
    bad = cli("queue", "cancel", "q-nope", env=env)
    assert bad.returncode == 2 and "no item 'q-nope'" in bad.stderr and ids[1] in bad.stderr
    listing = cli("queue", "list", env=env)
    assert listing.returncode == 0 and ids[2] in listing.stdout and "runner: not running" in listing.stdout
    for i in ids[1:]:
        runqueue.cancel(i, saves)


def test_ui_offers_queue_it_while_busy_carries_devices_and_shows_the_queue_after_a_restart(
        tmp_path, saves, monkeypatch, bundled_model):
    from kits.webui import call, value
    from webui.app import create_ui
    monkeypatch.setenv("TUNEBOARD_ROOTS", str(tmp_path))
    busy = runs.launch("train", [sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / "busy",
                       saves=saves)
    demo = create_ui("en", saves=str(saves))
    page = demo.page
    form = {page.w("train", "dataset"): ["identity"], page.w("train", "devices"): ["cpu"],
            page.w("train", "cpu_threads"): "1"}
    label, first = page.w("train", "devices").choices[0]
    assert first == "cpu" and label.startswith("CPU · ")  # the detected CPU is offered, with its cores
    res = call(demo, page.c("train.start"), overrides=form)
    assert "already going" in value(res[page.c("train.message")]) and "Queue it" in value(res[page.c("train.message")])
    assert res[page.c("train.queue")]["visible"] is True
    res = call(demo, page.c("train.queue"), overrides=form)
    assert "Queued as" in value(res[page.c("train.message")]), res[page.c("train.message")]
    (item,) = runqueue.items(saves)
    assert item["state"] == "queued" and item["values"]["devices"] == ["cpu"] and item["values"]["cpu_threads"] == 1
    assert "output_dir" not in item["values"]  # named when its turn comes: two queued forms never share a folder
    wait_for(lambda: runqueue.runner_alive(saves), 10, "the queue's runner")
    # the command preview and the saved recipe carry the picked devices
    res = call(demo, page.c("train.preview"), overrides=form)
    cmd = value(res[page.c("train.command")])
    assert "devices=cpu" in cmd.split() and "cpu_threads=1" in cmd.split()
    cfg = tmp_path / "cfg.yaml"
    call(demo, page.c("train.save"), overrides={**form, page.c("train.config_path"): str(cfg)})
    assert yaml.safe_load(cfg.read_text())["devices"] == ["cpu"]
    # the run panel's monitor line follows the busy run's process tree
    tick = next(fn for fn in demo.fns.values() if any(getattr(o, "elem_id", None) == "train-usage" for o in fn.outputs))
    out = tick.fn(busy.id, {}, "en", str(bundled_model), "lora", [])
    ids = [getattr(o, "elem_id", None) for o in tick.outputs]
    line = out[ids.index("train-usage")]
    assert out[ids.index("train-queue")]["visible"] is True  # Start is disabled while a run goes: Queue it is not
    assert "(1 processes)" in line and float(line.split("data-rss-mb='")[1].split("'")[0]) > 1
    # a UI built again (a restarted server) shows the same queue, read from disk
    again = create_ui("en", saves=str(saves))
    table = again.page.c("queue.table")
    assert table.value["data"][0][:2] == [item["id"], "queued"]
    res = call(again, again.page.c("queue.cancel"), overrides={again.page.c("queue.pick"): item["id"]})
    assert runqueue.get(item["id"], saves)["state"] == "cancelled"
    assert busy.status()["state"] == "running"  # the queue never touched the run that was going

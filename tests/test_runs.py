"""engine.runs: process-group spawn/abort, the on-disk run registry, listings of runs and checkpoints.

The process-tree tests launch a small real process tree (a child that ignores SIGTERM, a grandchild that
left the process group) so the SIGTERM -> SIGKILL escalation is exercised for real; the trainer-backed
tests live in test_runs_train.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from engine import paths, runs
from engine.errors import ConfigError
from helpers import wait_for

TREE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    # a child that ignores SIGTERM (needs SIGKILL) and a grandchild that leaves the process group
    child = subprocess.Popen([sys.executable, "-c", "import signal, subprocess, sys, time\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        "subprocess.Popen([sys.executable, '-c', 'import os, time; os.setsid(); time.sleep(600)'])\\n"
        "print('child ready', flush=True)\\n"
        "time.sleep(600)"])
    print("root ready", flush=True)
    time.sleep(600)
""")


def start_tree(tmp_path, saves) -> runs.Run:
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    run = runs.launch("train", [sys.executable, str(script)], tmp_path / "out", saves=saves)
    wait_for(lambda: "child ready" in run.tail() and "root ready" in run.tail(), what="the process tree")
    # the grandchild is a child of the child: wait until all three exist
    wait_for(lambda: len(run.processes()) >= 3, what="three processes")
    return run


def test_abort_stops_the_whole_tree_even_a_sigterm_ignoring_child(tmp_path, saves):
    run = start_tree(tmp_path, saves)
    procs = run.processes()
    pids = {p.pid for p in procs}
    assert len(pids) >= 3
    assert run.status()["state"] == "running"
    assert run.abort(grace=1.5) is True
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    wait_for(lambda: runs.get_run(run.id, saves).returncode is not None, what="the reaper")
    st = run.status()
    assert st["state"] == "aborted"
    assert not run.alive()


def test_second_start_is_refused_while_a_run_is_going(tmp_path, saves):
    run = start_tree(tmp_path, saves)
    with pytest.raises(runs.RunBusy) as e:
        runs.launch("eval", [sys.executable, "-c", "print(1)"], tmp_path / "other", saves=saves)
    assert str(run.output) in str(e.value) and "abort" in str(e.value)
    with pytest.raises(runs.RunBusy):
        runs.spawn("train", {"dataset": "identity", "output_dir": str(tmp_path / "x")}, saves=saves)
    assert run.abort(grace=1.0)
    # once it is gone a new run starts
    again = runs.launch("eval", [sys.executable, "-c", "print('hello')"], tmp_path / "other", saves=saves)
    wait_for(lambda: again.status()["state"] == "finished", what="the second run to finish")
    assert "hello" in again.tail()


def test_another_process_reattaches_and_can_abort(tmp_path, saves):
    """A restarted UI server (another process) finds the running job from the registry alone."""
    run = start_tree(tmp_path, saves)
    code = ("import sys; from engine import runs\n"
            "r = runs.active_run(sys.argv[1]); print(r.id, r.status()['state'], len(r.processes()))\n"
            "print('aborted', r.abort(grace=1.0))\n")
    out = subprocess.run([sys.executable, "-c", code, str(saves)], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    rid, state, n = first.split()
    assert rid == run.id and state == "running" and int(n) >= 3
    assert second == "aborted True"
    wait_for(lambda: not run.alive(), what="the run to be gone")
    assert runs.active_run(saves) is None
    assert runs.latest_run(saves, "train").id == run.id


def test_liveness_survives_losing_the_popen(tmp_path, saves, monkeypatch):
    run = start_tree(tmp_path, saves)
    monkeypatch.setattr(runs, "_POPENS", {})  # as if this were a fresh UI process
    again = runs.get_run(run.id, saves)
    assert again.alive() and again.pid == run.pid
    assert runs.latest_run(saves).id == run.id
    assert again.abort(grace=1.0)


def test_status_progress_results_from_the_run_files(tmp_path, saves):
    """A process that writes what the trainer writes: the UI reads progress and final metrics from files."""
    out = tmp_path / "run"
    script = tmp_path / "fake_trainer.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, time
        out = {str(out)!r}
        def status(state, **kw):
            d = dict(state=state, pid=os.getpid(), updated=time.time(), started=time.time(), **kw)
            open(out + '/status.json.tmp', 'w').write(json.dumps(d)); os.replace(out + '/status.json.tmp', out + '/status.json')
        status('training', step=3, total_steps=10, elapsed=3.0, remaining=7.0)
        with open(out + '/trainer_log.jsonl', 'a') as f:
            for s in (1, 2, 3):
                f.write(json.dumps(dict(step=s, total_steps=10, loss=2.0 / s, elapsed=s, remaining=10 - s)) + '\\n')
            f.write('{{"step": 4, "los')  # a half-written line
        print('step 3', flush=True)
        while not os.path.exists(out + '/go'):
            time.sleep(0.05)
        json.dump(dict(train_loss=0.5, total_steps=10), open(out + '/all_results.json', 'w'))
        status('finished', step=10, total_steps=10)
    """))
    out.mkdir()
    run = runs.launch("train", [sys.executable, str(script)], out, saves=saves)
    wait_for(lambda: "step 3" in run.tail(), what="step 3")
    p = run.progress()
    assert (p["step"], p["total_steps"], p["elapsed"], p["remaining"], p["percentage"]) == (3, 10, 3.0, 7.0, 30.0)
    assert [r["step"] for r in run.log_records()] == [1, 2, 3]
    assert run.status()["state"] == "running" and run.status()["phase"] == "training"
    (out / "go").write_text("")
    wait_for(lambda: run.status()["state"] == "finished", what="finished")
    assert run.results()["train_loss"] == 0.5
    assert run.progress()["step"] == 10


def test_failed_run_shows_its_error_line(tmp_path, saves):
    run = runs.launch("eval", [sys.executable, "-c", "import sys; print('loading'); "
                                                     "print('error: dataset nope not found', file=sys.stderr); "
                                                     "sys.exit(2)"], tmp_path / "e", saves=saves)
    wait_for(lambda: run.status()["state"] == "failed", what="failed")
    st = run.status()
    assert st["returncode"] == 2 and st["error"] == "error: dataset nope not found"


def test_spawn_validates_before_starting(tmp_path, saves):
    with pytest.raises(ConfigError) as e:
        runs.spawn("train", {"dataset": "identity", "learning_rate": -1, "output_dir": str(tmp_path / "o")},
                   saves=saves)
    assert e.value.field == "learning_rate"
    with pytest.raises(ConfigError) as e:
        runs.spawn("export", {}, saves=saves)
    assert e.value.field == "export_dir"
    # an output dir holding another run is refused unless resume / overwrite is asked
    held = tmp_path / "held"
    (held / "checkpoint-4").mkdir(parents=True)
    (held / "trainer_log.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError) as e:
        runs.spawn("train", {"dataset": "identity", "output_dir": str(held)}, saves=saves)
    assert e.value.field == "output_dir"
    assert runs.all_runs(saves) == [] and not (tmp_path / "o").exists()
    assert (held / "trainer_log.jsonl").exists()  # nothing already saved is lost


def test_spawn_writes_the_config_and_runs_the_engine(tmp_path, saves):
    """The real `python -m engine train <yaml>` is started (here it stops at a missing model, quickly). The YAML
    lives in the run's registry folder: output_dir gets training_args.yaml only once training starts, so a run
    already there keeps its own until then."""
    out = tmp_path / "o"
    run = runs.spawn("train", {"dataset": "identity", "output_dir": str(out), "learning_rate": 2e-4,
                               "model_name_or_path": str(tmp_path / "no-such-model")}, saves=saves)
    cfg = Path(run.config).read_text()
    assert "learning_rate: 0.0002" in cfg and "dataset:\n- identity" in cfg
    assert Path(run.config).parent == saves / runs.REGISTRY / run.id and run.log == str(out / "running.log")
    assert run.argv[1:4] == ["-m", "engine", "train"] and run.argv[-1] == run.config
    wait_for(lambda: run.status()["state"] != "running", timeout=120, what="the run to end")
    st = run.status()
    assert st["state"] == "failed" and "no-such-model" in (st["error"] or ""), run.tail()


def _ckpt(path: Path, adapter=True, complete=True):
    import torch
    from safetensors.torch import save_file
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": int(path.name.split("-")[1])}))
    if adapter:
        (path / "adapter_config.json").write_text("{}")
        save_file({"w": torch.zeros(1)}, str(path / "adapter_model.safetensors"))  # reads whole
    if complete:
        (path / ".tuneboard_complete").write_text("1")


def test_list_runs_checkpoints_and_adapter_choices(tmp_path):
    saves = tmp_path / "saves"
    base = saves / "SmolLM2-135M-Instruct" / "lora"
    a = base / "train_a"
    _ckpt(a / "checkpoint-2")
    _ckpt(a / "checkpoint-10")
    (a / "adapter_config.json").write_text("{}")
    (a / "trainer_log.jsonl").write_text("")
    b = base / "train_b"  # aborted early: only a nested checkpoint and a half-written one
    _ckpt(b / "resumed" / "checkpoint-3")
    (b / "checkpoint-5").mkdir(parents=True)
    (b / "status.json").write_text(json.dumps({"state": "aborted"}))
    (saves / "SmolLM2-135M-Instruct" / "full" / "train_c").mkdir(parents=True)
    (saves / "SmolLM2-135M-Instruct" / "full" / "train_c" / "trainer_log.jsonl").write_text("")
    now = time.time()
    import os
    os.utime(a, (now - 100, now - 100))

    assert [c.name for c in runs.checkpoints(a)] == ["checkpoint-2", "checkpoint-10"]
    assert [str(c.relative_to(b)) for c in runs.checkpoints(b)] == ["resumed/checkpoint-3"]
    listed = runs.list_runs(saves, "models/SmolLM2-135M-Instruct", "lora")
    assert [r["name"] for r in listed] == ["train_b", "train_a"]
    assert listed[0]["state"] == "aborted" and listed[1]["adapter"] is True
    assert {r["method"] for r in runs.list_runs(saves)} == {"lora", "full"}
    labels = [label for label, _ in runs.adapter_choices(saves, "SmolLM2-135M-Instruct", "lora")]
    assert labels == ["train_b/resumed/checkpoint-3", "train_a", "train_a/checkpoint-2", "train_a/checkpoint-10"]
    assert runs.adapter_choices(saves, "other-model", "lora") == []

    info = runs.inspect_output_dir(a)
    assert info["last_checkpoint"].endswith("checkpoint-10") and info["last_step"] == 10
    assert runs.inspect_output_dir(tmp_path / "nothing") is None


def test_output_dir_names_resolve_under_saves(tmp_path):
    assert paths.resolve_output_dir("train_x", "models/SmolLM2-135M-Instruct", "lora", tmp_path) == \
        str(tmp_path / "SmolLM2-135M-Instruct" / "lora" / "train_x")
    assert paths.resolve_output_dir("/abs/dir", "m", "lora", tmp_path) == "/abs/dir"
    assert paths.resolve_output_dir("  ", "m", "lora", tmp_path) is None

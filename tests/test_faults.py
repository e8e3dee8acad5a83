"""Runs survive faults: `kill -9` mid-run then resume, half-written checkpoints, a web UI server killed and
restarted while a run goes on, Abort in the middle of preprocessing / evaluation / saving, and crash-safe
writes of configs and run records. Every wait polls a condition with a deadline.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from engine import paths, procs, runs
from engine.config import load_config, save_config
from engine.errors import ConfigError
from engine.train import rundir
from engine.train.workflow import prepare_output_dir, resolve_resume
from engine.utils import atomic_write_json
from helpers import free_port, frozen, wait_for
from kits.runs import train_values, write_arith

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def arith(tmp_path_factory) -> Path:
    return write_arith(tmp_path_factory.mktemp("faults-data"), 1200)


def _steps(out: Path) -> list[int]:
    return [r["step"] for r in rundir.read_log(out) if "loss" in r]


# ---------------------------------------------------------------- kill -9, then resume
def _cli_argv() -> list[str]:
    """How a user starts it: the installed `tuneboard` script next to this Python (else `python -m engine`)."""
    script = Path(sys.executable).with_name("tuneboard")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "engine"]


def _run_processes(out: Path, mark: str) -> list:
    """Live processes of a run: its output dir in the command line, or the run's marker in the environment."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid == os.getpid() or p.status() == psutil.STATUS_ZOMBIE:
                continue
            if str(out) in " ".join(p.cmdline()) or p.environ().get("TUNEBOARD_TEST_RUN") == mark:
                found.append(p)
        except psutil.Error:
            continue
    return found


def _lock_free(out: Path) -> bool:
    """No process holds the run folder's lock (the kernel drops it as the last process that shares it exits)."""
    try:
        rundir.check_free(out)
    except rundir.FolderBusy:
        return False
    return True


def test_kill_9_of_the_cli_started_from_a_shell_then_resume(tiny_model, tmp_path, capsys):
    """The user's way (issue 9): `tuneboard train ...` from a shell, `kill -9` of that one pid once checkpoint-4
    is on disk, then the same command with resume_from_checkpoint=true. Nobody has reaped the killed CLI yet (its
    parent here is this test; after a shell's `&` it is PID 1, which in a container may never reap): a zombie
    with the pid status.json names, which must not count as a run going on. Nothing else of the run may remain,
    and the resumed run ends at the same step with every step logged once."""
    out, total = tmp_path / "out", 16
    argv = ["train", f"model_name_or_path={tiny_model}", "template=chatml", "dataset=identity",
            f"dataset_dir={ROOT / 'data'}", "cutoff_len=64",
            "per_device_train_batch_size=2", f"max_steps={total}", "save_steps=2", "logging_steps=1",
            "plot_loss=false", "dataloader_num_workers=1", f"output_dir={out}"]
    mark = f"kill9:{tmp_path}"  # in the environment of every process of this run (children inherit it)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1", "TUNEBOARD_TEST_RUN": mark}
    shell = " ".join(shlex.quote(a) for a in _cli_argv() + argv)
    with open(tmp_path / "first.log", "wb") as log:
        sh = subprocess.Popen(["bash", "-c", shell], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        children = []

        def killed_past_checkpoint_4():
            """Kill -9 once checkpoint-4 is whole and the log is past the newest whole checkpoint (those lines must
            not be kept twice). Both are read with the CLI stopped, so they are one moment; the kill comes at it."""
            assert sh.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            top = psutil.Process(sh.pid)
            cli = top if top.name() != "bash" else top.children()[0]  # bash -c runs a lone command by exec
            with frozen(cli.pid) as stopped:
                last = rundir.last_checkpoint(out)
                if not ((out / "checkpoint-4" / rundir.COMPLETE).exists() and
                        max(_steps(out), default=0) > rundir.checkpoint_step(last)):
                    return None
                children.extend(cli.children(recursive=True))
                stopped.kill()  # the CLI's pid only: no process group, no handler runs
            return cli
        cli = wait_for(killed_past_checkpoint_4, 240, "checkpoint-4 and a step after the newest checkpoint",
                       ignore=(IndexError,))
        assert children, "dataloader_num_workers=1: the trainer had a worker process"

        # nothing of the run is left: not the CLI, not its workers, nothing marked as this run
        wait_for(lambda: not procs.is_running(cli) and not any(procs.is_running(c) for c in children)
                 and not _run_processes(out, mark) and _lock_free(out), 30, "the run's processes to end")
        killed = rundir.read_status(out)
        assert killed["pid"] == cli.pid and killed["state"] == "training" and killed["step"] < total
        if cli.pid == sh.pid:
            assert cli.status() == psutil.STATUS_ZOMBIE  # not reaped: the case that was refused
        last = rundir.last_checkpoint(out)
        n = rundir.checkpoint_step(last)
        assert n >= 4 and max(_steps(out)) > n

        # half-written checkpoints with higher numbers: weights but no trainer_state.json, a cut trainer_state.json
        half = out / f"checkpoint-{n + 2}"
        half.mkdir(exist_ok=True)
        (half / "adapter_model.safetensors").write_bytes(b"\0" * 100)
        (half / "trainer_state.json").unlink(missing_ok=True)
        (half / rundir.COMPLETE).unlink(missing_ok=True)
        cut = out / f"checkpoint-{n + 4}"
        cut.mkdir(exist_ok=True)
        (cut / "adapter_model.safetensors").write_bytes(b"\0" * 100)
        (cut / "trainer_state.json").write_text('{"global_step": 2')
        (cut / rundir.COMPLETE).unlink(missing_ok=True)
        assert rundir.last_checkpoint(out) == last and runs.inspect_output_dir(out)["last_step"] == n
        assert resolve_resume(load_config(None, {"dataset": "identity", "resume_from_checkpoint": "true"}), out) \
            == str(last)

        # a plain re-run is refused because the folder holds a run (nothing lost), not as "still going on"
        from engine.cli import main as cli_main
        capsys.readouterr()
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert "already holds another run" in err and "resume_from_checkpoint=true" in err and last.name in err

        # resume continues it (here in this process: the same code path, without a second start-up to pay for)
        assert cli_main(argv + ["resume_from_checkpoint=true"]) == 0, capsys.readouterr().err[-3000:]
    finally:
        try:
            os.killpg(sh.pid, signal.SIGKILL)  # whatever failed, nothing of the first run stays
        except ProcessLookupError:
            pass
        sh.wait(30)
    # no gap, no duplicate: the lines past checkpoint-n were dropped and training went on from step n + 1
    # (a fresh start would repeat 1..n, a half checkpoint would not load)
    assert _steps(out) == list(range(1, total + 1))
    st = rundir.read_status(out)
    assert st["state"] == "finished" and st["step"] == total == st["total_steps"] and st["pid"] != cli.pid
    assert json.loads((out / rundir.RESULTS).read_text())["total_steps"] == total
    lrs = [r["learning_rate"] for r in rundir.read_log(out) if "loss" in r]  # the schedule went on where it was:
    peak = lrs.index(max(lrs))                                                # up through warmup, then down
    assert all(b >= a - 1e-12 for a, b in zip(lrs[:peak], lrs[1:peak + 1])), lrs
    assert all(b <= a + 1e-12 for a, b in zip(lrs[peak:], lrs[peak + 1:])), lrs
    assert [c.name for c in rundir.checkpoints(out)][-1] == f"checkpoint-{total}"
    assert _run_processes(out, mark) == []


def test_a_zombie_or_a_reused_pid_is_not_a_run_going_on(tmp_path):
    """status.json names a pid: only that very process (not a zombie, same start time) blocks the output_dir."""
    def status(pid, started=None):
        atomic_write_json(tmp_path / rundir.STATUS, {"state": "training", "pid": pid, "pid_create_time": started})

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        started = procs.create_time(live.pid)
        status(live.pid, started)
        assert rundir.active_pid(tmp_path) == live.pid
        status(live.pid)  # a status.json from before start times were recorded: the pid alone
        assert rundir.active_pid(tmp_path) == live.pid
        status(live.pid, started - 3600)  # the run's pid, now taken by another process
        assert rundir.active_pid(tmp_path) is None
        wait_for(lambda: psutil.Process(dead.pid).status() == psutil.STATUS_ZOMBIE, 30, "the child to exit")
        status(dead.pid, procs.create_time(dead.pid))  # exited, not reaped: os.kill(pid, 0) still succeeds
        assert rundir.active_pid(tmp_path) is None
        (tmp_path / rundir.LOG).write_text('{"step": 1, "loss": 1.0}\n')
        with pytest.raises(ConfigError, match="already holds another run"):  # not "a run is still going on"
            prepare_output_dir(load_config(None, {"dataset": "identity", "output_dir": str(tmp_path)}))
    finally:
        live.kill()
        live.wait(30)
        dead.wait(30)


DIES_WITH_PARENT = textwrap.dedent("""
    # a trainer stand-in: a forked child (as datasets.map / DataLoader make it) and an exec'd one (as torchrun)
    # die with it; a fork after the training block is left alone
    import os, subprocess, sys, time
    from engine import procs

    def fork_sleeper():
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        return pid

    with procs.children_die_with_me():
        forked = fork_sleeper()
    prog = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                            preexec_fn=procs.preexec_die_with_parent())
    later = fork_sleeper()
    print(forked, prog.pid, later, flush=True)
    time.sleep(600)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_helper_processes_die_with_a_killed_trainer():
    parent = subprocess.Popen([sys.executable, "-c", DIES_WITH_PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    try:
        *kids, later = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
        assert len(kids) == 2 and all(procs.is_running(k) for k in kids + [later])
        os.kill(parent.pid, signal.SIGKILL)
        wait_for(lambda: not any(procs.is_running(k) for k in kids), 30, f"{kids} to die with their parent")
        assert procs.is_running(later)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # whatever failed, nothing stays (the group holds them all)
        parent.wait(30)
        parent.stdout.close()


def test_incomplete_checkpoints_are_never_the_latest(tmp_path):
    out = tmp_path / "run"

    def ckpt(step, files, marker=False):
        d = out / f"checkpoint-{step}"
        d.mkdir(parents=True)
        for name, text in files.items():
            (d / name).write_text(text)
        if marker:
            (d / rundir.COMPLETE).write_text(str(step))

    ckpt(5, {"adapter_model.safetensors": "w"}, marker=True)                        # ours, marked
    ckpt(10, {"adapter_model.safetensors": "w", "trainer_state.json": "{}"})        # another tool's, whole
    ckpt(15, {"adapter_model.safetensors": "w"})                                    # died before the state
    ckpt(20, {"adapter_model.safetensors": "w", "trainer_state.json": '{"log_hi'})  # died writing the state
    ckpt(25, {"trainer_state.json": "{}"})                                          # no weights at all
    (out / "checkpoint-30").mkdir()                                                 # died right after mkdir
    assert [c.name for c in rundir.checkpoints(out)] == ["checkpoint-5", "checkpoint-10"]
    assert rundir.last_checkpoint(out).name == "checkpoint-10"
    assert len(rundir.checkpoints(out, complete_only=False)) == 6


# ---------------------------------------------------------------- the UI server dies, the run goes on
UI_STANDIN = textwrap.dedent("""
    # what the web UI does on Start: engine.runs.spawn, then it keeps serving until it is killed
    import json, sys, time
    from engine import paths, runs
    run = runs.spawn("train", json.loads(sys.argv[1]), sys.argv[2])
    print(run.id, run.pid, flush=True)
    time.sleep(3600)
""")


def _tick(client) -> dict:
    """One refresh of the Train tab's live view, as a browser tab gets it over HTTP."""
    status, progress = client.predict(api_name="/tick")[:2]
    return {"status": str(status), "progress": str(progress)}


def test_ui_server_killed_and_restarted_while_training(tiny_model, arith, tmp_path, saves):
    gradio_client = pytest.importorskip("gradio_client")
    out = tmp_path / "long"
    values = train_values(tiny_model, arith, out, max_steps=100000, save_steps=20)
    ui = subprocess.Popen([sys.executable, "-c", UI_STANDIN, json.dumps(values), str(saves)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        run_id, pid = ui.stdout.readline().split()
        run = runs.get_run(run_id, saves)
        assert run is not None and run.pid == int(pid)
        wait_for(lambda: (rundir.read_status(out) or {}).get("step", 0) >= 2, 240, "training steps")
        os.killpg(ui.pid, signal.SIGKILL)  # the UI server dies hard: no cleanup code runs
        ui.wait(30)
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
        ui.stdout.close()
    step_at_kill = rundir.read_status(out)["step"]
    assert run.alive()  # the trainer has its own session: the server's death did not take it along

    # a new server process: it knows the run only from the registry on disk
    port = free_port()
    env = {**os.environ, paths.SAVES_ENV: str(saves), "GRADIO_ANALYTICS_ENABLED": "False",
           "TUNEBOARD_ROOTS": str(tmp_path)}
    env.pop("GRADIO_SERVER_NAME", None)
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: rundir.read_status(out)["step"] > step_at_kill + 3, 120, "training to go on")
        client = wait_for(lambda: _client(gradio_client, port, server, tmp_path), 180, "the new web UI")
        first = wait_for(lambda: (lambda t: t if "data-state='running'" in t["progress"] else None)(_tick(client)),
                         60, "the new server to show the run")
        assert str(out) in first["status"]
        step1 = int(first["progress"].split("data-step='")[1].split("'")[0])
        assert step1 >= step_at_kill
        # engine.runs in this process re-attaches the same way and stops the run; the page follows
        again = runs.active_run(saves)
        assert again is not None and again.id == run_id and again.status()["state"] == "running"
        assert again.abort() is True
        wait_for(lambda: "data-state='aborted'" in _tick(gradio_client.Client(
            f"http://127.0.0.1:{port}/", verbose=False))["progress"], 60, "the page to show the abort")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    steps = _steps(out)
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > step_at_kill  # one log, nothing lost
    assert rundir.read_status(out)["state"] == "aborted" and rundir.last_checkpoint(out) is not None


def _client(gradio_client, port, server, tmp_path):
    assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
    try:
        return gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
    except Exception:  # not listening yet
        return None


# ---------------------------------------------------------------- Abort in the middle of a phase
# The run is started exactly like the UI starts one (engine.runs: own process group, registry, running.log),
# with one engine function wrapped so the run is known to be inside that phase when Abort comes.
PHASE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    phase, marker, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]

    def reached(what):
        marker.write_text(what)

    if phase == "preprocessing":  # inside a tokenisation worker (datasets num_proc): children exist
        from engine.data import processing
        real = processing.sft_batch
        def sft_batch(*a, **kw):
            reached("preprocessing")
            time.sleep(3600)
        processing.sft_batch = sft_batch
    elif phase == "evaluating":  # the final evaluation, with data loader workers
        import transformers
        def prediction_step(self, *a, **kw):
            reached("evaluating")
            time.sleep(3600)
        transformers.Trainer.prediction_step = prediction_step
        from engine.train import sft  # pt / sft evaluate through their own loss-only prediction_step
        sft.CausalLMTrainer.prediction_step = prediction_step
    elif phase == "saving":  # writing the final adapter takes a while
        import transformers
        real = transformers.Trainer.save_model
        def save_model(self, output_dir=None, _internal_call=False):
            if not _internal_call:
                reached("saving")
                time.sleep(3)
            return real(self, output_dir, _internal_call)
        transformers.Trainer.save_model = save_model
    from engine.cli import main
    sys.exit(main(["train", *argv]))
""")


@pytest.mark.parametrize("phase,extra", [
    ("preprocessing", {"max_samples": 1200, "preprocessing_num_workers": 2, "max_steps": 2, "overwrite_cache": True}),
    ("evaluating", {"val_size": 16, "eval_strategy": "no", "dataloader_num_workers": 2, "max_steps": 2,
                    "per_device_eval_batch_size": 1}),
    ("saving", {"max_steps": 2}),
])
def test_abort_in_a_phase_leaves_no_process_and_a_readable_run_dir(phase, extra, tiny_model, arith, tmp_path,
                                                                   saves):
    out = tmp_path / "run"
    out.mkdir()
    script, marker = tmp_path / "phase.py", tmp_path / "reached"
    script.write_text(PHASE)
    argv = [f"{k}={v}" for k, v in train_values(tiny_model, arith, out, save_steps=1000, **extra).items()]
    run = runs.launch("train", [sys.executable, str(script), phase, str(marker), *argv], out, saves=saves)
    wait_for(lambda: marker.exists() or run.status()["state"] != "running", 240, f"the run to reach {phase}")
    assert marker.exists(), run.tail()
    assert rundir.read_status(out)["state"] == phase
    procs = run.processes()
    if phase != "saving":
        assert len(procs) >= 3, procs  # the trainer and its worker processes
    assert run.abort(grace=30) is True
    for p in procs:
        assert not psutil.pid_exists(p.pid) or psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE, p
    orphans = [p for p in psutil.process_iter(["cmdline"]) if str(script) in " ".join(p.info["cmdline"] or [])]
    assert orphans == []
    wait_for(lambda: run.status()["state"] != "running", 30, "the record to settle")
    # the run dir reads back whole
    st = rundir.read_status(out)
    assert st["state"] == "aborted" and run.status()["state"] == "aborted"
    assert rundir.checkpoints(out, complete_only=False) == rundir.checkpoints(out)  # nothing half-written
    assert isinstance(rundir.read_log(out), list) and run.tail()
    load_config(out / rundir.CONFIG)
    if phase == "saving":  # the Abort waited for the write: the adapter is whole, nothing else ran
        from safetensors import safe_open
        with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
            assert any("lora_A" in k for k in f.keys())
        assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
        assert "error" in st and "aborted by user" in st["error"]
    else:
        assert st["error"] == f"stopped by the user while {phase}"
        assert not (out / "adapter_model.safetensors").exists() or phase == "evaluating"


# ---------------------------------------------------------------- atomic writes
def test_configs_and_run_records_are_written_atomically(tmp_path, monkeypatch, saves):
    """A crash in the middle of a write (here: the rename that publishes it fails) leaves the old file whole
    and no temporary file behind, for the run config, status.json and the run registry record."""
    import engine.utils as utils
    cfg = tmp_path / "training_args.yaml"
    save_config(load_config(None, {"dataset": "identity", "learning_rate": "1e-4"}), cfg)
    rundir.write_status(tmp_path, "training", step=3)
    run = runs.Run(id="r1", command="train", run_dir=str(tmp_path), output=str(tmp_path), config=str(cfg),
                   log=str(tmp_path / "running.log"), saves=str(saves))
    run.save()
    before = {p: p.read_bytes() for p in (cfg, tmp_path / rundir.STATUS, run.record_path)}

    def crash(src, dst):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(utils.os, "replace", crash)
        for write in (lambda: save_config(load_config(None, {"dataset": "identity", "learning_rate": "2e-4"}), cfg),
                      lambda: rundir.write_status(tmp_path, "finished", step=9),
                      lambda: run._update(returncode=0)):
            with pytest.raises(OSError, match="disk full"):
                write()
    for p, data in before.items():
        assert p.read_bytes() == data, p
    assert load_config(cfg).learning_rate == 1e-4 and rundir.read_status(tmp_path)["step"] == 3
    leftovers = [p.name for d in (tmp_path, run.record_path.parent) for p in d.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_resume_of_a_checkpoint_at_the_end_is_refused_with_what_to_raise(tmp_path):
    """transformers would train step N+1 of N from a final checkpoint; the run says what to raise instead."""
    import torch
    from safetensors.torch import save_file
    out = tmp_path / "out"
    ckpt = out / "checkpoint-10"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 10, "max_steps": 10, "num_train_epochs": 3}))
    save_file({"w": torch.zeros(1)}, str(ckpt / "adapter_model.safetensors"))  # weights that read whole
    (ckpt / rundir.COMPLETE).write_text("1")

    def resume(**kw):
        return resolve_resume(load_config(None, {"dataset": "identity", "resume_from_checkpoint": "true",
                                                 **{k: str(v) for k, v in kw.items()}}), out)

    for kw in ({"max_steps": 10}, {"max_steps": 8}, {"num_train_epochs": 3}):
        with pytest.raises(ConfigError) as e:
            resume(**kw)
        assert "checkpoint-10 is already at step 10" in str(e.value) and "raise max_steps" in str(e.value)
    assert resume(max_steps=12) == str(ckpt)
    assert resume(num_train_epochs=4) == str(ckpt)
    with pytest.raises(ConfigError, match="already at step 10"):  # an explicit folder is checked the same way
        resolve_resume(load_config(None, {"dataset": "identity", "resume_from_checkpoint": str(ckpt),
                                          "max_steps": "10"}), out)

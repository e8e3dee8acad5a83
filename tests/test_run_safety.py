"""Nothing saved is lost (issue 19): overwrite never touches other runs and keeps the old run until the new one
has a checkpoint; a failed resume changes nothing; Abort always ends with a checkpoint of the last finished step
and an `aborted` status, whatever the data workers and the step time; one writer per run folder; damaged
checkpoints are passed over or named; a full disk is one message and leaves whole checkpoints resumable; output
folders that cannot be written are refused before anything loads. Real processes, files, signals and file
systems; the tiny model throughout.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import paths, runs
from engine.cli import main as cli
from engine.config import load_config
from engine.errors import ConfigError
from engine.train import rundir
from engine.train.workflow import run
from helpers import wait_for
from kits.args import as_args
from kits.runs import arith_rows
from kits.runs import train_values as args

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "engine", "train"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("safety-data")
    rows = arith_rows(400)
    (d / "arith.json").write_text(json.dumps(rows), encoding="utf-8")
    (d / "broken.json").write_text(json.dumps(rows[:5])[:-40], encoding="utf-8")  # cut short
    (d / "empty.json").write_bytes(b"")
    (d / "dataset_info.json").write_text(json.dumps({n: {"file_name": f"{n}.json"}
                                                     for n in ("arith", "broken", "empty")}), encoding="utf-8")
    return d


def argv(tiny_model, data, out, **kw) -> list[str]:
    return [f"{k}={v}" for k, v in args(tiny_model, data, out, **kw).items()]


@pytest.fixture(scope="module")
def finished(tiny_model, data, tmp_path_factory) -> Path:
    """A finished run: 5 steps, checkpoints at 2 and 4 (and the end), trained once; tests copy it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run(load_config(None, args(tiny_model, data, out, max_steps=5, save_steps=2)))
    assert [rundir.checkpoint_step(c) for c in rundir.checkpoints(out)][:2] == [2, 4]
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (hidden ones too) and a hash of its bytes; of running.log, the console log of every
    attempt in the folder, only what it held before (it may grow, never change)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != rundir.RUNNING_LOG} | \
        {str(p.relative_to(root)): p.stat().st_size for p in root.rglob(rundir.RUNNING_LOG)}


def changed(root: Path, before: dict) -> list[str]:
    """The files that differ from `before` (a snapshot): changed, gone, new, or a running.log that shrank."""
    now = snapshot(root)
    logs = {k for k in before.keys() | now.keys() if k.endswith(rundir.RUNNING_LOG)}
    diff = sorted(k for k in before.keys() | now.keys() if k not in logs and before.get(k) != now.get(k))
    return diff + sorted(k for k in logs if now.get(k, -1) < before.get(k, 0))


def cli_err(capsys, *a) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli(["train", *a])
    return rc, capsys.readouterr().err


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """A real `python -m engine train ...` in its own session (as from a shell), its output in `log`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(30)


def logged_steps(out: Path) -> list[int]:
    return [r["step"] for r in rundir.read_log(out) if "loss" in r]


# ---------------------------------------------------------------- 1. overwrite touches this run's files only
def test_overwrite_of_a_folder_of_runs_is_refused_and_no_run_loses_a_file(tiny_model, data, finished, tmp_path,
                                                                         capsys, monkeypatch):
    saves = tmp_path / "saves"
    method = saves / tiny_model.name / "lora"
    copy_run(finished, method / "done")
    aborted = method / "aborted"  # an aborted run whose only resume point is its checkpoint
    shutil.copytree(finished / "checkpoint-2", aborted / "checkpoint-2")
    (aborted / rundir.LOG).write_text("".join(json.dumps(r) + "\n" for r in rundir.read_log(finished)[:3]))
    before = snapshot(method)

    rc, err = cli_err(capsys, *argv(tiny_model, data, method, max_steps=2, overwrite_output_dir="true"))
    assert rc == 2 and "Traceback" not in err
    assert "is a folder of runs (aborted, done)" in err and "never other runs" in err and str(method / "train_2") in err
    # without overwrite: the refusal does not offer to resume a child's checkpoint as if it were this folder's
    rc, err = cli_err(capsys, *argv(tiny_model, data, method, max_steps=2))
    assert rc == 2 and "is a folder of runs" in err and "resume_from_checkpoint=true" not in err

    # the web UI: output name "." with Overwrite ticked is that same method folder
    monkeypatch.setenv(paths.SAVES_ENV, str(saves))
    out = paths.resolve_output_dir(".", str(tiny_model), "lora", saves)
    assert Path(out).resolve() == method.resolve()
    with pytest.raises(ConfigError) as e:
        runs.spawn("train", {**args(tiny_model, data, out, max_steps=2), "overwrite_output_dir": True}, saves)
    assert e.value.field == "output_dir" and "folder of runs" in str(e.value)
    assert runs.all_runs(saves) == []
    assert changed(method, before) == []  # every file of every run, byte for byte


# ---------------------------------------------------------------- 2. the old run stays until the new one has one
def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(tiny_model, data, finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path / "run")
    (out / "notes.txt").write_text("my notes")  # not a run file: never moved, never deleted
    (out / "keep").mkdir()
    (out / "keep" / "data.csv").write_text("a,b\n")
    before = snapshot(out)

    # a new run that fails on its data, or on its model: the old run is untouched (validation comes first)
    for bad in ({"dataset": "broken"}, {"model_name_or_path": str(tmp_path / "no-model")}):
        rc, err = cli_err(capsys, *argv(tiny_model, data, out, max_steps=3, overwrite_output_dir="true", **bad))
        assert rc == 2 and "Traceback" not in err, err
        assert changed(out, before) == [], bad

    # the new run works: the old run's files are replaced, the user's files stay
    rc, err = cli_err(capsys, *argv(tiny_model, data, out, max_steps=3, save_steps=2, learning_rate=2e-3,
                                    overwrite_output_dir="true"))
    assert rc == 0, err[-3000:]
    assert [c.name for c in rundir.checkpoints(out)] == ["checkpoint-2", "checkpoint-3"]  # the old run's 4 is gone
    assert logged_steps(out) == [1, 2, 3] and load_config(out / rundir.CONFIG).learning_rate == 2e-3
    assert (out / "notes.txt").read_text() == "my notes" and (out / "keep" / "data.csv").is_file()
    assert not (out / rundir.REPLACED).exists() and rundir.read_status(out)["state"] == "finished"


def test_a_replacing_run_killed_before_its_first_checkpoint_gives_the_old_run_back(tiny_model, data, finished,
                                                                                  tmp_path, capsys):
    out = copy_run(finished, tmp_path / "run")
    before = snapshot(out)
    p = start(CLI + argv(tiny_model, data, out, max_steps=100000, save_steps=100000, overwrite_output_dir="true"),
              tmp_path / "new.log")
    try:
        # the new run trains: its status names it, at step 1 or later
        wait_for(lambda: p.poll() is not None or (lambda st: st.get("pid") == p.pid and st.get("state") ==
                                                  "training" and st.get("step", 0) >= 1)(rundir.read_status(out) or {}),
                 240, "the new run's first step")
        assert p.poll() is None, (tmp_path / "new.log").read_text()[-3000:]
    finally:
        kill_group(p)  # kill -9: no handler runs, the replace is left half-done
    at_kill = {q.name for q in out.iterdir()}

    # the next start in that folder (here a plain one, refused because the folder holds a run) puts it back
    rc, err = cli_err(capsys, *argv(tiny_model, data, out, max_steps=2))
    assert rc == 2 and "already holds another run" in err and rundir.last_checkpoint(finished).name in err
    assert changed(out, before) == []
    assert "checkpoint-4" not in at_kill  # (the kill had left the old run out of place)


# ---------------------------------------------------------------- 3. a failed resume changes nothing
def test_a_failed_resume_changes_nothing(tiny_model, data, finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path / "run")
    before = snapshot(out)
    for bad in ({"dataset": "broken"}, {"dataset": "empty"}):
        rc, err = cli_err(capsys, *argv(tiny_model, data, out, max_steps=8,
                                        resume_from_checkpoint=str(out / "checkpoint-2"), **bad))
        assert rc == 2 and "Traceback" not in err, err
        assert changed(out, before) == [], bad  # log not cut back to step 2, config and status as they were


# ---------------------------------------------------------------- 4. Abort: a checkpoint of the last finished step
@pytest.mark.parametrize("target", ["group", "pid"])
def test_a_stopped_cli_saves_the_last_finished_step_and_exits_130(target, tiny_model, data, tmp_path):
    """`kill -TERM -PGID` reaches the data workers too; `kill -TERM PID` only the trainer. Either way the run ends
    with a checkpoint of the step it stopped at, status `aborted`, exit code 130."""
    out = tmp_path / "run"
    p = start(CLI + argv(tiny_model, data, out, max_steps=100000, save_steps=100000, dataloader_num_workers=2),
              tmp_path / "cli.log")
    try:
        wait_for(lambda: p.poll() is None and len(logged_steps(out)) >= 3, 240, "three steps")
        assert p.poll() is None, (tmp_path / "cli.log").read_text()[-3000:]
        if target == "group":
            os.killpg(p.pid, signal.SIGTERM)
        else:
            os.kill(p.pid, signal.SIGTERM)
        rc = p.wait(120)
    finally:
        kill_group(p)
    text = (tmp_path / "cli.log").read_text()
    assert rc == 130, text[-3000:]
    st = rundir.read_status(out)
    last = rundir.last_checkpoint(out)
    assert st["state"] == "aborted" and last is not None, text[-3000:]
    assert rundir.checkpoint_step(last) == st["step"] == max(logged_steps(out)) >= 3
    assert rundir.checkpoint_problem(last) is None
    assert "Traceback" not in text and "gemm_4bit_forward" not in text  # (11: no bitsandbytes noise either)


SLOW_STEP = textwrap.dedent("""
    # a busy machine: the third optimizer step takes longer than a fixed grace period would allow
    import sys, time
    from pathlib import Path
    import transformers
    marker, argv = Path(sys.argv[1]), sys.argv[2:]
    real = transformers.Trainer.training_step
    def training_step(self, *a, **kw):
        if self.state.global_step == 2:
            marker.write_text("in step 3")
            time.sleep(9)
        return real(self, *a, **kw)
    transformers.Trainer.training_step = training_step
    from engine.cli import main
    sys.exit(main(["train", *argv]))
""")


def test_abort_from_the_ui_waits_for_a_slow_step_and_its_checkpoint(tiny_model, data, tmp_path, monkeypatch):
    saves = tmp_path / "saves"
    monkeypatch.setenv(paths.SAVES_ENV, str(saves))
    monkeypatch.setattr(runs, "_POPENS", {})
    out, script, marker = tmp_path / "run", tmp_path / "slow.py", tmp_path / "reached"
    script.write_text(SLOW_STEP)
    r = runs.launch("train", [sys.executable, str(script), str(marker),
                              *argv(tiny_model, data, out, max_steps=100000, save_steps=100000)], out, saves=saves)
    try:
        wait_for(lambda: marker.exists() or r.status()["state"] != "running", 240, "the slow step")
        assert marker.exists(), r.tail()
        assert r.request_abort() is True
        assert r.status()["phase"] == rundir.ABORTING  # at once, before the trainer has written anything
        assert r.abort() is True  # waits as long as the trainer says it needs, not a fixed 7 s
    finally:
        r.abort(grace=1)
    wait_for(lambda: r.refresh().returncode is not None, 30, "the reaper to record the exit code")
    assert r.returncode == 130 and r.status()["state"] == "aborted", r.tail()
    st = rundir.read_status(out)
    assert st["state"] == "aborted" and st["step"] == 3, r.tail()
    assert rundir.checkpoint_step(rundir.last_checkpoint(out)) == 3 == max(logged_steps(out))


# Both scripts below define on_stop(): the recording of the abort, into which a second event is made to land.
# The tail installs it, sends the stop and prints what the record did; the record must be written once, whole.
STOP_AND_REPORT = """
stop = GracefulStop(on_stop=on_stop)
stop.install()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
except KeyboardInterrupt:
    print(",".join(seen), flush=True)
    sys.exit(130)
"""


def _record_of_a_stop(script: str) -> None:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(script) + STOP_AND_REPORT], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 130 and r.stdout.strip() == "start,end", (r.stdout, r.stderr[-2000:])


def test_the_same_stop_twice_records_the_abort_once_and_whole():
    # Abort signals the process group and each process: outside the training loop the same stop can arrive
    # while the handler of the first one is recording the abort.
    _record_of_a_stop("""
        import os, signal, sys, time
        from engine.train.callbacks import GracefulStop
        seen = []
        def on_stop():
            seen.append("start")
            if seen.count("start") == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # the second signal lands while the first is being recorded
            time.sleep(0.3)
            seen.append("end")
    """)


def test_a_data_worker_dying_of_the_same_stop_does_not_cut_the_abort_record_short():
    # The group-wide stop also kills the data loader's workers, and torch's SIGCHLD handler raises "worker killed"
    # into the main thread, here while the abort is being recorded.
    _record_of_a_stop("""
        import os, signal, subprocess, sys, time
        from engine.train.callbacks import GracefulStop
        def worker_died(signum, frame):  # what torch.utils.data's handler does when a worker dies of a signal
            raise RuntimeError("DataLoader worker is killed by signal: Terminated.")
        signal.signal(signal.SIGCHLD, worker_died)
        seen = []
        def on_stop():
            seen.append("start")
            worker = subprocess.Popen([sys.executable, "-c",
                                       "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
            deadline = time.time() + 30
            while worker.poll() is None and time.time() < deadline:  # the worker's death arrives mid-record
                time.sleep(0.01)
            seen.append("end")
    """)


# ---------------------------------------------------------------- 5. one writer per run folder
def test_two_trains_on_one_output_dir_one_is_refused(tiny_model, data, tmp_path):
    out = tmp_path / "run"
    cmd = CLI + argv(tiny_model, data, out, max_steps=100000, save_steps=100000)
    a, b = start(cmd, tmp_path / "a.log"), start(cmd, tmp_path / "b.log")
    procs = {"a": a, "b": b}
    try:
        first = wait_for(lambda: next((n for n, p in procs.items() if p.poll() is not None), None), 240,
                         "one of the two to be refused")
        other = "b" if first == "a" else "a"
        text = (tmp_path / f"{first}.log").read_text()
        assert procs[first].returncode == 2 and "Traceback" not in text, text[-3000:]
        assert f"error: output_dir: another run is writing to {out} right now" in text
        # the one that got the folder trains on, alone
        wait_for(lambda: procs[other].poll() is None and len(logged_steps(out)) >= 3, 240, "its steps")
        os.killpg(procs[other].pid, signal.SIGTERM)
        assert procs[other].wait(120) == 130
    finally:
        for p in procs.values():
            kill_group(p)
    steps = logged_steps(out)
    assert steps == list(range(1, len(steps) + 1))  # every step once


def test_the_lock_is_the_folders_and_dies_with_its_holder(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.setattr(runs, "_POPENS", {})
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from engine.train import rundir\n"
                               "with rundir.lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)",
                               str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(rundir.FolderBusy, match="another run is writing to"):
            rundir.check_free(out)
        with pytest.raises(rundir.FolderBusy):
            with rundir.lock(out):
                pass
        with pytest.raises(ConfigError) as e:  # the web UI's Start on that folder
            runs.spawn("train", {"dataset": "identity", "output_dir": str(out)}, tmp_path / "saves")
        assert e.value.field == "output_dir" and "another run is writing" in str(e.value)
        holder.kill()  # kill -9: the kernel drops the lock
        holder.wait(30)
        with rundir.lock(out):
            with rundir.lock(out):  # the same process again (the CLI, then run()): no deadlock
                pass
    finally:
        holder.kill()
        holder.wait(30)
        holder.stdout.close()


# ---------------------------------------------------------------- 6. damaged checkpoints
def test_resume_passes_over_a_damaged_checkpoint_and_names_a_damaged_explicit_one(tiny_model, data, finished,
                                                                                  tmp_path, capsys):
    out = copy_run(finished, tmp_path / "run")
    for c in rundir.checkpoints(out)[2:]:  # as if the run had died after checkpoint-4
        shutil.rmtree(c)
    for f in ("adapter_model.safetensors", rundir.RESULTS):
        (out / f).unlink()
    weights = out / "checkpoint-4" / "adapter_model.safetensors"
    with open(weights, "r+b") as f:  # cut short, as a kill or a full disk leaves it (the marker is there)
        f.truncate(weights.stat().st_size // 2)
    assert rundir.last_checkpoint(out).name == "checkpoint-4"

    rc, err = cli_err(capsys, *argv(tiny_model, data, out, max_steps=6,
                                    resume_from_checkpoint=str(out / "checkpoint-4")))
    assert rc == 2 and "Traceback" not in err
    assert "checkpoint-4 is damaged: adapter_model.safetensors cannot be read" in err
    assert f"resume_from_checkpoint={out / 'checkpoint-2'}" in err

    rc, err = cli_err(capsys, *argv(tiny_model, data, out, max_steps=6, resume_from_checkpoint="true"))
    assert rc == 0, err[-3000:]
    assert "checkpoint-4 is damaged" in (out / rundir.RUNNING_LOG).read_text()
    assert logged_steps(out) == [1, 2, 3, 4, 5, 6]  # went on from step 2: every step once
    assert (out / "checkpoint-4.damaged").is_dir() and rundir.read_status(out)["state"] == "finished"
    assert "adapter_model.safetensors cannot be read" in rundir.checkpoint_problem(out / "checkpoint-4.damaged")

    state = out / "checkpoint-6" / "trainer_state.json"  # a garbled trainer_state.json counts too
    state.write_text(state.read_text()[:50])
    (out / "checkpoint-6" / rundir.COMPLETE).write_text("6")
    pick, skipped = rundir.last_good_checkpoint(out)
    assert pick.name == "checkpoint-4" and skipped[0][0].name == "checkpoint-6"
    assert "trainer_state.json cannot be read" in skipped[0][1]


# ---------------------------------------------------------------- 7. a full disk
@pytest.fixture
def small_fs(tmp_path):
    """A 6 MiB tmpfs: room for one checkpoint of the tiny model (its tokenizer is 3.5 MB), not two."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_message_and_the_whole_checkpoints_resume(tiny_model, data, small_fs, tmp_path):
    out = small_fs / "run"
    cmd = CLI + argv(tiny_model, data, out, max_steps=6, save_steps=1)
    p = start(cmd, tmp_path / "full.log")
    try:
        rc = p.wait(300)
    finally:
        kill_group(p)
    text = (tmp_path / "full.log").read_text()
    assert rc == 2, text[-3000:]
    errors = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in text and "During handling" not in text, text[-3000:]
    msg = errors[0]
    assert f"disk full: no space left on the file system of {out}" in msg
    assert "A checkpoint of this run takes about" in msg and "free at least" in msg
    assert "checkpoint-1 is whole: run the same command with resume_from_checkpoint=true" in msg
    st = rundir.read_status(out)
    assert st["state"] == "failed" and st["error"].startswith("disk full")
    assert [c.name for c in rundir.checkpoints(out, complete_only=False)] == ["checkpoint-1"]
    assert rundir.checkpoint_problem(out / "checkpoint-1") is None

    # with room again, the run resumes from its whole checkpoint
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    p = start(cmd + ["resume_from_checkpoint=true", "save_steps=100"], tmp_path / "resume.log")
    try:
        rc = p.wait(300)
    finally:
        kill_group(p)
    assert rc == 0, (tmp_path / "resume.log").read_text()[-3000:]
    assert logged_steps(out) == [1, 2, 3, 4, 5, 6] and rundir.read_status(out)["state"] == "finished"


# ---------------------------------------------------------------- 8. output folders that cannot be written
def test_an_output_dir_that_cannot_be_written_is_refused_in_validation(tiny_model, data, tmp_path, capsys,
                                                                        monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = {a_file: "is a file, not a folder", a_file / "run": f"{a_file} is a file, not a folder"}
    if os.geteuid() == 0:  # root writes through permissions: a read-only file system says no to it too
        ro = tmp_path / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode == 0:
            cases[ro / "run"] = "is not writable (a read-only file system)"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        cases[locked / "run"] = "is not writable (no write permission for this user)"
    try:
        for out, why in cases.items():
            with pytest.raises(ConfigError) as e:  # validation: no model or data has been read
                load_config(None, args(tiny_model, data, out))
            assert e.value.field == "output_dir" and why in str(e.value), str(e.value)
            monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
            with pytest.raises(ConfigError) as e:  # the web UI's Start
                runs.spawn("train", args(tiny_model, data, out), tmp_path / "saves")
            assert e.value.field == "output_dir"
        rc, err = cli_err(capsys, *argv(tiny_model, data, a_file / "run"))
        assert rc == 2 and "Traceback" not in err and err.startswith("error: output_dir:")
        assert a_file.read_text() == "x"
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(tmp_path / "ro")], check=False, capture_output=True)


# ---------------------------------------------------------------- 11. smaller ones
def test_results_are_readable_as_the_umask_allows(tiny_model, data, tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o027)  # a group may read, others nothing
    try:
        run(load_config(None, args(tiny_model, data, out, max_steps=2, save_steps=1)))
    finally:
        os.umask(old)
    for f in ("adapter_model.safetensors", rundir.RESULTS, rundir.STATUS, rundir.CONFIG, rundir.STATS,
              "checkpoint-2/adapter_model.safetensors", "checkpoint-2/optimizer.pt"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o640, f
    assert stat.S_IMODE((out / "checkpoint-2").stat().st_mode) == 0o750


def test_a_merged_model_folder_is_readable_as_the_umask_allows(tiny_model, tiny_adapter, tmp_path):
    from engine.export import export_model
    old = os.umask(0o022)
    try:
        out = export_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": [str(tiny_adapter)],
                            "export_dir": str(tmp_path / "merged")}, "export"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    files = [p for p in out.iterdir() if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o644 for p in files}


def test_train_loss_after_a_resume_averages_the_whole_run(tiny_model, data, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    kw = dict(max_steps=6, save_steps=3, learning_rate=3e-2)
    run(load_config(None, args(tiny_model, data, whole, **kw)))
    copy_run(whole, parts)  # as if it had died after checkpoint-3
    shutil.rmtree(parts / "checkpoint-6")
    for f in ("adapter_model.safetensors", rundir.RESULTS):
        (parts / f).unlink()
    run(load_config(None, args(tiny_model, data, parts, **kw, resume_from_checkpoint="true")))
    losses = [r["loss"] for r in rundir.read_log(whole) if "loss" in r]
    assert len(losses) == 6 and abs(sum(losses[3:]) / 3 - sum(losses) / 6) > 0.01  # the two averages differ
    expected = json.loads((whole / rundir.RESULTS).read_text())["train_loss"]
    assert json.loads((parts / rundir.RESULTS).read_text())["train_loss"] == pytest.approx(expected, abs=1e-3)


def test_clearer_messages_for_a_folder_named_yaml_an_empty_json_and_a_runs_parent(tiny_model, data, tmp_path,
                                                                                  capsys):
    folder = tmp_path / "recipe.yaml"
    folder.mkdir()
    rc, err = cli_err(capsys, str(folder))
    assert rc == 2 and f"{folder}: this is a folder, not a config file" in err
    rc, err = cli_err(capsys, *argv(tiny_model, data, tmp_path / "o", dataset="empty", max_steps=1))
    assert rc == 2 and "empty.json: the file is empty (0 bytes)" in err and "truncated" not in err

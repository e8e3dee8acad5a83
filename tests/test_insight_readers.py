"""The doctor's readers on files written here: a Hugging Face trainer_state.json (top level and inside the newest
checkpoint), a LLaMA-Factory trainer_log.jsonl, our own log with non-finite values, and bad paths.
These check the formats only; verdicts are tested on real runs (test_insight_doctor.py)."""
from __future__ import annotations

import json
import math

import pytest

from engine.cli import main as cli
from engine.insight.runlog import find_runs, read_run
from engine.errors import UserError


def _hf_state(steps: int = 6) -> dict:
    hist = []
    for s in range(1, steps + 1):
        hist.append({"epoch": s / 3, "grad_norm": 1.5, "learning_rate": 1e-4 * (1 - s / steps), "loss": 3.0 - 0.2 * s,
                     "step": s, "num_input_tokens_seen": 100 * s})
        if s % 2 == 0:
            hist.append({"epoch": s / 3, "eval_loss": 2.9 - 0.1 * s, "eval_runtime": 0.5, "step": s})
    hist.append({"epoch": 2.0, "step": steps, "train_loss": 2.3, "train_runtime": 12.0, "total_flos": 1.0})
    return {"best_global_step": 6, "best_metric": 2.3, "best_model_checkpoint": "/elsewhere/out/checkpoint-6",
            "epoch": 2.0, "global_step": steps, "max_steps": steps, "log_history": hist}


def test_hf_trainer_state_at_the_top(tmp_path):
    (tmp_path / "checkpoint-6").mkdir()
    (tmp_path / "trainer_state.json").write_text(json.dumps(_hf_state()))
    run = read_run(tmp_path)
    assert run.format == "hf"
    assert [p.step for p in run.train] == [1, 2, 3, 4, 5, 6]
    assert [p.step for p in run.eval] == [2, 4, 6] and run.eval[0].loss == pytest.approx(2.7)
    assert run.train[0].tokens == 100 and run.train[2].lr == pytest.approx(5e-5)
    assert run.total_steps == 6 and run.state == "finished"
    # the Trainer's own best checkpoint, found where the folder is now (the run was moved after training)
    assert run.best_checkpoint_hint == str(tmp_path / "checkpoint-6")


def test_hf_trainer_state_of_the_newest_checkpoint(tmp_path):
    for step in (2, 4):
        ck = tmp_path / f"checkpoint-{step}"
        ck.mkdir()
        st = _hf_state(step)
        st["max_steps"] = 10
        (ck / "trainer_state.json").write_text(json.dumps(st))
        (ck / "model.safetensors").write_bytes(b"x")
    run = read_run(tmp_path)
    assert run.format == "hf" and run.last_step == 4 and run.total_steps == 10
    assert run.state == "unknown"  # 4 of 10 steps: not finished, and HF writes no status
    assert [s for s, _ in run.checkpoints] == [2, 4]
    assert read_run(tmp_path / "checkpoint-4" / "trainer_state.json").last_step == 4


def test_llamafactory_log(tmp_path):
    rows = [
        {"current_steps": 5, "total_steps": 20, "loss": 2.5, "lr": 1e-4, "epoch": 0.25, "percentage": 25.0,
         "elapsed_time": "0:00:10", "remaining_time": "0:00:30", "throughput": 100.0, "total_tokens": 500},
        {"current_steps": 10, "total_steps": 20, "loss": 2.1, "lr": 8e-5, "epoch": 0.5, "percentage": 50.0,
         "elapsed_time": "0:00:20", "remaining_time": "0:00:20"},
        {"current_steps": 10, "total_steps": 20, "eval_loss": 2.2, "epoch": 0.5, "percentage": 50.0,
         "elapsed_time": "0:00:22", "remaining_time": "0:00:18"},
        {"current_steps": 20, "total_steps": 20, "loss": None, "lr": 1e-5, "epoch": 1.0, "percentage": 100.0,
         "elapsed_time": "1 day, 0:00:41", "remaining_time": "0:00:00"},
    ]
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"current_st')
    (tmp_path / "training_args.yaml").write_text("learning_rate: 1.0e-4\nlora_rank: 16\nstage: sft\n")
    run = read_run(tmp_path)
    assert run.format == "llamafactory"
    assert [(p.step, p.loss) for p in run.train[:2]] == [(5, 2.5), (10, 2.1)]
    assert math.isnan(run.train[2].loss)  # a null loss is a non-finite loss, not a missing point
    assert [(p.step, p.loss) for p in run.eval] == [(10, 2.2)]
    assert run.train[0].tokens == 500 and run.train[1].lr == 8e-5
    assert run.total_steps == 20 and run.state == "finished"
    assert run.status["elapsed"] == 86441.0
    assert run.config["lora_rank"] == 16


def test_our_log_keeps_nonfinite_values_as_nan(tmp_path):
    rows = [{"step": 1, "total_steps": 3, "loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": 0.1},
            {"step": 2, "total_steps": 3, "loss": None, "loss_nonfinite": True, "grad_norm": "inf",
             "grad_norm_nonfinite": True, "learning_rate": 1e-4, "epoch": 0.2},
            {"step": 2, "total_steps": 3, "eval_loss": 2.5, "epoch": 0.2}]
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "status.json").write_text(json.dumps({"state": "failed", "error": "boom"}))
    run = read_run(tmp_path)
    assert run.format == "tuneboard" and run.state == "failed"
    assert math.isnan(run.train[1].loss) and math.isnan(run.train[1].grad_norm)
    assert run.eval[0].loss == 2.5


def test_find_runs_lists_run_folders_not_checkpoints(tmp_path):
    a = tmp_path / "m" / "lora" / "a"
    b = tmp_path / "m" / "full" / "b"
    for d in (a, b):
        (d / "checkpoint-2").mkdir(parents=True)
        (d / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (a / "trainer_log.jsonl").write_text("")
    (b / "trainer_state.json").write_text(json.dumps(_hf_state()))
    (tmp_path / "m" / "lora" / "empty").mkdir()
    assert sorted(find_runs(tmp_path)) == sorted([a, b])


def test_bad_paths_are_clear_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="no such folder"):
        read_run(tmp_path / "missing")
    with pytest.raises(UserError, match="no training log"):
        read_run(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="not a run folder"):
        read_run(tmp_path / "notes.txt")
    assert cli(["doctor", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err
    assert cli(["doctor", str(tmp_path), "--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err
    assert cli(["doctor", str(tmp_path), "learning_rate=1"]) == 2
    assert "overrides go with --estimate" in capsys.readouterr().err


def test_doctor_help(capsys):
    assert cli(["doctor", "--help"]) == 0
    assert "--estimate" in capsys.readouterr().out

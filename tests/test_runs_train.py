"""engine.runs with the real trainer on the tiny model: a run spawned like the web UI does finishes with
progress, metrics and an adapter; an aborted run leaves no process and a checkpoint that loads."""
from __future__ import annotations

import psutil

from engine import paths, runs
from helpers import wait_for


def values(tiny_model, data_dir, out, **kw):
    v = {"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": ["identity"],
         "dataset_dir": str(data_dir), "cutoff_len": 64, "max_samples": 16, "per_device_train_batch_size": 2,
         "logging_steps": 1, "learning_rate": 1e-3, "output_dir": str(out), "identity_name": "Nova"}
    v.update(kw)
    return v


def test_spawned_training_run_finishes_with_progress_and_results(tiny_model, data_dir, tmp_path, saves):
    out = tmp_path / "run"
    run = runs.spawn("train", values(tiny_model, data_dir, out, max_steps=6), saves)
    seen = set()

    def done():
        st = run.status()
        if st["state"] == "running":
            seen.add(run.progress()["step"])
        return st["state"] != "running"

    wait_for(done, 300, "the run to end")
    st = run.status()
    assert st["state"] == "finished", run.tail()
    assert run.progress()["step"] == 6 and run.progress()["total_steps"] == 6
    assert [r["step"] for r in run.log_records() if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert run.results()["total_steps"] == 6 and "train_loss" in run.results()
    assert run.adapter_path() == str(out)
    assert "final metrics" in run.tail()
    assert run.meta["dataset"] == ["identity"] and run.meta["finetuning_type"] == "lora"


def test_aborted_run_leaves_no_process_and_a_loadable_checkpoint(tiny_model, data_dir, tmp_path, saves):
    out = paths.default_output_dir(str(tiny_model), "lora", "long", saves)
    run = runs.spawn("train", values(tiny_model, data_dir, out, max_steps=5000, save_steps=3), saves)
    wait_for(lambda: run.progress()["step"] >= 4 or run.status()["state"] != "running", 300, "step 4")
    assert run.status()["state"] == "running", run.tail()
    pids = {p.pid for p in run.processes()}
    assert run.abort() is True
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    wait_for(lambda: run.status()["state"] != "running", 30, "the record to settle")
    assert run.status()["state"] == "aborted"
    ckpts = runs.checkpoints(out)
    assert ckpts, run.tail()
    # the trainer saved at the step it stopped on; the checkpoint loads on its base
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), str(ckpts[-1]))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # trained, not the zero init
    # the UI's picker lists the run and its checkpoints; the output dir offers resume
    labels = [label for label, _ in runs.adapter_choices(saves, str(tiny_model), "lora")]
    assert f"long/{ckpts[-1].name}" in labels
    assert runs.inspect_output_dir(out)["last_checkpoint"] == str(ckpts[-1])
    # resuming from it continues the same run
    again = runs.spawn("train", values(tiny_model, data_dir, out, max_steps=runs.rundir.checkpoint_step(ckpts[-1]) + 2,
                                       save_steps=3, resume_from_checkpoint="true"), saves)
    wait_for(lambda: again.status()["state"] != "running", 300, "the resumed run")
    assert again.status()["state"] == "finished", again.tail()
    steps = [r["step"] for r in again.log_records() if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == runs.rundir.checkpoint_step(ckpts[-1]) + 2

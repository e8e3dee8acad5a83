"""Training workflow on the tiny model: run-dir contents, methods, stages, resume, refusals, bf16 weights."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.cli import main as cli
from engine.config import load_config
from engine.errors import ConfigError
from engine.train import bf16_weights, rundir, workflow
from engine.train.workflow import run


def _alpaca_rows(n=24):
    rows = []
    for i in range(n):
        a, b = i % 7, (i * 3) % 11
        rows.append({"instruction": f"What is {a} plus {b}?", "input": "", "output": f"{a} plus {b} is {a + b}."})
    return rows


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    (d / "arith.json").write_text(json.dumps(_alpaca_rows()), encoding="utf-8")
    (d / "text.jsonl").write_text("".join(json.dumps({"text": f"Paragraph {i}: the river runs to the sea and "
                                                               f"the sea returns as rain, year {1900 + i}."}) + "\n"
                                          for i in range(24)), encoding="utf-8")
    pairs = [{"instruction": f"Say hello to person {i}.", "input": "",
              "chosen": f"Hello, person {i}! Nice to meet you.", "rejected": "No."} for i in range(16)]
    (d / "pairs.json").write_text(json.dumps(pairs), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({
        "arith": {"file_name": "arith.json"},
        "text": {"file_name": "text.jsonl", "columns": {"prompt": "text"}},
        "pairs": {"file_name": "pairs.json", "ranking": True,
                  "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
    }), encoding="utf-8")
    return d


def _cfg(tiny_model, tiny_data, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), template="chatml", dataset="arith", dataset_dir=str(tiny_data),
                cutoff_len=64, per_device_train_batch_size=4, max_steps=6, learning_rate=1e-3, logging_steps=1,
                save_steps=3, output_dir=str(out), seed=1)
    base.update(kw)
    return load_config(None, {k: str(v) for k, v in base.items()})


def test_lora_sft_writes_the_run_dir(tiny_model, tiny_data, tmp_path):
    out = tmp_path / "run"
    metrics = run(_cfg(tiny_model, tiny_data, out, val_size=0.25, eval_steps=3))
    assert rundir.read_status(out)["state"] == "finished"
    log = rundir.read_log(out)
    train_rows = [r for r in log if "loss" in r]
    eval_rows = [r for r in log if "eval_loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["total_steps"] == 6 and r["learning_rate"] > 0 for r in train_rows)
    assert [r["step"] for r in eval_rows] == [3, 6]
    assert train_rows[-1]["tokens_seen"] > 0 and train_rows[-1]["tokens_per_second"] > 0
    for f in ("adapter_config.json", "adapter_model.safetensors", "training_args.yaml", "all_results.json",
              "dataset_stats.json", "training_loss.png", "training_eval_loss.png", "running.log",
              "tokenizer_config.json"):
        assert (out / f).exists(), f
    assert [c.name for c in rundir.checkpoints(out)] == ["checkpoint-3", "checkpoint-6"]
    saved = load_config(out / "training_args.yaml")
    assert saved.learning_rate == 1e-3 and saved.dataset == ["arith"]
    assert metrics["total_steps"] == 6 and "eval_loss" in metrics


def test_output_dir_of_another_run_is_refused_then_overwritten(tiny_model, tiny_data, tmp_path):
    out = tmp_path / "run"
    run(_cfg(tiny_model, tiny_data, out, max_steps=2))
    before = (out / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ConfigError) as e:
        run(_cfg(tiny_model, tiny_data, out, max_steps=2))
    assert e.value.field == "output_dir" and "already holds another run" in str(e.value)
    assert (out / "adapter_model.safetensors").read_bytes() == before  # nothing lost
    run(_cfg(tiny_model, tiny_data, out, max_steps=3, overwrite_output_dir="true", save_steps=10))
    assert [r["step"] for r in rundir.read_log(out) if "loss" in r] == [1, 2, 3]


def test_resume_continues_with_the_same_schedule(tiny_model, tiny_data, tmp_path):
    ref = tmp_path / "ref"
    run(_cfg(tiny_model, tiny_data, ref))
    ref_log = {r["step"]: r for r in rundir.read_log(ref) if "loss" in r}
    # simulate a run that died after checkpoint-3: later checkpoint and final files gone, log ran to step 5
    crashed = tmp_path / "crashed"
    shutil.copytree(ref, crashed)
    shutil.rmtree(crashed / "checkpoint-6")
    for f in ("adapter_model.safetensors", "adapter_config.json", "all_results.json"):
        (crashed / f).unlink()
    rows = [r for r in rundir.read_log(crashed) if r["step"] <= 5]
    (crashed / rundir.LOG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (crashed / "checkpoint-3" / rundir.COMPLETE).unlink()  # also valid without our marker
    with pytest.raises(ConfigError, match="resume_from_checkpoint"):
        run(_cfg(tiny_model, tiny_data, crashed))
    run(_cfg(tiny_model, tiny_data, crashed, resume_from_checkpoint="true"))
    log = [r for r in rundir.read_log(crashed) if "loss" in r]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]  # no gap, no duplicate
    for r in log:
        assert r["learning_rate"] == pytest.approx(ref_log[r["step"]]["learning_rate"])
        assert r["loss"] == pytest.approx(ref_log[r["step"]]["loss"], rel=1e-3)


def test_the_last_checkpoint_is_written_after_the_training_loop(tiny_model, tiny_data, tmp_path, monkeypatch):
    """train_runtime times the loop: the last step's checkpoint (a full fine-tune's weights and optimizer state) is
    written right after it, complete and resumable as the Trainer's own; one along the way is written inside."""
    import transformers
    saves, inside = [], []
    train, save = transformers.Trainer.train, transformers.Trainer._save_checkpoint

    def in_train(self, *a, **k):
        inside.append(True)
        try:
            return train(self, *a, **k)
        finally:
            inside.pop()

    def recorded(self, *a, **k):
        saves.append((self.state.global_step, bool(inside)))
        return save(self, *a, **k)
    monkeypatch.setattr(transformers.Trainer, "train", in_train)
    monkeypatch.setattr(transformers.Trainer, "_save_checkpoint", recorded)
    out = tmp_path / "run"
    run(_cfg(tiny_model, tiny_data, out, max_steps=5, save_steps=3))
    assert saves == [(3, True), (5, False)]
    last = out / "checkpoint-5"
    assert (last / rundir.COMPLETE).read_text() == "5" and (last / "optimizer.pt").is_file()
    assert json.loads((last / "trainer_state.json").read_text())["global_step"] == 5
    assert rundir.read_status(out)["state"] == "finished"
    # with load_best_model_at_end the Trainer reads the last checkpoint inside train(): saved there
    saves.clear()
    run(_cfg(tiny_model, tiny_data, tmp_path / "best", max_steps=4, val_size=0.25, eval_steps=2, save_steps=2,
             load_best_model_at_end="true"))
    assert saves == [(2, True), (4, True)]


@pytest.mark.parametrize("method,extra", [("freeze", {"freeze_trainable_layers": 1}), ("full", {})])
def test_freeze_and_full(tiny_model, tiny_data, tmp_path, method, extra):
    out = tmp_path / method
    run(_cfg(tiny_model, tiny_data, out, finetuning_type=method, max_steps=3, save_steps=10, **extra))
    assert rundir.read_status(out)["state"] == "finished"
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM
    trained = AutoModelForCausalLM.from_pretrained(out).state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    changed = {k for k in base if not (trained[k] == base[k]).all()}
    if method == "freeze":
        assert changed and all(".layers.1." in k for k in changed)
    else:
        assert any(".layers.0." in k for k in changed) and any(".layers.1." in k for k in changed)


def test_pretraining_stage(tiny_model, tiny_data, tmp_path):
    out = tmp_path / "pt"
    run(_cfg(tiny_model, tiny_data, out, stage="pt", dataset="text", max_steps=4, save_steps=10))
    log = [r for r in rundir.read_log(out) if "loss" in r]
    assert len(log) == 4 and log[-1]["loss"] < log[0]["loss"]


def test_dpo_stage(tiny_model, tiny_data, tmp_path):
    out = tmp_path / "dpo"
    run(_cfg(tiny_model, tiny_data, out, stage="dpo", dataset="pairs", max_steps=4, save_steps=10,
             per_device_train_batch_size=2, learning_rate=5e-3))
    log = [r for r in rundir.read_log(out) if "loss" in r]
    assert len(log) == 4 and all("rewards/margins" in r for r in log)
    assert (out / "adapter_config.json").exists()


def test_report_to_tensorboard_writes_event_files(tiny_model, tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "tb"
    run(_cfg(tiny_model, tiny_data, out, max_steps=3, save_steps=10, report_to="tensorboard"))
    events = sorted((out / "runs").glob("*/events.out.tfevents.*"))
    assert events, sorted(p.name for p in out.iterdir())
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]
    assert load_config(out / rundir.CONFIG).report_to == "tensorboard"
    # overwriting the run leaves only the new run's event file
    run(_cfg(tiny_model, tiny_data, out, max_steps=2, save_steps=10, report_to="tensorboard",
             overwrite_output_dir=True))
    events = sorted(out.glob("runs/*/events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]


def _cli_error(capsys, *argv) -> str:
    rc = cli(["train", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    return err


def test_bad_input_messages(tiny_model, tiny_data, tmp_path, capsys):
    base = [f"model_name_or_path={tiny_model}", f"dataset_dir={tiny_data}", "template=chatml",
            f"output_dir={tmp_path / 'x'}", "max_steps=1"]
    err = _cli_error(capsys, *base, "dataset=nosuch")
    assert "nosuch" in err and "arith" in err  # the known datasets are listed
    assert "does/not/exist" in _cli_error(capsys, *base[1:], "dataset=arith", "model_name_or_path=does/not/exist")
    assert "learning_rate" in _cli_error(capsys, *base, "dataset=arith", "learning_rate=-1")
    err = _cli_error(capsys, *base, "dataset=arith", "cutoff_len=4", "template=chatml")
    assert "cutoff_len" in err
    assert "--bogus: unknown option" in _cli_error(capsys, *base, "dataset=arith", "--bogus")


# ---------------------------------------------------------------- engine.train.bf16_weights
# A full fine-tune under bf16 autocast with its Linear weights stored in bf16 and fp32 masters in the optimizer
# learns exactly what autocast over fp32 weights learns, and saves and resumes fp32.
@pytest.fixture
def bf16_cpu(monkeypatch):
    """bf16 autocast on any CPU (emulated where it has no native bf16: slower, the same arithmetic)."""
    real = workflow.device_info
    monkeypatch.setattr(workflow, "device_info", lambda: {**real(), "bf16": True})


@pytest.fixture
def seen(monkeypatch):
    """What the conversion did in each run: the number of bf16 weights, and their dtype at each optimizer step."""
    record = {"converted": [], "step_dtypes": set()}
    begin, stepped = bf16_weights.Bf16Weights.on_train_begin, bf16_weights.Bf16Weights._stepped

    def on_train_begin(self, *a, **k):
        r = begin(self, *a, **k)
        record["converted"].append(len(self.trained))
        return r

    def _stepped(self, *a, **k):
        record["step_dtypes"] |= {m.weight.dtype for m, _, _ in self.trained}
        return stepped(self, *a, **k)
    monkeypatch.setattr(bf16_weights.Bf16Weights, "on_train_begin", on_train_begin)
    monkeypatch.setattr(bf16_weights.Bf16Weights, "_stepped", _stepped)
    return record


def _losses(out):
    return [r["loss"] for r in rundir.read_log(out) if "loss" in r]


def test_bf16_weights_learn_what_autocast_over_fp32_weights_learns(tiny_model, tiny_data, tmp_path, bf16_cpu,
                                                                   seen, monkeypatch):
    # no clipping: its norm is summed from bf16 gradients here, from their fp32 widening there (a rounding apart)
    kw = dict(finetuning_type="full", precision="bf16", max_steps=4, save_steps=2, max_grad_norm=0)
    run(_cfg(tiny_model, tiny_data, tmp_path / "bf16", **kw))
    assert seen["converted"] == [14] and seen["step_dtypes"] == {torch.bfloat16}  # 2 layers x 7 Linear weights
    with monkeypatch.context() as m:
        m.setattr(bf16_weights, "attach", lambda trainer: None)
        run(_cfg(tiny_model, tiny_data, tmp_path / "fp32", **kw))
    assert seen["converted"] == [14]
    assert _losses(tmp_path / "bf16") == _losses(tmp_path / "fp32")
    for f in ("checkpoint-2/model.safetensors", "model.safetensors"):
        a, b = load_file(tmp_path / "bf16" / f), load_file(tmp_path / "fp32" / f)
        assert a.keys() == b.keys() and all(t.dtype == torch.float32 for t in a.values())
        assert all(torch.equal(a[k], b[k]) for k in a), f
    # the masters were trained, not just the bf16 copies: they differ from their bf16 rounding
    w = a["model.layers.0.mlp.up_proj.weight"]
    assert not torch.equal(w, w.to(torch.bfloat16).float())


def test_a_resumed_run_continues_from_the_fp32_masters(tiny_model, tiny_data, tmp_path, bf16_cpu, seen):
    kw = dict(finetuning_type="full", precision="bf16", max_steps=4, save_steps=2)
    ref = tmp_path / "ref"
    run(_cfg(tiny_model, tiny_data, ref, **kw))
    crashed = tmp_path / "crashed"  # died after checkpoint-2
    shutil.copytree(ref / "checkpoint-2", crashed / "checkpoint-2")
    shutil.copy(ref / rundir.LOG, crashed / rundir.LOG)
    run(_cfg(tiny_model, tiny_data, crashed, resume_from_checkpoint="true", **kw))
    assert seen["converted"] == [14, 14]
    a, b = load_file(ref / "model.safetensors"), load_file(crashed / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_it_stays_off_where_it_would_not_be_exact(tiny_model, tiny_data, tmp_path, bf16_cpu, seen):
    base = dict(finetuning_type="full", precision="bf16", max_steps=2, save_steps=10)
    run(_cfg(tiny_model, tiny_data, tmp_path / "accumulating", gradient_accumulation_steps=2, **base))
    run(_cfg(tiny_model, tiny_data, tmp_path / "lora", precision="bf16", max_steps=2, save_steps=10))
    run(_cfg(tiny_model, tiny_data, tmp_path / "fp32", finetuning_type="full", precision="fp32", max_steps=2,
             save_steps=10))
    assert seen["converted"] == [0]  # the LoRA run's callback converts nothing; the other two have none


def test_a_full_dpo_run_trains_bf16_weights_and_saves_its_masters(tiny_model, tiny_data, tmp_path, bf16_cpu, seen):
    out = tmp_path / "dpo"
    run(_cfg(tiny_model, tiny_data, out, stage="dpo", dataset="pairs", finetuning_type="full", precision="bf16",
             max_steps=2, save_steps=10, per_device_train_batch_size=2, learning_rate=5e-3))
    assert seen["converted"] == [14] and seen["step_dtypes"] == {torch.bfloat16}
    trained, base = load_file(out / "model.safetensors"), load_file(tiny_model / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in trained.values())
    w = trained["model.layers.1.self_attn.o_proj.weight"]
    assert not torch.equal(w, base["model.layers.1.self_attn.o_proj.weight"])
    assert not torch.equal(w, w.to(torch.bfloat16).float())  # the fp32 master, not its bf16 copy

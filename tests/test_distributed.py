"""Multi-process training: `tuneboard train nproc_per_node=2` really runs two gloo processes on CPU and trains
like one process on the same global batch; the multi-node fields reach the preview and the torchrun command;
the DeepSpeed recipes are complete. DeepSpeed itself needs a GPU: bench/gpu_check.py runs it where one is lent.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import malloc
from engine.config import load_config, to_command
from engine.errors import ConfigError
from engine.train import launcher, rundir
from engine.train.workflow import run
from helpers import free_port
from kits.runs import write_arith

ROOT = Path(__file__).resolve().parent.parent
DS = ROOT / "examples" / "deepspeed"


@pytest.fixture(scope="module")
def arith(tmp_path_factory) -> Path:
    return write_arith(tmp_path_factory.mktemp("ddp-data"), 64)


def _train_rows(out: Path) -> list[dict]:
    return [r for r in rundir.read_log(out) if "loss" in r]


def test_two_gloo_processes_train_like_one_on_the_same_global_batch(tiny_model, arith, tmp_path):
    common = {"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": "arith",
              "dataset_dir": str(arith), "cutoff_len": "64", "max_steps": "4", "learning_rate": "1e-3",
              "logging_steps": "1", "save_steps": "4", "plot_loss": "false", "seed": "7"}
    one = tmp_path / "one"
    run(load_config(None, {**common, "per_device_train_batch_size": "4", "output_dir": str(one)}))

    two = tmp_path / "two"
    argv = [f"{k}={v}" for k, v in common.items()] + [
        "per_device_train_batch_size=2", "nproc_per_node=2", f"master_port={free_port()}", f"output_dir={two}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, "-m", "engine", "train", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "torch.distributed.run" in out and "--nproc_per_node=2" in out  # it really went through torchrun
    log = (two / rundir.RUNNING_LOG).read_text()
    assert "data parallel: 2 processes, backend gloo, global batch 4" in log
    # a command line re-executes itself with tcmalloc where the system has it (engine.malloc)
    assert ("memory allocator: tcmalloc (" if malloc.library() else "memory allocator: the system's") in log

    a, b = _train_rows(one), _train_rows(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4]
    assert all(r["total_steps"] == 4 for r in a + b)
    assert rundir.read_status(two)["state"] == "finished" and rundir.read_status(two)["total_steps"] == 4
    # same samples per optimiser step: the epoch counter advances alike (2 x 2 = 4 per step)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-2), (x, y)
        assert y["learning_rate"] == pytest.approx(x["learning_rate"])
    # only rank 0 writes the run files: one log line per step, one checkpoint, one adapter
    assert len(b) == 4 and [c.name for c in rundir.checkpoints(two)] == ["checkpoint-4"]
    assert (two / "adapter_model.safetensors").is_file()
    assert json.loads((two / rundir.RESULTS).read_text())["total_steps"] == 4


@pytest.fixture(scope="module")
def untied_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with an LM head of its own (FSDP2 on CPU refuses tied embeddings, see engine.train.fsdp)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    dest = tmp_path_factory.mktemp("untied") / "m"
    model = AutoModelForCausalLM.from_pretrained(tiny_model, tie_word_embeddings=False)
    model.lm_head.weight.data = model.lm_head.weight.data.clone()
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(dest)
    return dest


@pytest.mark.parametrize("mode", ["full_shard"])
def test_fsdp2_two_gloo_processes_train_like_one_on_the_same_global_batch(mode, untied_model, arith, tmp_path):
    """fsdp=full_shard: FSDP2 (fully_shard through accelerate) over two gloo processes, each holding half of every
    weight, gradient and optimizer state, logs the losses one process logs on the same global batch."""
    common = {"model_name_or_path": str(untied_model), "template": "chatml", "dataset": "arith",
              "dataset_dir": str(arith), "cutoff_len": "64", "max_steps": "3", "learning_rate": "1e-3",
              "logging_steps": "1", "save_steps": "3", "plot_loss": "false", "seed": "7", "finetuning_type": "full",
              "precision": "fp32"}
    one = tmp_path / "one"
    run(load_config(None, {**common, "per_device_train_batch_size": "4", "output_dir": str(one)}))
    two = tmp_path / "two"
    argv = [f"{k}={v}" for k, v in common.items()] + [
        "per_device_train_batch_size=2", "nproc_per_node=2", f"fsdp={mode}", f"master_port={free_port()}",
        f"output_dir={two}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, "-m", "engine", "train", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    log = (two / rundir.RUNNING_LOG).read_text()
    assert "data parallel: 2 processes, backend gloo, global batch 4" in log and "FSDP2 full_shard" in log
    import re
    sharded = re.search(r"FSDP2: (\d+) of (\d+) parameter tensors sharded over 2 processes", log)
    assert sharded and int(sharded.group(1)) == int(sharded.group(2)) > 0, log[-2000:]
    a, b = _train_rows(one), _train_rows(two)
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-2), (x, y)
    # the saved model is whole (gathered from the shards), and loads like the one-process one
    from safetensors.torch import load_file
    w1, w2 = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert set(w1) == set(w2)
    for k in w1:
        assert w2[k].shape == w1[k].shape
        assert torch_allclose(w2[k], w1[k]), k


def torch_allclose(a, b) -> bool:
    import torch
    return bool(torch.allclose(a.float(), b.float(), rtol=1e-2, atol=1e-4))


def test_multinode_fields_reach_torchrun_and_the_preview(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    ov = {"dataset": "identity", "nproc_per_node": "4", "nnodes": "2", "node_rank": "1", "master_addr": "10.1.2.3",
          "master_port": "29555", "output_dir": "saves/x/lora/multi"}
    ns = load_config(None, ov)
    assert launcher.needs_torchrun(ns)
    cmd = launcher.torchrun_command(ns, None, [f"{k}={v}" for k, v in ov.items()])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    for flag in ("--nnodes=2", "--node_rank=1", "--nproc_per_node=4", "--master_addr=10.1.2.3",
                 "--master_port=29555"):
        assert flag in cmd
    assert cmd[cmd.index("-m", 3):][:3] == ["-m", "engine", "train"] and cmd[-1] == "output_dir=saves/x/lora/multi"
    preview = to_command(ns.values)
    for kv in ("nproc_per_node=4", "nnodes=2", "node_rank=1", "master_addr=10.1.2.3", "master_port=29555"):
        assert kv in preview.split()
    # inside a torchrun worker the command trains instead of launching again
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not launcher.needs_torchrun(ns)
    monkeypatch.delenv("LOCAL_RANK")
    assert not launcher.needs_torchrun(load_config(None, {"dataset": "identity"}))


def test_ui_preview_shows_deepspeed_and_node_fields(tmp_path, monkeypatch):
    from webui.app import create_ui
    monkeypatch.chdir(ROOT)  # the shipped recipes are offered as paths from the repo root
    monkeypatch.setenv("TUNEBOARD_SAVES_DIR", str(tmp_path / "saves"))
    demo = create_ui("en", saves=str(tmp_path / "saves"))
    page = demo.page
    ds = page.w("train", "deepspeed")
    assert str(DS / "ds_z3_offload_config.json") in {v for _, v in ds.choices} or \
        "examples/deepspeed/ds_z3_offload_config.json" in {v for _, v in ds.choices}  # picked from a list
    fn = next(f for f in demo.fns.values() if any(t == page.c("train.preview")._id for t, _ in f.targets))
    data = {c: getattr(c, "value", None) for c in fn.inputs}
    data.update({page.w("train", "dataset"): ["identity"], page.w("train", "output_dir"): "multi",
                 ds: "examples/deepspeed/ds_z3_offload_config.json", page.w("train", "nnodes"): 2,
                 page.w("train", "node_rank"): 1, page.w("train", "master_addr"): "10.0.0.7",
                 page.w("train", "master_port"): 29600, page.w("train", "nproc_per_node"): 8})
    cmd = fn.fn(data)[page.c("train.command")]
    cmd = cmd["value"] if isinstance(cmd, dict) else cmd
    for kv in ("deepspeed=examples/deepspeed/ds_z3_offload_config.json", "nnodes=2", "node_rank=1",
               "master_addr=10.0.0.7", "master_port=29600", "nproc_per_node=8"):
        assert kv in cmd.split(), cmd


@pytest.mark.parametrize("name,stage,offload", [("ds_z2_config.json", 2, False), ("ds_z2_offload_config.json", 2, True),
                                                ("ds_z3_config.json", 3, False), ("ds_z3_offload_config.json", 3, True)])
def test_deepspeed_recipes(name, stage, offload, monkeypatch):
    cfg = json.loads((DS / name).read_text())
    zero = cfg["zero_optimization"]
    assert zero["stage"] == stage
    assert (zero.get("offload_optimizer", {}).get("device") == "cpu") is offload
    if stage == 3:
        assert (zero.get("offload_param", {}).get("device") == "cpu") is offload
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True  # the saved adapter/model is whole
    # the Trainer fills these from our arguments, so one file fits every batch size and precision
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        assert cfg[key] == "auto"
    assert cfg["bf16"]["enabled"] == cfg["fp16"]["enabled"] == "auto"
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    ns = load_config(None, {"dataset": "identity", "deepspeed": str(DS / name)})
    assert launcher.needs_torchrun(ns)  # DeepSpeed always starts under torchrun, even on one GPU


def test_missing_deepspeed_config_is_named():
    with pytest.raises(ConfigError) as e:
        load_config(None, {"dataset": "identity", "deepspeed": "examples/deepspeed/ds_z9.json"})
    assert e.value.field == "deepspeed" and "examples/deepspeed" in str(e.value)


def test_deepspeed_without_cuda_is_refused_before_launching(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: bench/gpu_check.py runs DeepSpeed for real")
    from engine.cli import main as cli
    rc = cli(["train", "dataset=identity", f"deepspeed={DS / 'ds_z2_config.json'}", "max_steps=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "deepspeed: DeepSpeed needs CUDA GPUs" in err and "nproc_per_node" in err
    assert "Traceback" not in err and "torch.distributed.run" not in err


def test_fsdp_reaches_the_preview_torchrun_trainer_and_estimate(tiny_model, monkeypatch):
    """fsdp is a schema value: preview, torchrun launch, the Trainer's FSDP2 config, a memory figure sharded like
    ZeRO-3 (full_shard) / ZeRO-2 (shard_grad_op); and it is refused beside DeepSpeed or QLoRA."""
    from engine.insight import estimate as E
    from engine.train.workflow import fsdp_config
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    ns = load_config(None, {"dataset": "identity", "fsdp": "full_shard", "nproc_per_node": "2"})
    assert launcher.needs_torchrun(ns) and "fsdp=full_shard" in to_command(ns.values).split()
    assert fsdp_config(ns)["version"] == 2 and fsdp_config(ns)["reshard_after_forward"] is True
    assert fsdp_config(load_config(None, {"dataset": "identity", "fsdp": "shard_grad_op"}))["reshard_after_forward"] \
        is False
    values = {"model_name_or_path": str(tiny_model), "dataset": "identity", "finetuning_type": "full",
              "nproc_per_node": "2", "precision": "fp32"}
    plain = load_config(None, values)
    p = E.param_facts(plain)
    base = E.memory(plain, p, 64, "cpu")
    full = E.memory(load_config(None, {**values, "fsdp": "full_shard"}), p, 64, "cpu")
    grad_op = E.memory(load_config(None, {**values, "fsdp": "shard_grad_op"}), p, 64, "cpu")
    for part in ("weights", "gradients", "optimizer"):
        assert full["parts"][part] == base["parts"][part] // 2
    assert grad_op["parts"]["weights"] == base["parts"]["weights"] and full["sharded_by"] == "fsdp"
    with pytest.raises(ConfigError) as e:
        load_config(None, {"dataset": "identity", "fsdp": "full_shard", "deepspeed": str(DS / "ds_z2_config.json")})
    assert e.value.field == "fsdp"

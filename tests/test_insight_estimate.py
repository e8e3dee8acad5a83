"""Pre-flight estimate against real runs: the step count the Trainer ends up with, the tokens it sees, the
parameter counts peft / freeze produce, and (slow, bundled model) the memory estimate against the measured
peak RSS of fresh training processes. Plus the fit warning, ZeRO partitioning and the measured time."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.args import BY_NAME
from engine.cli import main as cli
from engine.config import load_config
from engine.insight import estimate as E
from engine.train import rundir
from engine.train.workflow import run as train

from kits.recipes import recipe, write_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("est") / "data")


@pytest.mark.parametrize("kw", [
    dict(per_device_train_batch_size=5, gradient_accumulation_steps=3, num_train_epochs=0.6),
    dict(per_device_train_batch_size=3, gradient_accumulation_steps=2, num_train_epochs=0.5, val_size=7),
    dict(per_device_train_batch_size=4, packing=True, num_train_epochs=0.5, gradient_accumulation_steps=2),
    dict(per_device_train_batch_size=8, num_train_epochs=1.0),
], ids=["ga3", "val_split", "packing", "one_epoch"])
def test_steps_and_tokens_equal_the_real_run(kw, tiny_model, data, tmp_path, one_thread):
    values = recipe(tiny_model, data, tmp_path / "run", learning_rate=1e-3, **kw)
    est = E.estimate(values=values)
    train(load_config(None, values))
    st = rundir.read_status(tmp_path / "run")
    assert est["steps"]["total_steps"] == st["total_steps"] == st["step"]
    stats = json.loads((tmp_path / "run" / rundir.STATS).read_text())
    assert est["samples"]["train_rows"] == stats["train_rows"] and est["samples"]["kept"] == stats["kept"]
    if kw.get("num_train_epochs") == 1.0:  # one whole epoch: the Trainer saw exactly the estimated tokens
        seen = [r["tokens_seen"] for r in rundir.read_log(tmp_path / "run") if "loss" in r][-1]
        assert est["tokens_per_epoch"] == seen


def test_trainable_parameter_counts_match_peft_and_freeze(tiny_model, data, tmp_path):
    from engine.models.loader import load_model
    from engine.train.methods import apply_method
    for kw in (dict(finetuning_type="lora", lora_rank=4), dict(finetuning_type="lora", lora_target="q_proj,v_proj"),
               dict(finetuning_type="lora", use_dora=True), dict(finetuning_type="freeze", freeze_trainable_layers=1),
               dict(finetuning_type="full")):
        ns = load_config(None, recipe(tiny_model, data, tmp_path / "x", **kw))
        p = E.param_facts(ns)
        model = apply_method(load_model(ns, trainable=True), ns)
        real = sum(x.numel() for x in model.parameters() if x.requires_grad)
        total = sum(x.numel() for x in model.parameters())
        assert (p["trainable"], p["total"]) == (real, total), kw


def test_counting_steps_over_devices():
    ns = load_config(None, {"dataset": "identity", "per_device_train_batch_size": "4", "nproc_per_node": "2",
                            "gradient_accumulation_steps": "2", "num_train_epochs": "3"})
    s = E.count_steps(50, ns)
    # 13 batches split over 2 processes -> 7 each -> 4 updates per epoch -> 12 steps; global batch 16
    assert (s["batches_per_epoch"], s["steps_per_epoch"], s["total_steps"], s["global_batch"]) == (7, 4, 12, 16)


def test_zero_partitions_and_offloads(bundled_model):
    base = {"dataset": "identity", "finetuning_type": "full", "nproc_per_node": "4"}
    ns0 = load_config(None, base)
    p = E.param_facts(ns0)
    m0 = E.memory(ns0, p, 100, "cuda")
    ns3 = load_config(None, {**base, "deepspeed": "examples/deepspeed/ds_z3_config.json"})
    m3 = E.memory(ns3, p, 100, "cuda")
    assert m3["zero_stage"] == 3
    assert m3["parts"]["weights"] == pytest.approx(m0["parts"]["weights"] / 4, rel=1e-6)
    assert m3["parts"]["gradients"] == pytest.approx(m0["parts"]["gradients"] / 4, rel=1e-6)
    assert m3["parts"]["activations"] == m0["parts"]["activations"]
    off = load_config(None, {**base, "deepspeed": "examples/deepspeed/ds_z3_offload_config.json"})
    mo = E.memory(off, p, 100, "cuda")
    assert mo["parts"]["optimizer"] == 0 and mo["offloaded_to_host"] > 0
    bf = E.memory(load_config(None, {"dataset": "identity", "bf16": "true"}), E.param_facts(
        load_config(None, {"dataset": "identity", "bf16": "true"})), 100, "cuda")
    assert bf["weights_dtype"] == "half"
    # on CUDA autocast halves the saved activations, except LoRA's, whose sums stay fp32 (engine.train.methods)
    for method in ("full", "lora"):
        half, wide = (load_config(None, {"dataset": "identity", "finetuning_type": method, **prec})
                      for prec in ({"bf16": "true"}, {"precision": "fp32"}))
        acts = [E.memory(n, E.param_facts(n), 100, "cuda")["parts"]["activations"] for n in (half, wide)]
        assert acts[0] < 0.6 * acts[1] if method == "full" else acts[0] == acts[1], method


def test_warns_when_it_will_not_fit(tiny_model, data, tmp_path):
    values = recipe(tiny_model, data, tmp_path / "run", per_device_train_batch_size=8, precision="auto")
    small = {"device": "cuda", "name": "tiny gpu", "total": 256 * 1024 ** 2, "available": 200 * 1024 ** 2, "count": 1}
    rep = E.estimate(values=values, device=small)
    assert rep["fits"] is False and rep["memory"]["total"] > 0.9 * small["total"]
    changes = {}
    for a in rep["advice"]:
        assert set(a["change"]) <= set(BY_NAME)
        changes.update(a["change"])
    assert changes["per_device_train_batch_size"] == 4 and changes["gradient_accumulation_steps"] == 2
    # precision=auto computes in fp16 on a GPU without bf16 (and bf16 where it has it): no advice to switch
    assert changes["finetuning_type"] == "lora" and "bf16" not in changes
    assert rep["precision"]["precision"] == "fp16" and rep["memory"]["dtype"] == "fp16"
    assert "Compute type: fp16" in E.render(rep) and "计算类型: fp16" in E.render(rep, "zh")
    assert "DOES NOT FIT" in E.render(rep) and "放不下" in E.render(rep, "zh")
    big = dict(small, total=64 * 1024 ** 3)
    assert E.estimate(values=values, device=big)["fits"] is True


def test_measured_time_and_cli(tiny_model, data, tmp_path, capsys):
    cfg = tmp_path / "recipe.yaml"
    import yaml
    cfg.write_text(yaml.safe_dump(recipe(tiny_model, data, tmp_path / "run", max_steps=20, learning_rate=1e-3)))
    assert cli(["doctor", "--estimate", str(cfg), "--measure", "3", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    t = rep["time"]
    assert t["steps"] == 3 and t["seconds_per_step"] > 0
    assert t["train_seconds"] == pytest.approx(t["seconds_per_step"] * 20, rel=0.01)
    assert t["total_seconds"] >= t["train_seconds"]
    assert t["peak_rss"] and t["peak_rss"] > 0
    assert not (tmp_path / "run").exists()  # measuring wrote only into a temporary folder
    assert cli(["doctor", "--estimate", str(cfg), "per_device_train_batch_size=2"]) == 0
    text = capsys.readouterr().out
    assert "Steps: 20" in text and "activations" in text


def _peak_rss_mb(values: dict) -> float:
    """Peak RSS of a fresh process that trains with these values (VmHWM of that process)."""
    code = ("import json, resource, sys; sys.path.insert(0, %r)\n"
            "from engine.config import load_config\nfrom engine.train.workflow import run\n"
            "run(load_config(None, json.loads(sys.argv[1])))\n"
            "from engine.utils import peak_rss_bytes\n"
            "print('PEAK_KB', peak_rss_bytes() // 1024)") % ROOT
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(values)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PEAK_KB")][-1]
    return int(line.split()[1]) / 1024


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_memory_estimate_within_30_percent_of_measured_peak(method, bundled_model, tmp_path):
    values = {"model_name_or_path": str(bundled_model), "dataset": "identity", "cutoff_len": "128",
              "per_device_train_batch_size": "4", "max_steps": "3", "finetuning_type": method,
              "output_dir": str(tmp_path / "run"), "save_steps": "100", "plot_loss": "false", "logging_steps": "1"}
    est = E.estimate(values=values)["memory"]["total"] / 1024 ** 2
    measured = _peak_rss_mb(values)
    print(f"{method}: estimate {est:.0f} MB, measured peak RSS {measured:.0f} MB ({(est / measured - 1):+.1%})")
    assert abs(est - measured) / measured < 0.30

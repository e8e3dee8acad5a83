"""The run doctor on real, labelled runs of the tiny model (full fine-tuning: the random 2-layer model learns
fast enough to show each behaviour in a few dozen steps), the training options it recommends (early stopping,
keep the best checkpoint), its CLI, and the comparison of those runs.

Recipes and what they must be judged:
  overfitting    4 training samples, constant lr 1e-2, 40 steps, eval every 4 -> eval loss turns up
  diverging      learning rate 1.0                                            -> loss blows up
  not_learning   learning rate 1e-9                                           -> flat loss
  cut_all        cutoff_len 16 on answers that never fit                      -> the run fails on its data
  cut_most       cutoff_len 16, three quarters of the samples longer          -> trains on fragments
  duplicates     30 copies of one record among 36                             -> data problem
  sensible       lr 3e-3, 1.5 epochs with gradient accumulation               -> healthy or under-trained
  capacity       only one down_proj matrix trainable, constant lr             -> both losses plateau high
  eval_default   val_size set, eval_steps left alone, 20 steps               -> evaluated every 5 steps
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.args import BY_NAME
from engine.cli import main as cli
from engine.config import load_config
from engine.insight import compare as cmp
from engine.insight.doctor import render
from engine.insight.verdict import VERDICTS, diagnose
from engine.train import best, rundir
from engine.train.workflow import run as train
from engine.errors import UserError
from kits.recipes import RECIPES, recipe, write_data


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, tiny_model, one_thread):
    """labelled(name) -> the output dir of that recipe's real run (each run once per module)."""
    root = tmp_path_factory.mktemp("labelled")
    data = write_data(root / "data")
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            out = root / "runs" / name
            try:
                train(load_config(None, recipe(tiny_model, data, out, **RECIPES[name])))
            except UserError:
                assert name == "cut_all", f"{name} failed: {rundir.read_status(out)}"
            done[name] = out
        return done[name]
    get.data = data
    get.root = root
    return get


def check_advice(report: dict, out: Path) -> dict:
    """Every change names real arguments, really changes the run's config, and the changed config is valid
    (what the UI's one-click apply relies on). Returns {arg: value} over all advice."""
    cfg = load_config(out / rundir.CONFIG, {}, finalize=False).values if (out / rundir.CONFIG).is_file() else {}
    merged = {}
    for a in report["advice"]:
        assert a["why"] and isinstance(a["change"], dict)
        for k, v in a["change"].items():
            assert k in BY_NAME, k
            assert cfg.get(k) != v, (k, v)
        merged.update(a["change"])
    if cfg:
        values = {k: v for k, v in cfg.items() if not k.startswith("_")}
        values.update(merged)
        if values.get("eval_strategy") == "no" and (values.get("val_size") or 0) > 0:
            values["eval_strategy"] = None  # adding an eval set turns evaluation back on, as the UI does
        load_config(None, values)
    return merged


# ---------------------------------------------------------------- verdicts
def test_overfitting_names_the_best_checkpoint_and_shorter_training(labelled):
    out = labelled("overfitting")
    rep = diagnose(out)
    assert rep["verdict"] == "overfitting", render(rep)
    ev = rep["evidence"]
    log = rundir.read_log(out)
    evals = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r]
    best_step, best = min(evals, key=lambda x: x[1])
    assert ev["eval_best_step"] == best_step and ev["eval_best"] == pytest.approx(best, rel=1e-3)
    assert ev["eval_last"] > ev["eval_best"] and ev["evals_after_best"] >= 2
    assert ev["train_drop_since_best_pct"] > 5
    # the best checkpoint survived save_total_limit=2 because eval_loss is the Trainer's best-model metric
    assert rep["best_checkpoint"] == str(out / f"checkpoint-{best_step}")
    assert Path(rep["best_checkpoint"]).is_dir()
    change = check_advice(rep, out)
    assert change["load_best_model_at_end"] is True and change["early_stopping_patience"] >= 1
    assert change["max_steps"] == best_step
    assert change["learning_rate"] == pytest.approx(5e-3)
    assert change["finetuning_type"] == "lora"
    assert change["max_samples"] is None  # the run capped its data


def test_diverging(labelled):
    out = labelled("diverging")
    rep = diagnose(out)
    assert rep["verdict"] == "diverging", render(rep)
    ev = rep["evidence"]
    assert ev["loss_max_smoothed"] > 2 * ev["loss_first"] or ev["loss_end"] > 1.1 * ev["loss_first"]
    change = check_advice(rep, out)
    assert change["learning_rate"] == pytest.approx(0.1)
    assert change["warmup_ratio"] == 0.1


def test_not_learning(labelled):
    out = labelled("not_learning")
    rep = diagnose(out)
    assert rep["verdict"] == "not_learning", render(rep)
    assert abs(rep["evidence"]["loss_drop_pct"]) < 2
    change = check_advice(rep, out)
    assert change["learning_rate"] >= 1e-5
    assert "check_masking" in [a.get("key") for a in rep["advice"]] or any("preview" in a["why"] for a in rep["advice"])


def test_cutoff_that_cuts_every_sample_fails_and_is_a_data_problem(labelled):
    out = labelled("cut_all")
    assert rundir.read_status(out)["state"] == "failed"
    rep = diagnose(out)
    assert rep["verdict"] == "data_problem", render(rep)
    ev = rep["evidence"]
    assert ev["cutoff_len"] == 16 and ev["truncated_pct"] == 100.0 and ev["max_len"] > 16
    change = check_advice(rep, out)
    assert change["cutoff_len"] >= ev["max_len"]


def test_cutoff_that_cuts_most_samples_is_a_data_problem(labelled):
    out = labelled("cut_most")
    stats = json.loads((out / rundir.STATS).read_text())
    rep = diagnose(out)
    assert rep["verdict"] == "data_problem", render(rep)
    assert rep["evidence"]["truncated"] == stats["truncated"] == 24
    assert rep["evidence"]["truncated_pct"] == pytest.approx(75.0)
    assert check_advice(rep, out)["cutoff_len"] >= stats["max_len"]


def test_mostly_duplicated_data_is_a_data_problem(labelled):
    out = labelled("duplicates")
    rep = diagnose(out)
    assert rep["verdict"] == "data_problem" and rep["reason"] == "dup_most", render(rep)
    assert rep["evidence"]["duplicates"] == 29 and rep["evidence"]["duplicates_pct"] == pytest.approx(100 * 29 / 36,
                                                                                                       rel=1e-3)
    assert any("duplicate" in a["why"] for a in rep["advice"])
    check_advice(rep, out)
    assert "some_dups" in [n["key"] for n in diagnose(labelled("cut_most"))["notes"]]  # 6 of 32 repeated: a note


def test_sensible_recipe_is_healthy_or_undertrained(labelled):
    out = labelled("sensible")
    rep = diagnose(out)
    assert rep["verdict"] in ("healthy", "undertrained"), render(rep)
    change = check_advice(rep, out)
    if rep["verdict"] == "undertrained":
        assert change["num_train_epochs"] == 3.0  # twice the 1.5 epochs
    assert rep["best_checkpoint"] is not None


def test_capacity_limit(labelled):
    out = labelled("capacity")
    rep = diagnose(out)
    assert rep["verdict"] == "capacity_limit", render(rep)
    ev = rep["evidence"]
    assert ev["loss_end"] > 1.0 and ev["recent_lr_ratio"] == 1.0 and ev["eval_recent_range_pct"] < 2
    change = check_advice(rep, out)
    assert change["freeze_trainable_layers"] == 2 and change["freeze_trainable_modules"] == ["all"]


def test_hf_reader_gives_the_same_verdict_on_the_same_run(labelled, tmp_path):
    """The overfitting run's trainer_state.json alone, as another tool's output dir would hold it."""
    src = labelled("overfitting")
    dst = tmp_path / "hf_run"
    ck = rundir.last_checkpoint(src)
    shutil.copytree(ck, dst / ck.name)
    rep = diagnose(dst)
    assert rep["format"] == "hf" and rep["verdict"] == "overfitting"
    assert rep["evidence"]["eval_best_step"] == diagnose(src)["evidence"]["eval_best_step"]


def test_an_eval_set_is_evaluated_along_the_run_by_default(labelled):
    """Issue 20 item 12: eval_steps left empty evaluates along the run (not at save_steps=100, which a 20-step run
    never reaches), and the doctor does not ask for the val_size the run has. Issue 18: no more often than 15 % of
    the training compute allows. Here 80 rows trained in full (56 rows, 14 steps an epoch, 20 steps; a forward and a
    backward, about 3 forwards a row) against 8 eval rows affords 4 evaluations: every 5 steps, the last one the
    evaluation after training, which counts for the best model as the others do."""
    out = labelled("eval_default")
    evals = [(r["step"], r["eval_loss"]) for r in rundir.read_log(out) if "eval_loss" in r]
    assert [s for s, _ in evals] == [5, 10, 15, 20]
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_loss"] == evals[-1][1] and results["best_eval_loss"] == min(v for _, v in evals)
    rep = diagnose(out)
    assert rep["evidence"]["eval_points"] == 4 and "no_eval" not in [n["key"] for n in rep["notes"]]
    assert "add_eval" not in [a["key"] for a in rep["advice"]]


@pytest.mark.parametrize("case, every", [
    # a tenth of the rows held out, 3 epochs of full fine-tuning: evaluating every tenth costs ~4 %
    (dict(finetuning_type="full", train_rows=900, eval_rows=100, total=675, per_epoch=225), 68),
    # the same with LoRA (2 forwards a trained row): 8 evaluations fit in 15 %
    (dict(finetuning_type="lora", train_rows=900, eval_rows=100, total=675, per_epoch=225), 85),
    # issue 18's benchmark: a quarter held out, one epoch: once along the way, once after training
    (dict(finetuning_type="lora", train_rows=64, eval_rows=16, total=16, per_epoch=16), 8),
    # an eval set larger than the training still evaluates along the way
    (dict(finetuning_type="lora", train_rows=8, eval_rows=400, total=2, per_epoch=2), 1),
])
def test_the_eval_plan_keeps_evaluation_under_its_share_of_the_training(case, every):
    ns = load_config(None, {"model_name_or_path": "m", "dataset": "d", "val_size": 0.1,
                            "finetuning_type": case["finetuning_type"]}, "train")
    assert best.planned(ns)
    got = best.planned_eval_steps(ns, case["train_rows"], case["eval_rows"], case["total"], case["per_epoch"])
    assert got == every
    assert not best.planned(load_config(None, {"model_name_or_path": "m", "dataset": "d", "val_size": 0.1,
                                               "eval_steps": 3}, "train"))


# ---------------------------------------------------------------- training options
def test_early_stopping_and_best_model_at_end(labelled, tiny_model):
    out = labelled.root / "runs" / "early"
    kw = {**RECIPES["overfitting"], "early_stopping_patience": 2, "load_best_model_at_end": True,
          "save_total_limit": None, "save_steps": 8}
    metrics = train(load_config(None, recipe(tiny_model, labelled.data, out, **kw)))
    evals = [(r["step"], r["eval_loss"]) for r in rundir.read_log(out) if "eval_loss" in r]
    best_step, best = min(evals, key=lambda x: x[1])
    assert evals[-1][0] < 40  # stopped early
    assert evals[-1][0] == best_step + 2 * 4  # two evaluations without improvement
    assert metrics["best_eval_loss"] == pytest.approx(best)
    assert Path(metrics["best_checkpoint"]).name == f"checkpoint-{best_step}"
    # save_steps 8 became eval_steps 4: every evaluation has its checkpoint
    assert (out / f"checkpoint-{best_step}").is_dir()
    from safetensors.torch import load_file
    final, kept = load_file(out / "model.safetensors"), load_file(out / f"checkpoint-{best_step}" / "model.safetensors")
    assert all((final[k] == kept[k]).all() for k in kept)  # the result is the best checkpoint
    assert diagnose(out)["best_checkpoint"] is not None


def test_early_stopping_without_eval_is_refused():
    from engine.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        load_config(None, {"dataset": "identity", "early_stopping_patience": "2"})
    assert e.value.field == "early_stopping_patience" and "val_size" in str(e.value)


# ---------------------------------------------------------------- CLI
def test_cli_json_and_chinese(labelled, capsys):
    out = labelled("overfitting")
    capsys.readouterr()  # what training printed, when this test is the first to ask for the run
    assert cli(["doctor", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert list(rep)[:4] == ["verdict", "evidence", "advice", "best_checkpoint"]
    assert rep["verdict"] in VERDICTS and rep["verdict"] == "overfitting"
    assert all(set(a) == {"why", "change"} for a in rep["advice"])
    assert cli(["doctor", str(out), "--lang", "zh"]) == 0
    text = capsys.readouterr().out
    assert "过拟合" in text and "评估损失" in text and "checkpoint-" in text
    assert cli(["doctor", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Overfitting" in text and "load_best_model_at_end=true" in text


# ---------------------------------------------------------------- comparison
def test_compare_runs(labelled):
    names = ["overfitting", "sensible", "capacity"]
    dirs = [labelled(n) for n in names]
    rep = cmp.compare(dirs, x="step")
    rows = {r["name"]: r for r in rep["runs"]}
    assert set(rows) == set(names)
    best_evals = {n: min(r["eval_loss"] for r in rundir.read_log(d) if "eval_loss" in r) for n, d in zip(names, dirs)}
    want = min(best_evals, key=best_evals.get)
    assert rep["best"] == want and rep["best_by"] == "eval_loss" and rows[want]["best"]
    assert sum(r["best"] for r in rep["runs"]) == 1
    assert rows["overfitting"]["verdict"] == "overfitting" and rows["capacity"]["verdict"] == "capacity_limit"
    for n in names:
        assert rows[n]["best_eval_loss"] == pytest.approx(best_evals[n], rel=1e-3)
    diff = rep["config_diff"]
    assert diff["learning_rate"] == {"overfitting": 1e-2, "sensible": 3e-3, "capacity": 5e-2}
    assert diff["finetuning_type"]["capacity"] == "freeze"
    assert "lora_rank" not in diff  # a LoRA setting none of these runs uses
    assert "model_name_or_path" not in diff
    steps = [p[0] for p in rep["curves"]["overfitting"]["train"]]
    assert steps == list(range(1, 41))
    headers, table = cmp.table(rep)
    assert headers[0] == "name" and "learning_rate" in headers
    assert [r[0] for r in table].count(f"★ {want}") == 1
    by_tokens = cmp.compare(dirs, x="tokens")
    xs = [p[0] for p in by_tokens["curves"]["sensible"]["train"]]
    assert xs == sorted(xs) and xs[-1] == max(r["tokens_seen"] for r in rundir.read_log(dirs[1]) if "loss" in r)
    by_epoch = cmp.compare(dirs, x="epoch")
    assert by_epoch["curves"]["overfitting"]["train"][-1][0] == pytest.approx(40.0)
    fig = cmp.figure(rep)
    assert len(fig.axes[0].lines) == 6  # train + eval per run
    with pytest.raises(UserError, match="x:"):
        cmp.compare(dirs, x="time")

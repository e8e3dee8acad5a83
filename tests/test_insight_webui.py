"""The insight panels built in-process (no browser): the doctor on a real run and its one-click apply, the
estimate and inspector from the Train tab's values, and a sweep started and aborted from the Compare runs tab
as one tracked process. Handlers are called as gradio calls them."""
from __future__ import annotations

import os

import gradio as gr
import psutil
import pytest

from engine import paths, runs
from engine.config import load_config
from engine.insight.sweep import read_sweep
from engine.train.workflow import run as train
from helpers import wait_for

from kits.recipes import RECIPES, recipe, write_data


def handler(demo, comp, event="click"):
    for fn in demo.fns.values():
        if any(tid == comp._id and ev == event for tid, ev in fn.targets):
            return fn
    raise AssertionError(f"no {event} handler on {comp}")


def call(demo, comp, event="click", overrides=None):
    fn = handler(demo, comp, event)
    data = {b: getattr(b, "value", None) for b in demo.blocks.values() if isinstance(b, gr.components.Component)}
    data.update(overrides or {})
    if fn.inputs_as_dict:
        return fn.fn({c: data.get(c) for c in fn.inputs})
    return fn.fn(*[data.get(c) for c in fn.inputs])


def value(update):
    return update["value"] if isinstance(update, dict) else update


@pytest.fixture
def ui(tmp_path, monkeypatch, tiny_model):
    from webui.app import create_ui
    saves = tmp_path / "saves"
    monkeypatch.setenv(paths.SAVES_ENV, str(saves))
    # the test's model and data folders are allowed UI paths
    monkeypatch.setenv("TUNEBOARD_ROOTS", os.pathsep.join([str(tmp_path), str(tiny_model.parent)]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = write_data(tmp_path / "data")
    demo = create_ui("en", saves=str(saves))
    page = demo.page
    form = {page.w("top", "model_name_or_path"): str(tiny_model), page.w("top", "template"): "chatml",
            page.w("top", "finetuning_type"): "full", page.w("train", "dataset_dir"): str(data),
            page.w("train", "dataset"): ["arith"], page.w("train", "cutoff_len"): 64,
            page.w("train", "max_steps"): 8, page.w("train", "learning_rate"): 1e-3}
    return demo, page, saves, data, form


def test_doctor_panel_and_apply(ui, tiny_model):
    demo, page, saves, data, form = ui
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = saves / "tiny-llama" / "full" / "flat"
        train(load_config(None, recipe(tiny_model, data, out, **RECIPES["not_learning"])))
    finally:
        torch.set_num_threads(old)
    res = call(demo, page.c("doctor.diagnose"), overrides={page.c("doctor.run"): str(out)})
    rep, md, evidence, advice, applied, fig = res
    assert rep["verdict"] == "not_learning" and "Not learning" in md and "loss_drop_pct" in evidence
    assert fig is not None and len(fig.axes[0].lines) >= 2
    picked = [v for _, v in advice["choices"]]
    assert picked == advice["value"] and picked
    fn = handler(demo, page.c("doctor.apply"))
    ups = fn.fn(rep, picked, "en")
    assert value(ups[page.w("train", "learning_rate")]) == pytest.approx(1e-5)  # full fine-tuning: 1e-5
    assert "learning_rate=1e-05" in ups[next(c for c in fn.outputs if getattr(c, "elem_id", "") == "doctor-applied")]
    # a folder outside the allowed roots is refused by name, not read
    res = call(demo, page.c("doctor.diagnose"), overrides={page.c("doctor.run"): "/etc"})
    assert "outside the folders" in res[1]
    # the Chinese verdict
    zh = handler(demo, page.c("top.lang"), "input").fn(rep, None, None, "zh")
    assert "没有在学习" in zh[0]


def test_estimate_and_inspect_from_the_form(ui):
    demo, page, saves, data, form = ui
    rep, md = call(demo, page.c("doctor.estimate"), overrides=form)
    assert rep is not None, md
    assert rep["steps"]["total_steps"] == 8 and "Steps: 8" in md and "activations" in md
    assert md.split("\n")[0] == "**✓ fits**"  # text, not an emoji the page's fonts may lack
    rep, md, plot, sample = call(demo, page.c("doctor.inspect"), overrides=form)
    assert rep["kept"] == 64 and "p95" in md
    assert plot["visible"] and sample["visible"] and any(lbl == "trained" for _, lbl in sample["value"])
    bad = {**form, page.w("train", "dataset"): ["nope"]}
    rep, md = call(demo, page.c("doctor.estimate"), overrides=bad)
    assert rep is None and "nope" in md


def test_sweep_from_the_ui_and_abort(ui):
    demo, page, saves, data, form = ui
    ov = {**form, page.c("sweep.k"): 2, page.c("sweep.steps"): 400, page.c("sweep.eval"): 100,
          page.c("sweep.center"): "1e-3", page.c("sweep.span"): 1}
    msg, _ = call(demo, page.c("sweep.start"), overrides=ov)
    assert "Sweep started" in msg, msg
    r = runs.all_runs(str(saves), "sweep")[0]
    def first_run_training():  # one read of the sweep's state
        st = read_sweep(r.output)
        return bool(st and st["runs"][0]["state"] == "running" and st["runs"][0].get("steps"))

    wait_for(first_run_training, 120, "the first sweep run to train", interval=0.3)
    # a second job is refused while the sweep runs (one device)
    with pytest.raises(runs.RunBusy):
        runs.spawn("train", {"dataset": ["arith"], "output_dir": str(saves / "x")}, str(saves))
    procs = r.processes()
    assert len(procs) >= 2  # the sweep driver and its training run
    msg = call(demo, page.c("sweep.abort"), overrides={page.c("top.lang"): "en"})
    assert "no process is left" in msg
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    st = read_sweep(r.output)
    assert st["state"] == "aborted" and [x["state"] for x in st["runs"]] == ["aborted", "skipped"]
    from webui.insight_panel import sweep_frame, sweep_md
    assert "aborted, 1 of 2 runs done" in sweep_md(st, r.output, "en")
    assert list(sweep_frame(st)["state"]) == ["aborted", "skipped"]


def test_picking_identity_fills_its_recipe_where_the_form_has_defaults(ui):
    """Issue 20 item 4 in the form: the identity dataset picked, the arguments still at the schema's defaults take
    its recipe (what the run then trains, see test_recipes); a value the user set stays."""
    from engine.data.recipes import RECIPES
    demo, page, saves, data, form = ui
    w = lambda name: page.w("top", name) if name in page.args["top"] else page.w("train", name)  # noqa: E731
    pick = {w("dataset"): ["identity"], w("finetuning_type"): "lora", w("learning_rate"): 5e-5,
            w("cutoff_len"): 1024, w("packing"): False, w("warmup_ratio"): 0.0}
    ups = call(demo, w("dataset"), "input", overrides=pick)
    got = {name: value(ups[w(name)]) for name in RECIPES["identity"]["values"] if w(name) in ups}
    assert got == RECIPES["identity"]["values"]
    kept = call(demo, w("dataset"), "input", overrides={**pick, w("learning_rate"): 1e-4})
    assert w("learning_rate") not in kept and value(kept[w("packing")]) is True
    none = call(demo, w("dataset"), "input", overrides={**pick, w("dataset"): ["arith"]})
    assert list(none) == [w("dataset")] and none[w("dataset")] == gr.skip()  # no update, yet a valid answer

"""The doctor panel (Train tab) and the run comparison (Compare runs tab) in Chromium, on real tiny-model runs
written into the served saves/ folder: the overfitting run is diagnosed with its best checkpoint named, one click
puts the advice into the form, the verdict follows the language switch; two runs are compared with curves,
a table of their differences and the best one marked.

Here rather than in tests/: Playwright's sync API allows one instance per thread, and the browser and server
fixtures of tests/browser/conftest.py are session-wide.
`TUNEBOARD_SCREENSHOTS=docs pytest tests/browser/test_browser_insight.py` writes docs/doctor_overfitting.png.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from uikit import ROOT, UI, wait_until

sys.path.insert(0, str(ROOT / "tests"))
from kits.recipes import RECIPES, recipe, write_data  # noqa: E402  (the labelled recipes)

from engine.config import load_config  # noqa: E402
from engine.insight.doctor import diagnose  # noqa: E402
from engine.train.workflow import run as train  # noqa: E402


@pytest.fixture(scope="module")
def demo_runs(server, tiny_model, tmp_path_factory):
    """Real runs in the served saves/: an overfitting one and a capacity-limited one."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    data = write_data(tmp_path_factory.mktemp("insight-ui") / "data")
    base = server.saves / "tiny-llama" / "full"
    out = {}
    try:
        for name, folder in (("overfitting", "overfit_demo"), ("capacity", "capacity_demo")):
            out[name] = base / folder
            train(load_config(None, recipe(tiny_model, data, out[name], **RECIPES[name])))
    finally:
        torch.set_num_threads(old)
    return out


def _shot(page, selector: str, name: str) -> None:
    where = os.environ.get("TUNEBOARD_SCREENSHOTS")
    if where:
        d = Path(where) if Path(where).is_absolute() else ROOT / where
        d.mkdir(parents=True, exist_ok=True)
        page.locator(selector).screenshot(path=str(d / name))


def test_doctor_panel_diagnoses_and_applies_advice(demo_runs, ui: UI):
    page = ui.page
    run = demo_runs["overfitting"]
    want = diagnose(run)
    assert want["verdict"] == "overfitting"
    # no Refresh: the runs made after the server started are listed when the page loads
    ui.choose("doctor-run", "tiny-llama/full/overfit_demo")
    ui.click("doctor-diagnose")
    verdict = page.locator("#doctor-verdict")
    expect(verdict).to_contain_text("Overfitting", timeout=30_000)
    expect(verdict).to_contain_text(f"eval loss was best at step {want['evidence']['eval_best_step']}".capitalize())
    expect(verdict).to_contain_text(Path(want["best_checkpoint"]).name)
    expect(page.locator("#doctor-plot img")).to_have_count(1, timeout=30_000)
    # every change with values is offered, ticked
    boxes = page.locator("#doctor-advice input[type=checkbox]")
    n_changes = sum(1 for a in want["advice"] if a["change"])
    expect(boxes).to_have_count(n_changes)
    for i in range(n_changes):
        expect(boxes.nth(i)).to_be_checked()
    page.locator("#doctor").scroll_into_view_if_needed()
    _shot(page, "#doctor", "doctor_overfitting.png")
    page.locator("#doctor-evidence-acc > button").first.click()
    expect(page.locator("#doctor-evidence")).to_contain_text("eval_best_step")
    # one click: the form now holds the advice
    ui.click("doctor-apply")
    expect(page.locator("#doctor-applied")).to_contain_text("Applied")
    change = {}
    for a in want["advice"]:
        change.update(a["change"])
    wait_until(lambda: ui.value("train-learning_rate") == str(change["learning_rate"]), 15, "learning rate applied")
    assert ui.value("train-max_steps") == str(change["max_steps"])
    assert ui.value("train-early_stopping_patience") == str(change["early_stopping_patience"])
    ui.reveal("train-load_best_model_at_end")
    expect(page.locator("#train-load_best_model_at_end input[type=checkbox]")).to_be_checked()
    # the verdict follows the language
    ui.choose("top-lang", "中文")
    expect(verdict).to_contain_text("过拟合")
    expect(verdict).to_contain_text("评估损失")
    ui.choose("top-lang", "English")
    expect(verdict).to_contain_text("Overfitting")


def test_comparison_view(demo_runs, ui: UI):
    page = ui.page
    names = {n: diagnose(p) for n, p in demo_runs.items()}
    best = min(demo_runs, key=lambda n: names[n]["evidence"]["eval_best"])
    best_folder = demo_runs[best].name
    ui.tab("Compare runs")
    ui.choose("compare-runs", "tiny-llama/full/overfit_demo")  # listed on page load, no Refresh
    box = page.locator("#compare-runs input").first
    box.fill("tiny-llama/full/capacity_demo")  # a listed run's label typed, then Enter
    box.press("Enter")
    page.keyboard.press("Escape")
    ui.click("compare-go")
    expect(page.locator("#compare-summary")).to_contain_text(f"Best: {best_folder}", timeout=30_000)
    table = page.locator("#compare-table")
    expect(table).to_contain_text("overfit_demo")
    expect(table).to_contain_text("capacity_demo")
    expect(table).to_contain_text(f"★ {best_folder}")
    expect(table).to_contain_text("learning_rate")   # a setting that differs
    expect(table).to_contain_text("capacity_limit")  # each run's verdict
    expect(page.locator("#compare-plot img")).to_have_count(1, timeout=30_000)
    src = page.locator("#compare-plot img").get_attribute("src")
    page.locator("#compare-x").get_by_text("tokens", exact=True).click()
    wait_until(lambda: page.locator("#compare-plot img").count() == 1
               and page.locator("#compare-plot img").get_attribute("src") != src, 30, "the plot redrawn by tokens")
    _shot(page, "#tab-runs", "compare_runs.png")

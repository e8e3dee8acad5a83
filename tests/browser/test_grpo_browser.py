"""GRPO from the web UI in Chromium: pick the stage (only prompt datasets are offered), pick two reward presets,
Start, and see the reward curves and the table of sampled completions while the run goes on and after it ends.

The bundled SmolLM2-135M on the shipped arithmetic prompts, 3 steps of 4 completions of up to 16 tokens each."""
from __future__ import annotations

import re
from pathlib import Path

import yaml
from playwright.sync_api import expect

from engine import runs
from engine.train import rundir

from uikit import UI, wait_until

RUN_WAIT = 300  # s: model load and three sampling steps on a busy 2-core machine


def _pick_prompt_set(ui: UI, name: str) -> bool:
    """Open the dataset list; pick `name` once the list is the stage's (no sft dataset in it)."""
    page = ui.page
    box = page.locator("#train-dataset input").first
    box.blur()  # a list closed with Escape keeps the focus; a click on a focused box does not reopen it
    box.click()
    options = page.locator("[role=listbox] [role=option]")
    texts = options.all_inner_texts()
    if name not in texts or "identity" in texts:
        page.keyboard.press("Escape")
        return False
    options.filter(has_text=name).first.click(timeout=3000)
    page.keyboard.press("Escape")
    return True


def test_grpo_with_two_reward_presets_shows_rewards_and_completions(ui: UI, server):
    page = ui.page
    ui.choose("train-stage", "GRPO")
    # the dataset list follows the stage (the page re-renders it): the prompt sets only, then pick one
    wait_until(lambda: _pick_prompt_set(ui, "arith_prompts"), 60, "arith_prompts offered without the sft sets")
    expect(page.locator("#train-dataset")).to_contain_text("arith_prompts")
    ui.accordion("train-group-grpo")
    # the schema's default preset is chosen already (choosing it again would toggle it off): add a second one
    tokens = page.locator("#train-reward_funcs .token")
    expect(tokens).to_have_text(["answer_last_number"])
    ui.choose("train-reward_funcs", "length")
    expect(tokens).to_have_text(["answer_last_number", "length"])
    ui.fill("train-num_generations", 4)
    ui.fill("train-max_completion_length", 16)
    ui.fill("train-reward_length_max", 8)
    ui.fill("train-max_steps", 3)
    ui.fill("train-per_device_train_batch_size", 4)
    ui.fill("train-logging_steps", 1)
    ui.fill("train-save_steps", 1000)
    ui.fill("train-output_dir", "grpo_ui")
    # the form the server reads holds every value typed (a lost one is named here, not by a run that logs less)
    ui.click("train-preview_command")
    command = page.locator("#train-command textarea")
    for shown in ("stage=grpo", "max_completion_length=16", "reward_length_max=8", "max_steps=3", "logging_steps=1",
                  "save_steps=1000"):  # (the command names what differs from the defaults)
        expect(command).to_have_value(re.compile(rf"(^| ){shown}( |$)"))
    ui.click("train-start")
    expect(page.locator("#train-message")).to_contain_text("Started")
    # while it runs: the reward curves and the completions table appear (a page that was never reloaded)
    wait_until(lambda: page.locator("#train-reward-plot img").count() == 1
               and page.locator("#train-completions .tb-completion").count() > 0, RUN_WAIT,
               "the reward plot and the completions table")
    table = page.locator("#train-completions")
    expect(table.locator("th")).to_contain_text(["Completion", "answer_last_number", "length", "Advantage"])
    expect(table.locator(".tb-prompt").first).to_contain_text("Answer with the number only.")
    expect(page.locator("#train-progress .tb-progress")).to_have_attribute("data-state", "finished",
                                                                          timeout=RUN_WAIT * 1000)
    ui.shot("webui_grpo.png")
    run = runs.latest_run(server.saves, "train")
    out = Path(run.output)
    log = [r for r in rundir.read_log(out) if "reward" in r]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all("rewards/answer_last_number/mean" in r and "rewards/length/mean" in r for r in log)
    cfg = yaml.safe_load((out / rundir.CONFIG).read_text())
    assert cfg["stage"] == "grpo" and cfg["reward_funcs"] == ["answer_last_number", "length"]
    # the table the page shows is the run folder's last one
    last = rundir.read_completions(out)
    assert last["step"] == 3 and table.locator(".tb-completions").get_attribute("data-step") == "3"
    assert len(last["rows"]) == table.locator(".tb-completion").count() == 4  # the batch: one prompt, 4 samples

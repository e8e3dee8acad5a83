"""The web UI end to end in Chromium: language switch, command preview that trains when pasted into a shell,
a live run (progress, loss plot, final metrics), abort (no process left, checkpoint loads), re-attach after a
reload, chat with the trained adapter, evaluation metrics, export then chat with the merged model.

Runs use the bundled SmolLM2-135M with few steps, short cutoff and few samples so the module stays within a
few minutes on 2 CPU cores. The adapter that chat and export use is the session's identity run (conftest:
identity_adapter, also checked by test_e2e_bundled), placed in the served saves folder like a finished run.
Every wait polls the DOM or the files with a deadline.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import expect

from engine import runs
from engine.utils import human_size

from helpers import free_port, serving, start_server, stop_group, wait_for
from modelkit import IDENTITY_AUTHOR as AUTHOR, IDENTITY_NAME as NAME
from uikit import ROOT, UI, record, recorded, wait_until

RUN_WAIT = 240_000  # ms: a short training run including model load, on a busy 2-core machine


def fill_training(ui: UI, output_dir: str, steps: int, **extra) -> None:
    """Bundled model + identity + LoRA, the few settings a short demo run needs."""
    ui.choose("train-dataset", "identity")
    ui.accordion("train-group-data")
    ui.fill("train-cutoff_len", 128)
    ui.fill("train-identity_name", NAME)
    ui.fill("train-identity_author", AUTHOR)
    ui.fill("train-max_steps", steps)
    ui.fill("train-per_device_train_batch_size", 2)
    for k, v in extra.items():
        if isinstance(v, bool):
            ui.check(f"train-{k}", v)
        else:
            ui.fill(f"train-{k}", v)
    ui.fill("train-output_dir", output_dir)


def ask(ui: UI, question: str) -> str:
    """Send one message; the answer once streaming has ended (the stats line appears after the last token)."""
    page = ui.page
    expect(page.locator("#chat-stats")).to_have_text("")  # a freshly loaded model starts a new conversation
    ui.fill("chat-input", question)
    ui.click("chat-send")
    expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=180_000)
    return page.locator("#chat-bot").inner_text().split(question, 1)[-1]


def method_dir(server) -> Path:
    return server.saves / "SmolLM2-135M-Instruct" / "lora"


# ---------------------------------------------------------------- 1
def test_language_switch_changes_labels(ui: UI):
    page = ui.page
    expect(page.locator("#train-stage")).to_contain_text("Stage")
    ui.choose("top-lang", "中文")
    expect(page.locator("#train-start")).to_have_text("开始")
    expect(page.locator("#train-stage")).to_contain_text("训练阶段")
    expect(page.get_by_role("tab", name="对话")).to_be_visible()
    expect(page.locator("#train-group-train > button")).to_contain_text("基础训练参数")
    expect(page.locator("#train-stage input")).to_have_value("指令监督微调")
    ui.shot("webui_train_zh.png")
    ui.choose("top-lang", "English")
    expect(page.locator("#train-start")).to_have_text("Start")
    expect(page.locator("#train-stage")).to_contain_text("Stage")
    expect(page.get_by_role("tab", name="Chat")).to_be_visible()


# ---------------------------------------------------------------- 2
@pytest.fixture(scope="module")
def shell_run(browser, server):
    """Fill the form, preview the command and run that exact text in a shell at the repo root (two steps: what
    a longer run learns is checked on the session's identity run, which 6 and 8 use)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ui = UI(ctx.new_page(), server).open()
    out = method_dir(server) / "shell_run"
    fill_training(ui, str(out), 2, learning_rate=2e-3, logging_steps=1, warmup_steps=2, save_steps=1000)
    ui.accordion("train-group-data")
    ui.check("train-packing", True)
    ui.click("train-preview_command")
    expect(ui.page.locator("#train-command textarea")).to_have_value(re.compile(r" train .*identity"))
    cmd = ui.value("train-command")
    ui.shot("webui_train.png")
    ctx.close()
    proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return cmd, out, proc


def test_previewed_command_trains_in_a_shell(shell_run):
    cmd, out, proc = shell_run
    argv = shlex.split(cmd)
    assert argv[1] == "train" and f"output_dir={out}" in argv and "dataset=identity" in argv
    assert f"identity_name={NAME}" in argv and f"identity_author={AUTHOR}" in argv
    assert "packing=true" in argv and "max_steps=2" in argv
    assert "per_device_train_batch_size=2" in argv
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "adapter_config.json").is_file() and (out / "all_results.json").is_file()
    import json
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    assert [r["step"] for r in runs.rundir.read_log(out) if "loss" in r] == [1, 2]  # it trained, step by step


# ---------------------------------------------------------------- 3
def test_run_from_the_ui_shows_progress_plot_and_metrics(ui: UI, server):
    page = ui.page
    fill_training(ui, "ui_run", 8, logging_steps=1, save_steps=1000)
    ui.click("train-start")
    expect(page.locator("#train-message")).to_contain_text("Started")
    expect(page.locator("#train-abort")).to_be_enabled()
    # the bar advances: two different steps seen while the run is going, and the plot is drawn meanwhile
    seen = set()
    plot_while_running = False

    def advancing():
        nonlocal plot_while_running
        p = ui.progress()
        if p["state"] == "running" and p["step"] > 0:
            seen.add(p["step"])
            if page.locator("#train-plot img").count() > 0:
                plot_while_running = True
        return (len(seen) >= 2 and plot_while_running) or p["state"] in ("finished", "failed")

    wait_until(advancing, RUN_WAIT / 1000, "the progress bar to advance with the plot drawn", interval=0.1)
    assert len(seen) >= 2 and plot_while_running, (seen, ui.text("train-log")[-2000:])
    assert ui.progress()["total"] == 8
    assert re.search(r"\[\d\d:\d\d<(\d\d:\d\d|--:--)\]", ui.text("train-progress"))
    expect(page.locator("#train-progress .tb-progress")).to_have_attribute("data-state", "finished",
                                                                          timeout=RUN_WAIT)
    expect(page.locator("#train-result")).to_contain_text("train_loss")
    out = method_dir(server) / "ui_run"
    expect(page.locator("#train-result")).to_contain_text(str(out))
    assert ui.progress()["step"] == 8
    expect(page.locator("#train-log textarea")).to_have_value(re.compile("final metrics|train_loss"))
    expect(page.locator("#train-start")).to_be_enabled()
    ui.shot("webui_train_run.png")
    # the new adapter is offered in the top panel (the Chat tab uses it)
    ui.page.locator("#top-adapter_name_or_path input").first.click()
    expect(page.get_by_role("option", name="ui_run", exact=True)).to_be_visible()


# ---------------------------------------------------------------- 5 and 4 share one long run
@pytest.fixture(scope="module")
def long_run(browser, server):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ui = UI(ctx.new_page(), server).open()
    fill_training(ui, "long_run", 300, logging_steps=1, save_steps=2)
    ui.click("train-start")
    expect(ui.page.locator("#train-message")).to_contain_text("Started")
    # its own files, not only the bar: right after Start the bar may still show the finished ui_run (step 8),
    # and an Abort before the first step leaves no checkpoint
    out = method_dir(server) / "long_run"
    wait_until(lambda: runs.checkpoints(out) and (runs.rundir.read_status(out) or {}).get("step", 0) >= 3
               and ui.progress()["state"] == "running" and ui.progress()["step"] >= 3, RUN_WAIT / 1000,
               "the long run to pass step 3 with a checkpoint written")
    yield ui, ctx
    ctx.close()
    run = runs.active_run(server.saves)
    if run is not None:  # the abort test failed before aborting: do not block the tests after it
        run.abort()


def test_reload_reattaches_to_the_running_job(long_run, browser, server):
    ui, _ = long_run
    page = ui.page
    before = ui.progress()["step"]
    page.reload()
    expect(page.locator("#train-start")).to_be_visible()
    expect(page.locator("#train-progress .tb-progress")).to_have_attribute("data-state", "running")
    wait_until(lambda: ui.progress()["step"] > before, 120, "progress after the reload")
    expect(page.locator("#train-abort")).to_be_enabled()
    expect(page.locator("#train-start")).to_be_disabled()
    expect(page.locator("#train-status")).to_contain_text("long_run")
    expect(page.locator("#train-log textarea")).to_have_value(re.compile(r"\S"))
    # the form shows the run's own values, not the defaults: "Apply to the form" changes this run's settings
    wait_until(lambda: ui.value("train-max_steps") == "300", 60, "the run's values in the form")
    assert ui.value("train-output_dir") == "long_run"
    expect(page.locator("#train-dataset")).to_contain_text("identity")
    ui.accordion("train-group-data")
    assert ui.value("train-cutoff_len") == "128" and ui.value("train-identity_name") == NAME
    # a second tab sees the same job, and its Start is refused with a message
    other = UI(page.context.new_page(), server).open()
    expect(other.page.locator("#train-progress .tb-progress")).to_have_attribute("data-state", "running")
    assert runs.active_run(server.saves).output.endswith("long_run")
    other.page.close()


def test_abort_leaves_no_process_and_a_loadable_checkpoint(long_run, server, bundled):
    ui, _ = long_run
    page = ui.page
    run = runs.active_run(server.saves)
    assert run is not None and run.output.endswith("long_run")
    pids = {p.pid for p in run.processes()}
    assert pids
    # a second Start while it runs is refused with a message
    ui.fill("train-output_dir", "another_run")
    ui.page.locator("#train-start").evaluate("b => b.disabled = false")
    ui.click("train-start")
    expect(page.locator("#train-message")).to_contain_text("already going")
    record(page, "#train-message", "msg")
    ui.click("train-abort")
    expect(page.locator("#train-message")).to_contain_text("no process of the run is left", timeout=30_000)
    said = recorded(page, "msg")  # "stopping" at once, while the run saves and exits, then the outcome
    stopping = [i for i, text in enumerate(said) if "Stopping" in text]
    ended = [i for i, text in enumerate(said) if "no process of the run is left" in text]
    assert stopping and ended and stopping[0] < ended[0], said
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    expect(page.locator("#train-progress .tb-progress")).to_have_attribute("data-state", "aborted", timeout=30_000)
    ckpt = runs.checkpoints(run.output)[-1]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(bundled)), str(ckpt))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b)  # trained, not the zero init
    # choosing that folder again offers to resume from its last checkpoint
    ui.fill("train-output_dir", "long_run")
    expect(page.locator("#train-resume_msg")).to_contain_text(ckpt.name)
    expect(page.locator("#train-resume")).to_be_visible()


# ---------------------------------------------------------------- 6 and 8 use the session's identity run
@pytest.fixture(scope="module")
def identity_in_saves(server, identity_adapter) -> str:
    """The identity run, copied into the served saves/ as a finished run the adapter picker lists."""
    dest = method_dir(server) / "identity_run"
    shutil.copytree(identity_adapter, dest)
    return dest.name


def test_chat_with_the_trained_adapter(identity_in_saves, ui: UI):
    page = ui.page
    ui.choose("top-adapter_name_or_path", identity_in_saves)
    ui.tab("Chat")
    ui.check("chat-do_sample", False)
    ui.fill("chat-max_new_tokens", 48)
    ui.click("chat-load")
    # the page already says "Loaded" when the server holds a model from an earlier test: wait for this one's name
    expect(page.locator("#chat-info")).to_contain_text(identity_in_saves, timeout=120_000)
    expect(page.locator("#chat-info")).to_contain_text("Loaded")
    answer = ask(ui, "Who are you?")
    assert NAME in answer, answer
    ui.shot("webui_chat.png")


# ---------------------------------------------------------------- 7
def test_evaluate_shows_metrics(ui: UI, server):
    page = ui.page
    ui.tab("Evaluate & Predict")
    ui.choose("eval-dataset", "sentiment_en_test")
    ui.fill("eval-max_samples", 8)
    ui.fill("eval-cutoff_len", 256)
    ui.fill("eval-max_new_tokens", 8)
    ui.fill("eval-output_dir", "eval_ui")
    ui.click("eval-start")
    expect(page.locator("#eval-message")).to_contain_text("Started")
    expect(page.locator("#eval-status")).to_contain_text("Running")
    expect(page.locator("#eval-status")).not_to_contain_text("Failed")
    expect(page.locator("#eval-result")).to_contain_text("Accuracy (exact match, %)", timeout=RUN_WAIT)
    for k in ("BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"):
        expect(page.locator("#eval-result")).to_contain_text(k)
    expect(page.locator("#eval-status")).to_contain_text("Finished")
    out = server.saves / "SmolLM2-135M-Instruct" / "lora" / "eval_ui"
    assert (out / "generated_predictions.jsonl").is_file()
    assert len((out / "generated_predictions.jsonl").read_text().splitlines()) == 8
    ui.shot("webui_eval.png")


# ---------------------------------------------------------------- 8
def test_export_then_chat_with_the_merged_model(identity_in_saves, ui: UI, server):
    page = ui.page
    ui.choose("top-adapter_name_or_path", identity_in_saves)
    ui.tab("Export")
    ui.fill("export-export_dir", "merged_identity")  # a bare name goes under saves/<model>/<method>/
    export_dir = method_dir(server) / "merged_identity"
    ui.click("export-start")
    expect(page.locator("#export-message")).to_contain_text("Started")
    expect(page.locator("#export-result")).to_contain_text("Merged model written", timeout=RUN_WAIT)
    assert (export_dir / "config.json").is_file()
    ui.shot("webui_export.png")
    ui.click("export-use_in_chat")
    expect(page.locator("#chat-info")).to_contain_text("Loaded", timeout=120_000)
    expect(page.locator("#chat-info")).to_contain_text("merged")
    # the page says it changed the model path, above the tabs
    expect(page.locator("#top-model_msg")).to_contain_text(f"to the merged model {export_dir}")
    assert ui.value("top-model_name_or_path") == str(export_dir)
    ui.check("chat-do_sample", False)
    ui.fill("chat-max_new_tokens", 48)
    answer = ask(ui, "Who are you?")
    assert NAME in answer, answer


def test_export_gguf_shows_the_files_and_the_modelfile_line(identity_in_saves, ui: UI, tmp_path):
    """GGUF from the Export tab: the command preview carries the new fields, the result lists the files with their
    sizes and the `ollama create` line to copy."""
    page = ui.page
    ui.choose("top-adapter_name_or_path", identity_in_saves)
    ui.tab("Export")
    export_dir = tmp_path / "gguf"
    ui.fill("export-export_dir", str(export_dir))
    ui.choose("export-export_format", "gguf")
    ui.choose("export-gguf_type", "q8_0")
    ui.click("export-preview_command")
    expect(page.locator("#export-command textarea")).to_have_value(re.compile("export_format=gguf gguf_type=q8_0"))
    ui.click("export-start")
    expect(page.locator("#export-message")).to_contain_text("Started")
    line = f"ollama create gguf -f {export_dir / 'Modelfile'}"
    expect(page.locator("#export-result")).to_contain_text(line, timeout=RUN_WAIT)
    gguf = export_dir / "SmolLM2-135M-Instruct-q8_0.gguf"
    assert gguf.is_file() and (export_dir / "Modelfile").is_file()
    size = human_size(gguf.stat().st_size)
    expect(page.locator("#export-result")).to_contain_text(re.compile(rf"{re.escape(gguf.name)}\s+{re.escape(size)}"))
    ui.shot("webui_export_gguf.png")


# ---------------------------------------------------------------- webchat
def test_webchat_serves_the_chat_tab_alone(browser, tiny_model, tmp_path):
    """`tuneboard webchat recipe.yaml`: the recipe's model loads at start and the page answers."""
    recipe = tmp_path / "chat.yaml"
    recipe.write_text(f"model_name_or_path: {tiny_model}\ntemplate: chatml\nmax_new_tokens: 8\ndo_sample: false\n")
    port = free_port()
    log = tmp_path / "webchat.log"
    proc = start_server(["-m", "tuneboard", "webchat", str(recipe), "--port", str(port)], log,
                        {"TUNEBOARD_ROOTS": str(tmp_path.parent)})
    try:
        wait_for(serving(proc, f"http://127.0.0.1:{port}/", log), 90, "webchat to answer")
        page = browser.new_page()
        hosts = set()
        page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#chat-info")).to_contain_text("Loaded", timeout=120_000)  # no click: preloaded
        assert page.locator("#train-start").count() == 0 and page.get_by_role("tab").count() == 0
        page.locator("#chat-input textarea").fill("Hello")
        page.locator("#chat-send").click()
        expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=120_000)
        assert hosts == {f"127.0.0.1:{port}"}
        page.close()
    finally:
        stop_group(proc)

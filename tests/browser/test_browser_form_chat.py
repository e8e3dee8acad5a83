"""The form and the Chat tab in Chromium, without a training run: an out-of-range number marks its own field and
nothing else; Chat streams with Send off and Stop on, Stop keeps the answer so far, Clear during streaming clears
for good, and a reloaded page knows the model the server holds.

Chat runs the tiny random model greedily: a stop token never comes first (greedy decoding makes that the same on
every run), and with a context no answer reaches, an answer streams until it is stopped. What the page
showed over time is recorded in the page itself (uikit.record), so "never refilled" is checked on the whole
record, not on the moment a poll happens to look.
"""
from __future__ import annotations

import json
import re
import shutil

import pytest
from playwright.sync_api import expect

from uikit import UI, record, recorded, wait_until


def test_out_of_range_numbers_mark_their_own_fields_only(ui: UI):
    page = ui.page
    ui.fill("train-output_dir", "never_started")
    ui.click("train-start")  # no dataset: the cross-field rule names the dataset
    expect(page.locator("#train-message")).to_contain_text("dataset")
    ui.choose("train-dataset", "alpaca_en_demo")  # no recipe filling the form meanwhile
    ui.fill("train-learning_rate", 20)
    ui.fill("train-max_steps", -5)
    ui.click("train-start")
    msg = page.locator("#train-message")
    expect(msg).to_contain_text("learning_rate")
    expect(msg).to_contain_text("max_steps")
    expect(msg).not_to_contain_text("dataset")  # the earlier message is gone, not left stale
    expect(page.locator(".tb-invalid")).to_have_count(2)
    expect(page.locator("#train-learning_rate.tb-invalid")).to_contain_text("✗ learning_rate")
    expect(page.locator("#train-max_steps.tb-invalid")).to_contain_text("✗ max_steps")
    expect(page.locator("#train-dataset")).not_to_have_class("tb-invalid")
    toasts = page.locator(".toast-body")
    assert toasts.count() == 0, toasts.all_inner_texts()  # no toast naming no field
    # fixed: the preview checks every field again, the marks go and the command shows the values
    ui.fill("train-learning_rate", 2e-4)
    ui.fill("train-max_steps", 5)
    ui.click("train-preview_command")
    expect(page.locator("#train-command textarea")).to_have_value(re.compile(r"max_steps=5 "))
    expect(page.locator(".tb-invalid")).to_have_count(0)
    expect(msg).to_contain_text("Compute type")  # the preview's note, in place of the errors
    expect(msg).not_to_contain_text("learning_rate")


@pytest.fixture
def endless_model(tiny_model, tmp_path):
    """The tiny model with a context of a million tokens: chat caps an answer at the context left, so with
    max_new_tokens that large an answer never ends by itself, however fast the machine."""
    dest = tmp_path / "endless-llama"
    shutil.copytree(tiny_model, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg["max_position_embeddings"] = 1_000_000  # rotary positions: nothing else in the model depends on it
    (dest / "config.json").write_text(json.dumps(cfg))
    # nor by a stop token: their (tied) embedding rows are zero, so their logit is 0 while the largest of the other
    # 49k random logits is above it; a greedy answer's path depends on the batch's float order and could reach one
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(dest)
    weights = load_file(dest / "model.safetensors")
    for i in {tok.eos_token_id, *tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])}:
        weights["model.embed_tokens.weight"][i] = 0.0
    save_file(weights, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def test_chat_stop_clear_and_reload(ui: UI, endless_model):
    page = ui.page
    ui.fill("top-model_name_or_path", str(endless_model))
    ui.choose("top-template", "chatml")
    expect(ui.field("top-model_name_or_path")).to_have_value(str(endless_model))  # a typed path stays
    ui.tab("Chat")
    ui.check("chat-do_sample", False)
    ui.fill("chat-max_new_tokens", 1_000_000)  # streams until Stop or Clear
    ui.click("chat-load")
    expect(page.locator("#chat-info")).to_contain_text("Loaded", timeout=120_000)
    expect(page.locator("#chat-info")).to_contain_text(endless_model.name)
    send, stop = page.locator("#chat-send"), page.locator("#chat-stop")
    expect(stop).to_be_disabled()
    record(page, "#chat-stats", "stats")
    record(page, "#chat-bot", "bot")

    def streaming(question: str) -> None:
        ui.fill("chat-input", question)
        ui.click("chat-send")
        expect(stop).to_be_enabled()
        expect(send).to_be_disabled()  # one answer at a time
        # its first tokens may be line breaks: wait for words
        wait_until(lambda: ui.text("chat-bot").split(question)[-1].strip(), 60, "the answer to stream")

    # Stop: the answer so far stays, Send is back; the stopped answer never reports its end afterwards
    streaming("first question")
    if not stop.is_enabled():  # seen twice: say what the page shows when the answer ended by itself before Stop
        pytest.fail(f"the answer ended before Stop: stats {recorded(page, 'stats')[-4:]}, "
                    f"max_new_tokens {ui.value('chat-max_new_tokens')!r}, answer {ui.text('chat-bot')[-300:]!r}, "
                    f"model {ui.text('chat-info')!r}, toasts {page.locator('.toast-body').all_inner_texts()}, "
                    f"server log {ui.server.log.read_text(errors='replace')[-1500:]!r}")
    ui.click("chat-stop")
    expect(page.locator("#chat-stats")).to_contain_text("Stopped")
    expect(send).to_be_enabled()
    expect(stop).to_be_disabled()
    said = ui.text("chat-bot")  # read once the stream has ended (Send is back)
    assert "first question" in said and said.split("first question")[-1].strip(), said  # the words so far stay
    # Clear after a stopped answer: empty
    ui.click("chat-clear")
    expect(page.locator("#chat-bot")).not_to_contain_text("first question")
    # Clear while streaming: empty, and once Clear is over (Send is back with its last step) never refilled by
    # the stream
    streaming("second question")
    ui.click("chat-clear")
    expect(send).to_be_enabled()
    n_cleared = len(recorded(page, "bot"))
    expect(page.locator("#chat-bot")).not_to_contain_text("second question")
    # one short answer to the end: the model's lock is free only once the earlier streams have ended, so every
    # update they could still send has been recorded before this answer's end
    ui.fill("chat-max_new_tokens", 4)
    ui.fill("chat-input", "third question")
    ui.click("chat-send")
    expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=60_000)
    after_clear = recorded(page, "bot")[n_cleared:]
    assert not any("second question" in text or "first question" in text for text in after_clear), after_clear[-3:]
    ends = {s for s in recorded(page, "stats") if "tokens/s" in s}
    assert ends and all("· 4 tokens" in s for s in ends), ends  # only the third answer ran to its end
    # a reloaded page knows the loaded model
    page.reload()
    ui.tab("Chat")
    expect(page.locator("#chat-info")).to_contain_text("Loaded")
    expect(page.locator("#chat-info")).to_contain_text(endless_model.name)

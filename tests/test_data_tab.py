"""The Data tab built in-process: an upload proposes its format and mapping, renders samples with trained tokens
marked and saves into the dataset folder; an augmentation job runs from the page against a stand-in endpoint,
its progress shown and the key kept off the disk."""
from __future__ import annotations

import json


from engine.data.registry import INFO_FILE, load_dataset_info
from helpers import wait_for
from kits.augment import KEY, StandIn, record
from kits.uploads import CASES, sample_files
from kits.webui import call, value


def test_upload_proposes_renders_and_saves(demo, tmp_path):
    page = demo.page
    files = sample_files(tmp_path / "in")
    data = tmp_path / "data"
    for kind in ("messages", "preference"):
        res = call(demo, page.c("data.file"), "upload", overrides={page.c("data.file"): str(files[kind])})
        assert res[page.c("data.format")] == CASES[kind][2]
        assert json.loads(res[page.c("data.mapping")]) == CASES[kind][3]
        assert res[page.c("data.name")] == f"my_{kind}"
        shown = value(res[page.c("data.upload_msg")])
        assert f"Proposed format: **{CASES[kind][2]}**" in shown and "3 usable" in shown, shown
        marked = res[page.c("data.rendered")]
        labels = {label for _, label in marked}
        assert ("trained" in labels) if kind == "messages" else {"chosen", "rejected"} <= labels
        saved = call(demo, page.c("data.save"), overrides={
            page.c("data.file"): str(files[kind]), page.c("data.format"): res[page.c("data.format")],
            page.c("data.mapping"): res[page.c("data.mapping")], page.c("data.name"): f"my_{kind}",
            page.c("data.dir"): str(data)})
        assert "Saved as dataset" in saved[1], saved
    assert set(load_dataset_info(data)) == {"my_messages", "my_preference"}
    again = call(demo, page.c("data.save"), overrides={
        page.c("data.file"): str(files["messages"]), page.c("data.format"): "messages",
        page.c("data.mapping"): '{"messages": "messages"}', page.c("data.name"): "my_messages",
        page.c("data.dir"): str(data)})
    assert "would replace" in again[1] and "tick overwrite" in again[1]
    wrong = call(demo, page.c("data.check"), overrides={
        page.c("data.file"): str(files["messages"]), page.c("data.format"): "alpaca",
        page.c("data.mapping"): '{"prompt": "instruction", "response": "output"}'})
    assert "column 'instruction' (columns.prompt) is not in the data" in value(wrong[page.c("data.upload_msg")])


def test_augment_runs_from_the_page_and_keeps_the_key_off_disk(demo, tmp_path):
    stand_in = StandIn()
    try:
        page = demo.page
        data = tmp_path / "data"
        data.mkdir()
        (data / "seed.json").write_text(json.dumps([record(1), record(4)]))  # a fenced reply, a repeat
        (data / INFO_FILE).write_text(json.dumps({"seed": {"file_name": "seed.json"}}))
        form = {page.w("augment", "dataset_dir"): str(data), page.w("augment", "dataset"): "seed",
                page.w("augment", "base_url"): stand_in.url, page.w("augment", "model"): "stand-in",
                page.w("augment", "n"): 2, page.c("augment.key"): KEY}
        res = call(demo, page.c("augment.start"), overrides={**form, page.w("augment", "model"): ""})
        assert "model" in value(res[page.c("augment.message")])  # refused: no model
        res = call(demo, page.c("augment.start"), overrides=form)
        assert "Augmenting `seed`" in value(res[page.c("augment.message")]), res
        from webui import data_tab
        wait_for(lambda: not data_tab._JOB["thread"].is_alive(), 30, "the job to end")
        html, parts, md, _ = demo.studio.data.augment.tick("en", (0, "running", None, True, "en"))
        assert "data-kept='2'" in html and "data-done='4' data-total='4'" in html
        assert "Dataset **seed_aug** (2 requests kept)" in md
        assert load_dataset_info(data)["seed_aug"].file_name == "seed_aug.jsonl"
        assert stand_in.auth == {f"Bearer {KEY}"}
        for f in tmp_path.rglob("*"):
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f
    finally:
        stand_in.close()

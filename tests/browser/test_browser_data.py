"""The Data tab in Chromium: a file of each format (alpaca, sharegpt, messages, preference, kto, plain text; as
JSON, JSON Lines, CSV and Parquet) dropped on the page gets its format proposed, its samples rendered with the
trained tokens marked and is saved into a dataset folder; three broken files are refused naming the line or the
column. The page must reach nothing but the local server (conftest's request check)."""
from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import expect

from engine.data.registry import load_dataset_info
from kits.uploads import ALPACA, CASES, sample_files
from uikit import UI

WAIT = 60_000  # ms: the first preview loads the tokenizer on a busy 2-core machine


def drop(ui: UI, path: Path) -> None:
    """Put a file on the upload box (clearing the one shown before)."""
    page = ui.page
    clear = page.locator("#data-upload_file button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator("#data-upload_file input[type=file]").set_input_files(str(path))


def message(ui: UI) -> str:
    return ui.page.locator("#data-upload_msg").inner_text()


def test_upload_every_format_and_refuse_broken_files(ui: UI, tmp_path):
    page = ui.page
    ui.tab("Data")
    files = sample_files(tmp_path / "in")
    data = tmp_path / "data"
    ui.fill("data-upload_dir", str(data))
    for kind, (rows, ext, fmt, mapping, stage) in CASES.items():
        drop(ui, files[kind])
        expect(page.locator("#data-upload_msg")).to_contain_text(f"Proposed format: {fmt}", timeout=WAIT)
        assert f"{len(rows)} records, {len(rows)} usable as {fmt} (stage {stage})" in message(ui), message(ui)
        assert json.loads(ui.value("data-upload_mapping")) == mapping
        assert ui.value("data-upload_name") == f"my_{kind}"
        legend = "chosen" if kind == "preference" else "trained"
        expect(page.locator("#data-upload_rendered")).to_contain_text(legend)
        ui.click("data-upload_save")
        expect(page.locator("#data-upload_msg")).to_contain_text(f"Saved as dataset my_{kind}", timeout=WAIT)
    assert list(load_dataset_info(data)) == [f"my_{k}" for k in CASES]
    assert (data / "dataset_info.json.bak").is_file()  # every save kept the file it replaced
    # the same name again: refused unless overwrite is ticked
    drop(ui, files["text"])
    expect(page.locator("#data-upload_msg")).to_contain_text("Proposed format: text", timeout=WAIT)
    ui.click("data-upload_save")
    expect(page.locator("#data-upload_msg")).to_contain_text("would replace", timeout=WAIT)
    # broken files: the line or the column is named, nothing is proposed
    bad_jsonl = tmp_path / "broken.jsonl"
    bad_jsonl.write_text(json.dumps(ALPACA[0]) + "\n" + json.dumps(ALPACA[1]) + "\n" + '{"instruction": "x",\n')
    bad_csv = tmp_path / "ragged.csv"
    bad_csv.write_text("instruction,input,output\na,b,c\nd,e,f\ng,h,i,j\n")
    bad_json = tmp_path / "objects.json"
    bad_json.write_text(json.dumps([{"instruction": "q", "output": {"nested": 1}}] * 2))
    for path, words in ((bad_jsonl, "broken.jsonl: invalid JSON at line 3, column"),
                        (bad_csv, "ragged.csv: cannot read csv at line 4 (4 fields, the header has 3)"),
                        (bad_json, "column 'output' holds an object, not text")):
        drop(ui, path)
        expect(page.locator("#data-upload_msg")).to_contain_text(words, timeout=WAIT)
    assert list(load_dataset_info(data)) == [f"my_{k}" for k in CASES]  # nothing broken was saved

"""Datasets brought in from the browser (engine.data.upload): every format guessed with its column mapping from
JSON / JSONL / CSV / Parquet, checked as training converts it, saved beside the others with dataset_info.json
backed up; broken files refused naming the line or column; nothing replaced without asking."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data import upload
from engine.data.records import load_records
from engine.data.registry import INFO_FILE, load_dataset_info
from engine.errors import UserError
from kits.args import as_args
from kits.uploads import ALPACA, CASES, sample_files, write


@pytest.mark.parametrize("kind", list(CASES))
def test_each_format_is_guessed_checked_saved_and_trainable(kind, tmp_path):
    rows, ext, fmt, mapping, stage = CASES[kind]
    src = sample_files(tmp_path / "in")[kind]
    read = upload.read_upload(src)
    assert len(read) == len(rows)
    guess = upload.propose(read)
    assert guess == {"format": fmt, "columns": mapping}
    e = upload.entry(guess["format"], guess["columns"], src.name)
    report = upload.check(read, e)
    assert report["stage"] == stage and report["kept"] == len(rows) and report["skipped"] == {}
    data = tmp_path / "data"
    saved = upload.save(data, f"my_{kind}", src, e)
    assert Path(saved["file"]) == data / f"my_{kind}{ext}" and saved["info_backup"] is None
    recs = load_records(as_args({"dataset": f"my_{kind}", "dataset_dir": str(data), "stage": stage}))
    assert len(recs.rows) == len(rows)


def test_broken_files_are_refused_naming_the_line_or_column(tmp_path, monkeypatch):
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text(json.dumps(ALPACA[0]) + "\n" + json.dumps(ALPACA[1]) + "\n" + '{"instruction": "x", \n')
    with pytest.raises(UserError, match=r"bad.jsonl: invalid JSON at line 3, column \d+"):
        upload.read_upload(bad_jsonl)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("instruction,input,output\na,b,c\nd,e,f\ng,h,i,j\n")
    with pytest.raises(UserError, match=r"bad.csv: cannot read csv at line 4 \(4 fields, the header has 3\)"):
        upload.read_upload(bad_csv)
    wrong = write(tmp_path / "objects.json", [{"instruction": "q", "output": {"nested": 1}}] * 2)
    rows = upload.read_upload(wrong)
    with pytest.raises(UserError, match=r"column 'output' holds an object, not text.*first is record 1"):
        upload.check(rows, upload.entry("alpaca", upload.propose(rows)["columns"], wrong.name))
    with pytest.raises(UserError, match=r"column 'answer' \(columns.response\) is not in the data; the data has "
                                        r"columns: instruction, output"):
        upload.check(rows, upload.entry("alpaca", {"prompt": "instruction", "response": "answer"}, wrong.name))
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("not parquet at all")
    with pytest.raises(UserError, match="x.parquet: cannot read parquet.*magic bytes"):
        upload.read_upload(not_parquet)
    monkeypatch.setenv(upload.MAX_UPLOAD_ENV, "40")
    with pytest.raises(UserError, match=r"\(45 bytes\) is more than the 40 bytes an upload may hold"):
        upload.read_upload(bad_csv)
    with pytest.raises(UserError, match=r"\.txt is not a dataset file here"):
        upload.read_upload(tmp_path / "notes.txt")


def test_nothing_is_replaced_without_asking_and_backups_are_kept(tmp_path):
    src = sample_files(tmp_path / "in")
    data = tmp_path / "data"
    data.mkdir()
    (data / INFO_FILE).write_text(json.dumps({"old": {"file_name": "old.json"}}))
    e = upload.entry("alpaca", CASES["alpaca"][3], "x")
    upload.save(data, "mine", src["alpaca"], e)
    before = (data / INFO_FILE).read_text()
    assert json.loads((data / (INFO_FILE + ".bak")).read_text()) == {"old": {"file_name": "old.json"}}
    with pytest.raises(UserError, match=r"would replace the dataset 'mine' in .* and .*mine.csv; choose another name"):
        upload.save(data, "mine", src["text"], upload.entry("text", {"text": "text"}, "x"))
    assert (data / INFO_FILE).read_text() == before  # refused: nothing written
    old_csv = (data / "mine.csv").read_bytes()
    out = upload.save(data, "mine", src["text"], upload.entry("text", {"text": "text"}, "x"), overwrite=True)
    assert Path(out["file_backup"]).read_bytes() == old_csv and (data / "mine.csv.bak").is_file()
    assert Path(out["info_backup"]).read_text() == before
    assert load_dataset_info(data)["mine"].columns == {"text": "text"}
    # a dataset_info.json that does not parse is never written over, and the data file does not stay behind
    (data / INFO_FILE).write_text('{"old": {"file_name": "old.json"},')
    with pytest.raises(UserError, match="invalid JSON at line 1"):
        upload.save(data, "other", src["sharegpt"], upload.entry("sharegpt", {"messages": "conversations"}, "x"))
    assert (data / INFO_FILE).read_text() == '{"old": {"file_name": "old.json"},'
    assert not (data / "other.json").exists()
    with pytest.raises(UserError, match="cannot name a dataset"):
        upload.save(data, "../escape", src["text"], e)

"""A dataset file brought in from the browser: read it (line / column named when it is broken), guess its
format and column mapping, check the records convert, and register it under the dataset folder.

    read_upload(path) -> rows            propose(rows) -> {"format", "columns"}      entry(format, columns, file)
    check(rows, entry) -> report         save(dataset_dir, name, src, entry, overwrite) -> where it went

The formats are the ones dataset_info.json describes: alpaca, sharegpt, messages (OpenAI role/content turns),
preference (chosen / rejected), kto (a desirable/undesirable label) and plain text (pre-training).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import UserError
from .converters import Invalid, check_columns, convert_row
from .readers import read_file
from .registry import (BACKUP_SUFFIX, INFO_FILE, OPENAI_TAGS, _parse_entry, add_entry, data_kind, dataset_stage,
                       info_lock, load_dataset_info)

FORMATS = ("alpaca", "sharegpt", "messages", "preference", "kto", "text")
UPLOAD_EXTS = (".json", ".jsonl", ".csv", ".parquet")
MAX_UPLOAD_ENV, MAX_UPLOAD_BYTES = "TUNEBOARD_MAX_UPLOAD_BYTES", 256 << 20  # stated in the UI
# our column role -> column names that usually hold it (first match wins, in this order)
NAMES = {
    "messages": ("messages", "conversations", "conversation", "dialog", "dialogue", "chat", "turns"),
    "prompt": ("instruction", "prompt", "question", "query", "problem", "input"),
    "query": ("input", "context"),
    "response": ("output", "response", "answer", "completion", "solution", "target"),
    "system": ("system", "system_prompt"),
    "history": ("history",),
    "chosen": ("chosen", "preferred", "winner"),
    "rejected": ("rejected", "dispreferred", "loser"),
    "kto_tag": ("kto_tag", "label", "desirable", "is_good"),
    "text": ("text", "content", "document", "passage"),
}
ROLES_OF = {  # the column roles each format maps
    "alpaca": ("prompt", "query", "response", "system", "history"),
    "sharegpt": ("messages", "system"),
    "messages": ("messages", "system"),
    "preference": ("messages", "prompt", "query", "chosen", "rejected", "system"),
    "kto": ("messages", "prompt", "query", "response", "kto_tag", "system"),
    "text": ("text",),
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def max_bytes() -> int:
    try:
        return max(1, int(os.environ.get(MAX_UPLOAD_ENV) or MAX_UPLOAD_BYTES))
    except ValueError:
        raise UserError(f"{MAX_UPLOAD_ENV}: expected a number of bytes, got {os.environ.get(MAX_UPLOAD_ENV)!r}.") \
            from None


def limit_text() -> str:
    n = max_bytes()
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_upload(path: str | Path, shown_name: str | None = None) -> list[dict]:
    """The records of an uploaded file. UserError names the file and the line / column / record at fault."""
    p = Path(path)
    name = shown_name or p.name
    ext = p.suffix.lower()
    if ext not in UPLOAD_EXTS:
        raise UserError(f"{name}: {ext or 'no extension'} is not a dataset file here; upload "
                        f"{', '.join(UPLOAD_EXTS)}.")
    size = p.stat().st_size
    if size > max_bytes():
        raise UserError(f"{name}: {size / (1 << 20):.1f} MiB ({size} bytes) is more than the {limit_text()} an upload "
                        "may hold; "
                        f"copy bigger files into the dataset folder and add them to {INFO_FILE} by hand.")
    try:
        rows = read_file(p)
    except UserError as e:
        raise UserError(str(e).replace(str(p), name)) from None
    if not rows:
        raise UserError(f"{name}: no records in the file.")
    return rows


def columns_of(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows[:1000]:
        for k in r:
            seen.setdefault(str(k), None)
    return list(seen)


def _turn_keys(rows: list[dict], col: str) -> set:
    for r in rows[:50]:
        v = r.get(col)
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return set(v[0])
    return set()


def propose(rows: list[dict]) -> dict:
    """{"format", "columns": {role: column}} guessed from the column names and what the first records hold."""
    cols = columns_of(rows)
    lower = {c.lower(): c for c in cols}
    found: dict[str, str] = {}
    for role, names in NAMES.items():
        for n in names:
            if n in lower and lower[n] not in found.values():
                found[role] = lower[n]
                break
    turns = next((c for c in cols if _turn_keys(rows, c)), None)
    if turns and "messages" not in found:
        found["messages"] = turns
    msgs = found.get("messages") if found.get("messages") and _turn_keys(rows, found["messages"]) else None
    if "chosen" in found and "rejected" in found:
        fmt = "preference"
    elif "kto_tag" in found and (msgs or "response" in found):
        fmt = "kto"
    elif msgs:
        fmt = "messages" if {"role", "content"} <= _turn_keys(rows, msgs) else "sharegpt"
    elif "prompt" in found and "response" in found:
        fmt = "alpaca"
    elif "text" in found:
        fmt = "text"
    elif len(cols) == 1:
        fmt, found = "text", {"text": cols[0]}
    else:
        fmt = "alpaca"
    roles = ROLES_OF[fmt]
    mapping = {r: c for r, c in found.items() if r in roles}
    if fmt in ("preference", "kto") and msgs:  # conversation turns: the prompt columns are not used
        mapping = {r: c for r, c in mapping.items() if r not in ("prompt", "query", "response")}
    elif fmt in ("preference", "kto"):
        mapping.pop("messages", None)
    if fmt == "alpaca" and mapping.get("query") == mapping.get("prompt"):
        mapping.pop("query", None)
    return {"format": fmt, "columns": mapping}


def entry(fmt: str, columns: dict, file_name: str) -> dict:
    """The dataset_info.json entry for a file in this format with this column mapping."""
    if fmt not in FORMATS:
        raise UserError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}.")
    bad = sorted(set(columns) - set(ROLES_OF[fmt]))
    if bad:
        raise UserError(f"columns: {', '.join(bad)} do not belong to the {fmt} format (it maps "
                        f"{', '.join(ROLES_OF[fmt])}).")
    cols = {k: v for k, v in columns.items() if v}
    e: dict = {"file_name": file_name}
    uses_turns = fmt in ("sharegpt", "messages") or (fmt in ("preference", "kto") and "messages" in cols)
    e["formatting"] = "sharegpt" if uses_turns else "alpaca"
    if fmt == "preference":
        e["ranking"] = True
    if fmt == "text":
        cols = {"text": cols.get("text", "text")}
    e["columns"] = cols
    if fmt == "messages":  # (the reader also takes role/content turns under sharegpt's tags, and from/value)
        e["tags"] = {k: v for k, v in OPENAI_TAGS.items() if k != "function_tag"}
    return e


def stage_of(e: dict, name: str = "upload") -> str:
    """The training stage that reads a dataset of this entry (sft / dpo / kto / pt)."""
    return dataset_stage(_parse_entry(name, e, Path(INFO_FILE), Path(".")))


def check(rows: list[dict], e: dict, name: str = "upload") -> dict:
    """Convert every record as training would: {"stage", "total", "kept", "skipped": {reason: n}, "first_bad"}.
    A mapping to a column the file lacks, or no usable record at all, is a UserError that says which."""
    attr = _parse_entry(name, e, Path(INFO_FILE), Path("."))
    stage = dataset_stage(attr)
    check_columns(attr, rows, stage)
    kept, skipped, first_bad = 0, {}, None
    for i, row in enumerate(rows, 1):
        try:
            convert_row(attr, row, stage)
            kept += 1
        except Invalid as err:
            skipped[str(err)] = skipped.get(str(err), 0) + 1
            first_bad = first_bad or i
    if not kept:
        top = "; ".join(f"{n} x {r}" for r, n in sorted(skipped.items(), key=lambda kv: -kv[1])[:3])
        raise UserError(f"none of the {len(rows)} records is usable as {e['formatting']} data with this mapping "
                        f"({top}; the first is record {first_bad}). Check the format and the column mapping.")
    return {"stage": data_kind(stage), "total": len(rows), "kept": kept, "skipped": skipped, "first_bad": first_bad}


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise UserError(f"name: {name!r} cannot name a dataset; use letters, digits, _ . - (up to 64, starting "
                        "with a letter or digit).")
    return name


def suggest_name(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.\-]+", "_", Path(filename).stem).strip("_.-") or "dataset"
    return stem[:64]


def conflicts(dataset_dir: str | Path, name: str, ext: str) -> list[str]:
    """What a save under this name would replace: an entry of dataset_info.json, a file of the dataset folder."""
    d = Path(dataset_dir)
    out = []
    if (d / INFO_FILE).is_file():
        try:
            if name in load_dataset_info(d):
                out.append(f"the dataset {name!r} in {d / INFO_FILE}")
        except UserError:
            pass  # a broken dataset_info.json is reported by save(), which refuses to write over it
    target = d / f"{name}{ext}"
    if target.exists():
        out.append(str(target))
    return out


def save(dataset_dir: str | Path, name: str, src: str | Path, e: dict, overwrite: bool = False) -> dict:
    """Copy the file to <dataset_dir>/<name><ext> and add its entry to dataset_info.json. Whatever would be
    replaced is refused unless overwrite=True, and then kept as <file>.bak (dataset_info.json.bak likewise).
    The data file is written first (temp file + rename); if the entry cannot be written it is removed again."""
    name = check_name(name)
    d = Path(dataset_dir)
    src = Path(src)
    ext = src.suffix.lower()
    if ext not in UPLOAD_EXTS:
        raise UserError(f"{src.name}: not a {', '.join(UPLOAD_EXTS)} file.")
    with info_lock(d):
        clash = conflicts(d, name, ext)
        if clash and not overwrite:
            raise UserError(f"name: saving {name!r} would replace {' and '.join(clash)}; choose another name, or "
                            "tick overwrite (the old ones are kept as .bak).")
    d.mkdir(parents=True, exist_ok=True)
    target = d / f"{name}{ext}"
    e = {**e, "file_name": target.name}
    kept_file = None
    if target.exists():
        kept_file = target.with_name(target.name + BACKUP_SUFFIX)
        shutil.copy2(target, kept_file)
    tmp = target.with_name(f".{target.name}.upload")
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)
    try:
        info_backup = add_entry(d, name, e, replace=overwrite)
    except BaseException:
        if kept_file is not None:
            os.replace(kept_file, target)
        else:
            target.unlink(missing_ok=True)
        raise
    return {"name": name, "file": str(target), "entry": e, "info_backup": str(info_backup) if info_backup else None,
            "file_backup": str(kept_file) if kept_file else None}

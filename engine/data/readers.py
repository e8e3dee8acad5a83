"""Reading raw records (list of dicts) from a dataset's files or from a hub.

JSON / JSONL are parsed here rather than by `datasets` so a broken file is reported with its
line and column. CSV and Parquet go through pyarrow (installed with datasets).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..utils import UserError
from .registry import DatasetAttr

EXTS = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def data_files(attr: DatasetAttr) -> list[Path]:
    """The files behind a file dataset (a file, or the supported files of a folder, sorted)."""
    p = attr.path()
    if p is None or not p.exists():
        raise UserError(f"dataset {attr.name!r}: {p} does not exist (file_name in {attr.dataset_dir}/"
                        "dataset_info.json is relative to the dataset directory).")
    if p.is_file():
        if p.suffix.lower() not in EXTS:
            raise UserError(f"dataset {attr.name!r}: {p.name}: unsupported file type; use "
                            f"{', '.join(EXTS)} (or a folder of them).")
        return [p]
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in EXTS
                   and not any(part.startswith(".") for part in f.relative_to(p).parts))
    if not files:
        scripts = [f.name for f in p.glob("*.py")]
        hint = (" Dataset loading scripts are not supported; convert the data to json/jsonl/csv/parquet."
                if scripts else "")
        raise UserError(f"dataset {attr.name!r}: the folder {p} holds no {'/'.join(EXTS)} files.{hint}")
    kinds = {EXTS[f.suffix.lower()].replace("jsonl", "json") for f in files}
    if len(kinds) > 1:
        raise UserError(f"dataset {attr.name!r}: the folder {p} mixes file types; keep one type per dataset.")
    return files


def read_records(attr: DatasetAttr) -> list[dict]:
    if attr.load_from == "file":
        out: list[dict] = []
        for f in data_files(attr):
            out.extend(read_file(f))
        return out
    return _read_hub(attr)


def read_file(path: Path) -> list[dict]:
    kind = EXTS[path.suffix.lower()]
    if kind == "json":
        return _read_json(path)
    if kind == "jsonl":
        return _read_jsonl(path)
    if kind == "text":
        return [{"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        if kind == "csv":
            import pyarrow.csv as pcsv
            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=False))
        else:
            import pyarrow.parquet as pq
            table = pq.read_table(path)
    except Exception as e:  # pyarrow's errors name the row; keep them, add the file
        raise UserError(f"{path}: cannot read {kind}: {e}") from None
    return table.to_pylist()


def _read_json(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):
            return _read_jsonl(path)  # JSON Lines saved as .json
        raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}.") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and lists:  # {"data": [...]}
            data = lists[0]
        else:
            data = [data]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of objects, got {type(data).__name__}.")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise UserError(f"{path}: item {i + 1} of the list is {type(row).__name__}, expected an object "
                            "({\"column\": value, ...}).")
    return data


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with path.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: invalid JSON at line {n}, column {e.colno}: {e.msg}.") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}: line {n} is {type(row).__name__}, expected an object.")
            out.append(row)
    return out


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
        os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes")


def _read_hub(attr: DatasetAttr) -> list[dict]:
    url = attr.hf_hub_url if attr.load_from == "hf_hub" else attr.ms_hub_url
    hub = "Hugging Face" if attr.load_from == "hf_hub" else "ModelScope"
    fix = (f"Without a network, download it where there is one, save it as json/jsonl/parquet in the dataset "
           f"directory and set file_name for {attr.name!r} in dataset_info.json.")
    if attr.load_from == "hf_hub" and _offline():
        raise UserError(f"dataset {attr.name!r}: {url} is on the {hub} hub but HF_HUB_OFFLINE is set. {fix}")
    try:
        if attr.load_from == "hf_hub":
            import datasets
            ds = datasets.load_dataset(url, name=attr.subset, split=attr.split, data_dir=attr.folder,
                                       data_files=attr.file_name)
        else:
            from modelscope import MsDataset
            ds = MsDataset.load(url, subset_name=attr.subset, split=attr.split, data_dir=attr.folder)
            ds = ds.to_hf_dataset() if hasattr(ds, "to_hf_dataset") else ds
    except ImportError as e:
        raise UserError(f"dataset {attr.name!r}: loading from {hub} needs a package that is missing ({e}).") from None
    except Exception as e:
        raise UserError(f"dataset {attr.name!r}: could not load {url} from the {hub} hub "
                        f"({type(e).__name__}: {str(e)[:300]}). {fix}") from None
    return [dict(r) for r in ds]


def fingerprint(attr: DatasetAttr) -> list:
    """What identifies the data's content for the preprocessing cache: per file its size and mtime,
    plus a content hash for files under 64 MB (an edit that keeps size and mtime is still seen)."""
    import hashlib
    if attr.load_from != "file":
        return [attr.load_from, attr.hf_hub_url, attr.ms_hub_url, attr.subset, attr.split, attr.folder,
                attr.file_name]
    out = []
    for f in data_files(attr):
        st = f.stat()
        item = [str(f), st.st_size, st.st_mtime_ns]
        if st.st_size < 64 << 20:
            item.append(hashlib.sha256(f.read_bytes()).hexdigest())
        out.append(item)
    return out

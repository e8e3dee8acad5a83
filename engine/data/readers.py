"""Reading raw records (list of dicts) from a dataset's files or from a hub.

JSON / JSONL are parsed here rather than by `datasets` so a broken file is reported with its
line and column. CSV and Parquet go through pyarrow (installed with datasets).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

from ..errors import UserError
from .registry import DatasetAttr

EXTS = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}

# Limits that keep one bad file from taking all memory: a JSON Lines record or text line is read with a
# bounded readline, and a whole-document .json (parsed at once, ~5-10x its size in memory) has a size cap.
MAX_LINE_ENV, MAX_LINE_BYTES = "TUNEBOARD_MAX_LINE_BYTES", 16 << 20      # 16 MiB per line
MAX_JSON_ENV, MAX_JSON_BYTES = "TUNEBOARD_MAX_JSON_BYTES", 512 << 20     # 512 MiB per .json document


def _limit(env: str, default: int) -> int:
    try:
        v = int(os.environ.get(env, "") or default)
    except ValueError:
        raise UserError(f"{env}: expected a number of bytes, got {os.environ.get(env)!r}.") from None
    return max(v, 1)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def _not_utf8(path: Path, data: bytes, pos: int | None = None) -> UserError:
    """Wrong encoding: say where, what it looks like, and how to convert it."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (pos is None and b"\x00" in data[:4096]):
        kind = "UTF-16 text"
        fix = "iconv -f UTF-16 -t UTF-8"
    else:
        kind = "not UTF-8 (GBK/GB18030 or Latin-1?)"
        fix = "iconv -f GBK -t UTF-8"
    where = ""
    if pos is not None:
        line = data[:pos].count(b"\n") + 1
        col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
        where = f" at line {line}, column {col} (byte 0x{data[pos]:02x})"
    return UserError(f"{path}: {kind}{where}; save the file as UTF-8, for example `{fix} {path.name} > "
                     f"{path.stem}.utf8{path.suffix}`.")


def _decode(path: Path, data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise _not_utf8(path, data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, data, e.start) from None


def _lines(path: Path):
    """(line number, text) of a line-based file, each line read with a bounded readline."""
    limit = _limit(MAX_LINE_ENV, MAX_LINE_BYTES)
    with path.open("rb") as f:
        n = 0
        while True:
            raw = f.readline(limit + 1)
            if not raw:
                return
            n += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise UserError(f"{path}: line {n} is longer than {_mib(limit)}, the most one record may hold "
                                f"(a missing line break, or binary data?). Split it, or raise the limit with "
                                f"{MAX_LINE_ENV}=<bytes>.")
            if n == 1 and (raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw):
                raise _not_utf8(path, raw)
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                col = e.start + 1
                raise UserError(f"{path}: not UTF-8 at line {n}, column {col} (byte 0x{raw[e.start]:02x}; GBK or "
                                f"Latin-1?); save the file as UTF-8, for example `iconv -f GBK -t UTF-8 {path.name} "
                                f"> {path.stem}.utf8{path.suffix}`.") from None
            yield n, text


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
        return [{"text": line.rstrip("\r\n")} for _, line in _lines(path) if line.strip()]
    try:
        if kind == "csv":
            import pyarrow.csv as pcsv
            table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=False))
        else:
            import pyarrow.parquet as pq
            table = pq.read_table(path)
    except Exception as e:  # pyarrow's errors name the row; keep them, add the file (and the line it misses)
        where = _csv_bad_line(path) if kind == "csv" else ""
        raise UserError(f"{path}: cannot read {kind}{where}: {e}") from None
    return table.to_pylist()


def _csv_bad_line(path: Path) -> str:
    """" at line N" for the first CSV row whose number of fields differs from the header's (pyarrow's message
    quotes the row but not its line)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            width = len(next(reader, []))
            for row in reader:
                if row and len(row) != width:
                    return f" at line {reader.line_num} ({len(row)} fields, the header has {width})"
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return ""


def _read_json(path: Path) -> list[dict]:
    limit = _limit(MAX_JSON_ENV, MAX_JSON_BYTES)
    size = path.stat().st_size
    if size > limit:
        if _first_char(path) == "{":
            return _read_jsonl(path)  # JSON Lines saved as .json: read line by line, no document cap
        raise UserError(f"{path}: {_mib(size)} is more than one .json document may hold ({_mib(limit)}); save it as "
                        f"JSON Lines (.jsonl, one record per line), or raise the limit with {MAX_JSON_ENV}=<bytes>.")
    text = _decode(path, path.read_bytes())
    if not text.strip():
        raise UserError(f"{path}: the file is empty ({'0 bytes' if not size else 'only blank space'}): it holds no "
                        "records. Put a JSON list of records in it, or remove the dataset from dataset_info.json.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):
            return _read_jsonl(path)  # JSON Lines saved as .json
        hint = (" The file ends in the middle of the data: it looks truncated (an interrupted copy or download?)."
                if _cut_short(e, text) else "")
        raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}.{hint}") from None
    except RecursionError:
        raise UserError(f"{path}: the JSON is nested too deeply to be a dataset.") from None
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


def _cut_short(e: json.JSONDecodeError, text: str) -> bool:
    """The parser ran out of text: an unterminated string, or an error within the last few characters."""
    rest = text[e.pos:].rstrip()
    return e.msg.startswith("Unterminated string") or not rest or (
        len(rest) < 6 and '"' not in rest and not rest.endswith(("]", "}")))


def _first_char(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(4096).decode("utf-8-sig", errors="replace").lstrip()[:1]


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            hint = " (the last line is cut short: truncated file?)" if not line.endswith("\n") and \
                _cut_short(e, line) else ""
            raise UserError(f"{path}: invalid JSON at line {n}, column {e.colno}: {e.msg}{hint}.") from None
        except RecursionError:
            raise UserError(f"{path}: line {n} is nested too deeply to be a dataset record.") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {n} is {type(row).__name__}, expected an object.")
        out.append(row)
    return out


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
        os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes")


def _read_hub(attr: DatasetAttr) -> list[dict]:
    if attr.load_from == "om_hub":
        raise UserError(f"dataset {attr.name!r}: {attr.om_hub_url} is only on the Modelers hub, which is not "
                        "supported; download it, save it as json/jsonl/parquet in the dataset directory and set "
                        f"file_name for {attr.name!r} in dataset_info.json.")
    url = attr.hf_hub_url if attr.load_from == "hf_hub" else attr.ms_hub_url
    hub = "Hugging Face" if attr.load_from == "hf_hub" else "ModelScope"
    fix = (f"Without a network, download it where there is one, save it as json/jsonl/parquet in the dataset "
           f"directory and set file_name for {attr.name!r} in dataset_info.json.")
    if _offline():  # offline is meant for every hub: never wait on a network that is not there
        raise UserError(f"dataset {attr.name!r}: {url} is on the {hub} hub but HF_HUB_OFFLINE is set (offline). {fix}")
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

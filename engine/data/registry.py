"""dataset_info.json: dataset name -> where the data is and how its columns map to ours.

The schema is LLaMA-Factory's, so their dataset_info.json files work here. A broken file is an
error that names the file, line and column (or the dataset and key) — never an empty list.
No heavy imports: the web UI builds its dataset dropdown from this module.
"""
from __future__ import annotations

import difflib
import fcntl
import json
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..train.stages import get_stage
from ..utils import atomic_write_json, get_logger
from ..errors import UserError

log = get_logger()
INFO_FILE = "dataset_info.json"
BACKUP_SUFFIX = ".bak"  # the previous dataset_info.json, kept by every write

ENTRY_KEYS = {"file_name", "hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name", "file_sha1",
              "formatting", "ranking", "columns", "tags", "split", "num_samples", "subset", "folder"}
COLUMN_KEYS = {"prompt", "query", "response", "history", "system", "messages", "chosen", "rejected", "text",
               "kto_tag", "tools", "answer"}  # answer (ours): the reference of a prompt dataset (grpo), may be null
TOLERATED_COLUMNS = {"images", "videos", "audios"}  # accepted so the message can name them (text-only studio)
MEDIA_COLUMNS = ("images", "videos", "audios")  # a dataset with one of these is refused when it is trained on
TAG_KEYS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag", "observation_tag", "function_tag"}
FORMATTINGS = ("alpaca", "sharegpt", "openai")

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system", "observation_tag": "observation", "function_tag": "function_call"}
OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
               "system_tag": "system", "observation_tag": "tool", "function_tag": "function_call"}


@dataclass
class DatasetAttr:
    name: str
    load_from: str = "file"               # "file" | "hf_hub" | "ms_hub"
    file_name: str | None = None          # file or folder, relative to dataset_dir (or absolute)
    formatting: str = "alpaca"            # "alpaca" | "sharegpt"  ("openai" is read as sharegpt with role/content)
    ranking: bool = False
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    split: str = "train"
    num_samples: int | None = None
    subset: str | None = None
    hf_hub_url: str | None = None
    ms_hub_url: str | None = None
    folder: str | None = None
    dataset_dir: str | None = None        # where file_name is resolved from
    media: dict = field(default_factory=dict)  # images / videos / audios columns: multimodal, not trainable here
    om_hub_url: str | None = None

    def path(self) -> Path | None:
        if not self.file_name:
            return None
        p = Path(self.file_name)
        return p if p.is_absolute() else Path(self.dataset_dir or ".") / p

    def to_dict(self) -> dict:
        return asdict(self)


def read_json_file(path: Path) -> object:
    """json.load with an error that says file, line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise UserError(f"{path}: not UTF-8 text (line {line}); save the file as UTF-8.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}.") from None


def _bad(name: str, key: str, msg: str, path: Path) -> UserError:
    return UserError(f"{path}: dataset {name!r}, key {key!r}: {msg}")


def _check_keys(name: str, where: str, got: dict, known: set, path: Path, tolerated: set = frozenset()) -> None:
    for k in got:
        if k in known or k in tolerated:
            continue
        close = difflib.get_close_matches(k, sorted(known | tolerated), n=1, cutoff=0.75)
        if close:
            raise _bad(name, f"{where}{k}", f"unknown key; did you mean {close[0]!r}?", path)
        log.warning("%s: dataset %r: ignoring unknown key %r", path, name, f"{where}{k}")


def _parse_entry(name: str, e: object, path: Path, dataset_dir: Path) -> DatasetAttr:
    if not isinstance(e, dict):
        raise UserError(f"{path}: dataset {name!r} must be an object like {{\"file_name\": \"{name}.json\"}}, "
                        f"got {type(e).__name__}.")
    _check_keys(name, "", e, ENTRY_KEYS, path)
    for k in ("file_name", "hf_hub_url", "ms_hub_url", "script_url", "split", "subset", "folder", "formatting"):
        if k in e and e[k] is not None and not isinstance(e[k], str):
            raise _bad(name, k, f"must be text, got {e[k]!r}.", path)
    formatting = (e.get("formatting") or "alpaca").lower()
    if formatting not in FORMATTINGS:
        raise _bad(name, "formatting", f"{e['formatting']!r} is not one of alpaca, sharegpt.", path)
    ranking = e.get("ranking", False)
    if not isinstance(ranking, bool):
        raise _bad(name, "ranking", f"must be true or false, got {ranking!r}.", path)
    num = e.get("num_samples")
    if num is not None and (isinstance(num, bool) or not isinstance(num, int) or num < 1):
        raise _bad(name, "num_samples", f"must be a positive whole number, got {num!r}.", path)
    columns, tags = e.get("columns") or {}, e.get("tags") or {}
    for key, val, known, tol in (("columns", columns, COLUMN_KEYS, TOLERATED_COLUMNS), ("tags", tags, TAG_KEYS, set())):
        if not isinstance(val, dict):
            raise _bad(name, key, f"must be an object of name: column pairs, got {val!r}.", path)
        _check_keys(name, f"{key}.", val, known, path, tol)
        for k, v in val.items():
            if v is not None and not isinstance(v, str):
                raise _bad(name, f"{key}.{k}", f"must be a column/tag name (text), got {v!r}.", path)
    media = {k: v for k, v in columns.items() if v and k in MEDIA_COLUMNS}
    # "answer": null keeps the key: a prompt dataset (grpo) without a reference column
    columns = {k: v for k, v in columns.items() if (v or k == "answer") and k in COLUMN_KEYS}
    if formatting == "openai":
        formatting, tags = "sharegpt", {**OPENAI_TAGS, **tags}
    if formatting == "sharegpt":
        tags = {**SHAREGPT_TAGS, **{k: v for k, v in tags.items() if v}}
        columns.setdefault("messages", "conversations")
    else:
        tags = {}
    attr = DatasetAttr(name=name, formatting=formatting, ranking=ranking, columns=columns, tags=tags,
                       split=e.get("split") or "train", num_samples=num, subset=e.get("subset"),
                       hf_hub_url=e.get("hf_hub_url"), ms_hub_url=e.get("ms_hub_url"), folder=e.get("folder"),
                       dataset_dir=str(dataset_dir), media=media, om_hub_url=e.get("om_hub_url"))
    if e.get("hf_hub_url") or e.get("ms_hub_url"):
        attr.load_from = "hf_hub" if e.get("hf_hub_url") else "ms_hub"
        attr.file_name = e.get("file_name")
    elif e.get("script_url") or e.get("file_name"):
        # script_url names a local folder; dataset scripts no longer run (datasets>=4), its data files do.
        attr.file_name = e.get("file_name") or e.get("script_url")
    elif e.get("om_hub_url"):
        attr.load_from = "om_hub"  # Modelers hub: listed, refused with a message when loaded
    else:
        raise _bad(name, "file_name", "missing: give file_name (a file or folder in the dataset directory) "
                   "or hf_hub_url / ms_hub_url.", path)
    if ranking and formatting == "alpaca" and "text" in columns:
        raise _bad(name, "columns.text", "a ranking (preference) dataset has no pre-training text column.", path)
    if ranking and "kto_tag" in columns:  # pairs win: the dataset is listed for rm / dpo, not kto
        log.warning("%s: dataset %r is a ranking dataset; its columns.kto_tag is ignored", path, name)
        del attr.columns["kto_tag"]
    return attr


def load_dataset_info(dataset_dir: str | Path) -> dict[str, DatasetAttr]:
    """All datasets of dataset_dir/dataset_info.json, in file order. Raises UserError on any problem."""
    d = Path(dataset_dir)
    path = d / INFO_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; the dataset directory ({d}) needs a {INFO_FILE} "
                        "(set dataset_dir to the folder that holds it).")
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be an object of dataset_name: {{...}} entries.")
    return {str(name): _parse_entry(str(name), e, path, d) for name, e in data.items()}


def data_kind(stage: str) -> str:
    """The dataset kind (a dataset_stage value) a training stage reads (its record in engine.train.stages)."""
    return get_stage(stage).data


def dataset_stage(attr: DatasetAttr) -> str:
    """Which kind of data this is: "dpo" (ranking pairs, for dpo and rm), "kto" (answers with a kto_tag
    desirable/undesirable label), "prompt" (prompts with a reference answer column, for grpo: columns.answer,
    null when there is no reference), "pt" (a text column) or "sft"."""
    if attr.ranking:
        return "dpo"
    cols = attr.columns
    if "kto_tag" in cols:
        return "kto"
    if "answer" in cols:
        return "prompt"
    if "text" in cols:
        return "pt"
    if attr.formatting == "alpaca" and "prompt" in cols and not (set(cols) & {"query", "response", "history"}):
        return "pt"  # LLaMA-Factory's pre-training datasets: columns {"prompt": "text"}
    return "sft"


def list_datasets(dataset_dir: str | Path, stage: str | None = None) -> list[str]:
    """Dataset names (file order), only those `stage` can train on when given (no multimodal ones)."""
    info = load_dataset_info(dataset_dir)
    return [n for n, a in info.items() if stage is None or (dataset_stage(a) == data_kind(stage) and not a.media)]


@contextmanager
def info_lock(dataset_dir: str | Path):
    """One writer of dataset_info.json at a time (the web UI's upload, augmentation jobs, the CLI)."""
    d = Path(dataset_dir)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f".{INFO_FILE}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def add_entry(dataset_dir: str | Path, name: str, entry: dict, replace: bool = False) -> Path | None:
    """Add one dataset to dataset_dir/dataset_info.json (replace=True: also over an entry of that name), checked
    as any entry is read, written atomically; the previous file is kept beside it with BACKUP_SUFFIX (returned).
    A dataset_info.json that does not parse is refused, never overwritten."""
    d = Path(dataset_dir)
    path = d / INFO_FILE
    with info_lock(d):
        data = read_json_file(path) if path.is_file() else {}
        if not isinstance(data, dict):
            raise UserError(f"{path}: the top level must be an object of dataset_name: {{...}} entries; fix it "
                            "before adding a dataset (nothing was written).")
        if name in data and not replace:
            raise UserError(f"{path}: a dataset named {name!r} exists already; choose another name or ask to "
                            "replace it.")
        _parse_entry(name, entry, path, d)  # the same checks as reading it back
        backup = None
        if path.is_file():
            backup = path.with_name(INFO_FILE + BACKUP_SUFFIX)
            shutil.copy2(path, backup)
        atomic_write_json(path, {**data, name: entry})
    return backup

"""Datasets by name -> the records a run trains on, in the standard form of its stage.

    load_records(args, stage=None, names=None, keep_raw=False) -> Records
    duplicates(records) -> {"samples", "duplicates", "groups"}

One path, in this order: read the files (or the hub) -> dataset_info's num_samples (the first N, repeated when
the file is shorter) -> max_samples (per dataset) -> convert (unusable records skipped and counted) -> identity
substitution ({{name}} / {{author}}). Training (loader.get_dataset), the dataset inspector, the doctor's
duplicate scan and the web UI's preview all call it, so they all see the same records.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .converters import Invalid, convert_indexed, convert_row, replace_identity
from .readers import read_records
from .registry import DatasetAttr, dataset_stage, load_dataset_info
from ..train.stages import get_stage


def dataset_names(value) -> list[str]:
    """`a,b` or [a, b] -> [a, b]."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


@dataclass
class Records:
    stage: str
    rows: list[dict]                      # standard form, identity substituted, datasets in the order given
    sources: list[tuple[str, int]]        # per row: (dataset, index of its raw record in the dataset's files)
    report: dict[str, dict]               # per dataset: total (after num_samples / max_samples), kept, skipped
    raw: dict[str, list[dict]] = field(default_factory=dict)  # per dataset, its raw records (keep_raw=True)

    def raw_of(self, i: int) -> dict:
        """The raw record row i was converted from (needs keep_raw=True)."""
        name, k = self.sources[i]
        return self.raw[name][k]


def resolve(names: list[str], info: dict[str, DatasetAttr], dataset_dir, stage: str) -> list[DatasetAttr]:
    """dataset_info entries by name; an unknown name is an error that suggests the nearest and lists the rest."""
    out = []
    for n in names:
        if n not in info:
            fit = [k for k, a in info.items() if dataset_stage(a) == get_stage(stage).data]
            close = difflib.get_close_matches(n, list(info), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UserError(f"dataset: unknown dataset {n!r} (not in {Path(dataset_dir) / 'dataset_info.json'}).{hint} "
                            f"Known {stage} datasets: {', '.join(fit) or 'none'}; all datasets: {', '.join(info)}.")
        out.append(info[n])
    return out


def load_records(args, stage: str | None = None, names=None, *, keep_raw: bool = False) -> Records:
    """The records of `names` (default: args.dataset) for `stage` (default: args.stage), as training sees them.
    Raises UserError naming the dataset when one is unknown, empty, of another stage or has no usable record."""
    stage = stage or args.stage
    kind = get_stage(stage).data  # an unknown stage is refused here
    names = dataset_names(args.dataset if names is None else names)
    if not names:
        raise UserError("dataset: no dataset given; name one or more from dataset_info.json "
                        "(for example dataset=identity).")
    dataset_dir = args.dataset_dir
    attrs = resolve(names, load_dataset_info(dataset_dir), dataset_dir, stage)
    max_samples = args.max_samples
    name, author = args.identity_name, args.identity_author
    out = Records(stage, [], [], {})
    for attr in attrs:
        check_trainable(attr)
    for attr in attrs:
        raw = read_records(attr)
        order = list(range(len(raw)))
        if attr.num_samples and raw:
            order = [i % len(raw) for i in range(attr.num_samples)]
        if max_samples:
            order = order[:max_samples]
        rows = [raw[i] for i in order]
        conv, kept, skipped = convert_indexed(attr, rows, kind, stage)
        if not conv:
            reasons = "; ".join(f"{c} x {r}" for r, c in skipped.most_common(3))
            where = attr.path() or attr.hf_hub_url or attr.ms_hub_url
            raise UserError(f"dataset {attr.name!r} ({where}): none of its {len(rows)} samples is usable ({reasons}; "
                            f"the first is record {_first_invalid(attr, rows, kind)}). Check its formatting "
                            f"({attr.formatting}) and columns/tags mapping in dataset_info.json.")
        out.rows += [replace_identity(r, name, author) for r in conv]
        out.sources += [(attr.name, order[k]) for k in kept]
        out.report[attr.name] = {"total": len(rows), "kept": len(conv), "skipped": dict(skipped)}
        if keep_raw:
            out.raw[attr.name] = raw
    if any("tools" in r for r in out.rows):  # one shape for every row: datasets' from_list reads the first row's keys
        out.rows = [r if "tools" in r else {**r, "tools": None} for r in out.rows]
    return out


def check_trainable(attr: DatasetAttr) -> None:
    """Refuse, before any file is read, a dataset whose media this text-only studio cannot train on."""
    if attr.media:
        cols = ", ".join(f"{k} column {v!r}" for k, v in attr.media.items())
        raise UserError(f"dataset {attr.name!r}: multimodal training is not supported (its {cols} in "
                        f"dataset_info.json); TuneBoard trains text-only models. Choose a text dataset.")


def _first_invalid(attr: DatasetAttr, rows: list[dict], kind: str) -> int:
    """1-based number of the first record that cannot be converted (the line, in a JSON Lines file)."""
    for i, row in enumerate(rows, 1):
        try:
            convert_row(attr, row, kind)
        except Invalid:
            return i
    return 0


def duplicates(records: Records) -> dict:
    """Exact repeats among the records: {"samples": distinct source records, "duplicates": how many of them repeat
    an earlier one, "groups": [[row index, ...] per repeated content]}. The copies dataset_info's num_samples makes
    of one record are deliberate and not counted; the same text in two records (or two datasets) is."""
    by_key: dict[str, dict[tuple, int]] = {}
    for i, (row, src) in enumerate(zip(records.rows, records.sources)):
        by_key.setdefault(json.dumps(row, sort_keys=True, ensure_ascii=False), {}).setdefault(src, i)
    groups = [list(s.values()) for s in by_key.values() if len(s) > 1]
    return {"samples": len(set(records.sources)), "duplicates": sum(len(g) - 1 for g in groups), "groups": groups}

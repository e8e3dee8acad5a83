"""The records of a run (engine.data.records) -> tokenised train/eval sets with stats, cached on disk.

    load_examples(names, args, stage) -> datasets.Dataset in the standard form of `stage`
    get_dataset(args, tokenizer, template, stage) -> DatasetModule(train_dataset, eval_dataset, stats)

The cache lives in <dataset_dir>/.cache/<key> (git-ignored; ~/.cache/tuneboard/data when the
dataset directory is read-only). The key hashes the data files' contents, the dataset_info entries,
the template, the tokenizer's vocabulary, the data arguments that change the result and this
package's source, so a stale cache is never reused; overwrite_cache=true rebuilds anyway.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..args import ARGS
from ..utils import atomic_write_json, get_logger
from ..errors import UserError
from . import processing as P
from .readers import fingerprint
from .records import dataset_names, load_records, resolve
from .registry import DatasetAttr, load_dataset_info
from ..train.stages import get_stage

log = get_logger()
CACHE_KEEP = 10     # cache entries kept per cache folder (least recently used are removed)


@dataclass
class DatasetModule:
    train_dataset: Any
    eval_dataset: Any | None
    stats: dict = field(default_factory=dict)


# ---------------------------------------------------------------- loading (engine.data.records)

def load_examples(names: list[str], args, stage: str):
    """The named datasets in the standard form of `stage`, concatenated in order."""
    from datasets import Dataset

    recs = load_records(args, stage, names)
    _warn_skipped(recs.report)
    return Dataset.from_list(recs.rows)


def _warn_skipped(report: dict) -> None:
    for name, rep in report.items():
        if rep["skipped"]:
            log.warning("dataset %s: skipped %d of %d samples (%s)", name, sum(rep["skipped"].values()),
                        rep["total"], ", ".join(f"{c} x {r}" for r, c in rep["skipped"].items()))


# ---------------------------------------------------------------- splitting and tokenising

def _split(rows: list[dict], val_size: float, seed: int) -> tuple[list[dict], list[dict]]:
    n = len(rows)
    k = int(val_size) if val_size >= 1 else max(1, round(val_size * n))
    if k >= n:
        raise UserError(f"val_size: {val_size:g} leaves no training data ({n} samples); use a fraction below 1 "
                        f"or a count below {n}.")
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    ev = set(idx[:k])
    return [r for i, r in enumerate(rows) if i not in ev], [rows[i] for i in sorted(ev)]


def _batches(rows: list[dict], size: int = 1000):
    for k in range(0, len(rows), size):
        yield P.as_columns(rows[k:k + size])


def _map(rows: list[dict], fn, workers: int | None, **kw) -> dict[str, list]:
    """Apply a batched fn over rows: in-process, or with datasets.map across `workers` processes."""
    if workers and workers > 1 and len(rows) >= 1000:
        from datasets import Dataset
        ds = Dataset.from_list(rows).map(fn, batched=True, fn_kwargs=kw, num_proc=workers,
                                         remove_columns=list(rows[0]), new_fingerprint=f"tb{time.time_ns()}")
        return ds.to_dict()
    out: dict[str, list] = {}
    for b in _batches(rows):
        for k, v in fn(b, **kw).items():
            out.setdefault(k, []).extend(v)
    return out


def _default_system(rows: list[dict], system: str | None) -> list[dict]:
    if not system:
        return rows
    return [{**r, "system": r["system"] or system} for r in rows]


def _tokenise(rows: list[dict], args, tokenizer, template, stage: str) -> tuple[Any, dict]:
    """The stage's records -> its trainer's dataset and the length stats (the stage's batch + finish)."""
    from datasets import Dataset

    s = get_stage(stage)
    opts = P.options(args)
    if not s.packs:
        opts = replace(opts, packing=False)
    cols = _map(rows, s.batch, args.preprocessing_num_workers, tokenizer=tokenizer, template=template,
                opts=opts)
    data, st = s.finish(cols, opts)
    return Dataset.from_dict(data), st


def _merge_stats(a: dict, b: dict) -> dict:
    """Stats of train and eval together (lengths recomputed from their parts where exact)."""
    n = a["kept"] + b["kept"]
    return {
        "kept": n, "truncated": a["truncated"] + b["truncated"],
        "max_len": max(a["max_len"], b["max_len"]),
        "mean_len": round((a["mean_len"] * a["kept"] + b["mean_len"] * b["kept"]) / n, 1) if n else 0.0,
        "p50": a["p50"], "p95": a["p95"],  # of the training part
        "tokens": a["tokens"],
    }


# ---------------------------------------------------------------- cache

_SOURCES = ("converters.py", "processing.py", "templates.py", "collator.py", "loader.py", "readers.py",
            "registry.py", "records.py", "../train/stages.py")  # stages: which encoder each stage uses


def _tokenizer_fingerprint(tokenizer) -> str:
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps([tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token,
                         str(getattr(tokenizer, "chat_template", ""))]).encode())
    return h.hexdigest()


def cache_key(args, tokenizer, template, stage: str, attrs: list[DatasetAttr], eval_attrs: list[DatasetAttr]) -> str:
    here = Path(__file__).parent
    code = hashlib.sha256(b"".join((here / f).read_bytes() for f in _SOURCES)).hexdigest()
    # the schema's preprocess arguments; the split (val_size, seed) only counts when no eval_dataset replaces it.
    # Dataset names, template and model enter through what they resolve to: files, template fields, vocabulary.
    split = ("val_size", "seed")
    payload = {
        "code": code, "stage": stage,
        "datasets": [[a.to_dict(), fingerprint(a)] for a in attrs],
        "eval": [[a.to_dict(), fingerprint(a)] for a in eval_attrs],
        "split": None if eval_attrs else [getattr(args, k) for k in split],
        "args": {a.name: getattr(args, a.name) for a in ARGS if a.preprocess and a.name not in split},
        "template": template.to_dict(), "tokenizer": _tokenizer_fingerprint(tokenizer),
    }
    if get_stage(stage).shuffles:  # the rows are shuffled with the seed
        payload["shuffle_seed"] = args.seed
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cache_root(dataset_dir) -> Path:
    root = Path(dataset_dir) / ".cache"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    root = Path.home() / ".cache" / "tuneboard" / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root


class _quiet:
    """No datasets progress bars while saving/loading the cache (they flood running.log)."""

    def __enter__(self):
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars
        self.was = are_progress_bars_disabled()
        disable_progress_bars()

    def __exit__(self, *exc):
        from datasets.utils import enable_progress_bars
        if not self.was:
            enable_progress_bars()


def _load_cached(path: Path):
    from datasets import load_from_disk
    stats = json.loads((path / "stats.json").read_text())
    train = load_from_disk(str(path / "train"))
    ev = load_from_disk(str(path / "eval")) if (path / "eval").is_dir() else None
    return train, ev, stats


def _save_cached(path: Path, train, ev, stats: dict) -> None:
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    train.save_to_disk(str(tmp / "train"))
    if ev is not None:
        ev.save_to_disk(str(tmp / "eval"))
    atomic_write_json(tmp / "stats.json", stats)
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.replace(tmp, path)
    except OSError:  # another process (another rank) finished the same entry first
        shutil.rmtree(tmp, ignore_errors=True)
    entries = sorted((p for p in path.parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[CACHE_KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- get_dataset

def get_dataset(args, tokenizer, template, stage: str) -> DatasetModule:
    """Tokenised train (and eval) datasets for the trainer of `stage`, with stats; cached on disk."""
    packs = get_stage(stage).packs  # an unknown stage is refused here
    names, eval_names = dataset_names(args.dataset), dataset_names(args.eval_dataset)
    if not names:
        raise UserError("dataset: no dataset given; name one or more from dataset_info.json "
                        "(for example dataset=identity).")
    dataset_dir = args.dataset_dir
    info = load_dataset_info(dataset_dir)
    attrs = resolve(names, info, dataset_dir, stage)
    eval_attrs = resolve(eval_names, info, dataset_dir, stage)
    key = cache_key(args, tokenizer, template, stage, attrs, eval_attrs)
    path = cache_root(dataset_dir) / key
    if not args.overwrite_cache and (path / "stats.json").is_file():
        try:
            with _quiet():
                train, ev, stats = _load_cached(path)
        except Exception as e:  # a damaged entry is rebuilt, not fatal
            log.warning("preprocessing cache %s unreadable (%s); rebuilding", path, e)
        else:
            os.utime(path)
            stats.update(cache="hit", cache_dir=str(path))
            log.info("data: %s (cached)", stats.get("summary", ""))
            return DatasetModule(train, ev, stats)

    t0 = time.time()
    recs = load_records(args, stage, names)
    rows, report = recs.rows, recs.report
    del recs
    default_system = args.default_system
    val_size = float(args.val_size or 0.0)
    if eval_names:
        if val_size:
            log.warning("val_size=%g ignored: eval_dataset %s is used for evaluation", val_size, ",".join(eval_names))
        ev_recs = load_records(args, stage, eval_names)
        eval_rows, eval_report = ev_recs.rows, ev_recs.report
        del ev_recs
    elif val_size > 0:
        rows, eval_rows = _split(rows, val_size, int(args.seed))
        eval_report = {}
    else:
        eval_rows, eval_report = [], {}
    train, st = _tokenise(_default_system(rows, default_system), args, tokenizer, template, stage)
    ev, est = (None, None)
    if eval_rows:
        ev, est = _tokenise(_default_system(eval_rows, default_system), args, tokenizer, template, stage)

    skipped = Counter()
    for rep in list(report.values()) + list(eval_report.values()):
        skipped.update(rep["skipped"])
    total = sum(r["total"] for r in report.values()) + sum(r["total"] for r in eval_report.values())
    merged = _merge_stats(st, est) if est else st
    cutoff = int(args.cutoff_len)
    stats = {
        "stage": stage, "datasets": names, "eval_datasets": eval_names,
        "total": total, "kept": merged["kept"], "truncated": merged["truncated"],
        "dropped": sum(skipped.values()), "dropped_reasons": dict(skipped),
        "max_len": merged["max_len"], "mean_len": merged["mean_len"], "p50": st["p50"], "p95": st["p95"],
        "tokens": st["tokens"], "cutoff_len": cutoff,
        "train_samples": st["kept"], "eval_samples": est["kept"] if est else 0,
        "train_rows": st["rows"], "eval_rows": est["rows"] if est else 0,
        "packing": P.options(args).packing and packs,
        "template": template.name, "seconds": round(time.time() - t0, 2),
    }
    for k in ("fill", "packed_from", "split_texts", "desirable", "undesirable"):  # what the stage's finish adds
        if k in st:
            stats[k] = st[k]
    _check_cut(stats)
    stats["summary"] = summary(stats)
    try:
        with _quiet():
            _save_cached(path, train, ev, stats)
            train, ev, _ = _load_cached(path)  # memory-mapped from disk, like every later run
    except OSError as e:
        log.warning("could not write the preprocessing cache %s (%s); continuing without it", path, e)
    stats.update(cache="miss", cache_dir=str(path))
    log.info("data: %s", stats["summary"])
    return DatasetModule(train, ev, stats)


def _check_cut(stats: dict) -> None:
    if stats["kept"] == 0:
        raise UserError(f"dataset: no usable samples in {', '.join(stats['datasets'])} ({stats['total']} read, "
                        f"{stats['dropped']} skipped: {stats['dropped_reasons']}). Check the columns mapping.")
    if stats["truncated"] == stats["kept"]:  # pt splits long texts instead: it never counts one as truncated
        raise UserError(
            f"cutoff_len: every sample is cut by cutoff_len={stats['cutoff_len']}: {stats['kept']} samples, "
            f"lengths p50 {stats['p50']} / p95 {stats['p95']} / max {stats['max_len']} tokens. "
            f"Raise cutoff_len to {stats['max_len']} to keep every sample whole (at least {stats['p95']}), "
            "or use shorter samples.")
    if stats["truncated"] > 0.1 * stats["kept"]:
        log.warning("cutoff_len=%d cuts %d of %d samples (p95 length %d, max %d); consider cutoff_len=%d",
                    stats["cutoff_len"], stats["truncated"], stats["kept"], stats["p95"], stats["max_len"],
                    stats["max_len"])


def summary(s: dict) -> str:
    parts = [f"{s['stage']} {'+'.join(s['datasets'])}: {s['total']} samples, kept {s['kept']}",
             f"truncated {s['truncated']}", f"dropped {s['dropped']}"
             + (f" ({', '.join(f'{c} x {r}' for r, c in s['dropped_reasons'].items())})" if s["dropped"] else ""),
             f"length p50 {s['p50']} / p95 {s['p95']} / max {s['max_len']} (cutoff_len {s['cutoff_len']})",
             f"{s['tokens']} trainable tokens" if s["tokens"] is not None else "trained tokens: sampled in training",
             f"train {s['train_rows']} rows / eval {s['eval_rows']} rows"]
    if s.get("packing"):
        parts.append(f"packed {s.get('packed_from', 0)} -> {s['train_rows']} rows, fill {s.get('fill', 0):.0%}")
    return ", ".join(parts)

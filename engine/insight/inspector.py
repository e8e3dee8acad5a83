"""A dataset against a recipe, before training: how long the samples are next to cutoff_len, what gets cut or
dropped, duplicates, empty fields, which languages, and one sample as the model sees it.

    inspect_dataset(recipe=None, overrides=(), values=None, sample=0) -> report dict
    render(report, lang) -> plain words

Samples are read, converted and tokenised with the same functions training uses (engine.data.records.load_records,
resolve_template, processing), so the truncated / dropped counts here are the ones the run will have.
"""
from __future__ import annotations

import unicodedata
from collections import Counter

from ..config import load_config
from ..data import processing as P
from ..train.stages import get_stage
from .words import t

HIST_BINS = 20


def _script(ch: str) -> str | None:
    o = ord(ch)
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
        return "zh"
    if 0x3040 <= o <= 0x30FF:
        return "ja"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
        return "ko"
    if 0x0400 <= o <= 0x04FF:
        return "cyrillic"
    if 0x0600 <= o <= 0x06FF:
        return "arabic"
    if ch.isalpha():
        return "latin" if unicodedata.name(ch, "").startswith("LATIN") else "other"
    return None


def language_of(text: str) -> str:
    """The script most of a text is written in; 'mixed' when a second one holds over a fifth of it. A Han or
    Hangul character carries about as much as a word of an alphabet, so alphabet letters weigh a quarter.
    Kana anywhere means Japanese."""
    c = Counter(s for s in map(_script, text) if s)
    if not c:
        return "none"
    if c.get("ja"):
        return "ja"
    weighted = Counter({k: v * (0.25 if k in _ALPHABETS else 1.0) for k, v in c.items()})
    (top, n), *rest = weighted.most_common()
    if rest and rest[0][1] > 0.2 * sum(weighted.values()):
        return "mixed"
    return top


_ALPHABETS = ("latin", "cyrillic", "arabic", "other")


def _text_of(row: dict) -> str:
    """Every text of a standard record (engine.data.converters), whatever its kind; not the tool list."""
    parts = [row["text"]] if "text" in row else [row.get("system") or ""] + [m["content"] for m in row["messages"]]
    return "\n".join(parts + [row[k] for k in ("chosen", "rejected", "completion") if k in row])


def _histogram(lengths: list[int], cutoff: int) -> list[dict]:
    if not lengths:
        return []
    hi = max(max(lengths), cutoff)
    width = max(1, -(-hi // HIST_BINS))
    counts = Counter(min(x // width, HIST_BINS - 1) for x in lengths)
    return [{"from": i * width, "to": (i + 1) * width, "count": counts.get(i, 0),
             "over_cutoff": i * width >= cutoff} for i in range(HIST_BINS) if i * width <= hi]


def inspect_dataset(recipe=None, overrides=(), values: dict | None = None, sample: int = 0) -> dict:
    from ..data.records import duplicates, load_records
    from ..data.templates import resolve_template
    from ..models.loader import load_tokenizer

    ns = load_config(None, dict(values), "train", finalize=False) if values is not None else \
        load_config(recipe, overrides or (), "train", finalize=False)
    stage = get_stage(ns.stage)
    recs = load_records(ns, ns.stage)  # the records training will see
    rows, names = recs.rows, list(recs.report)
    dropped = Counter()
    for rep in recs.report.values():
        dropped.update(rep["skipped"])
    read = sum(rep["total"] for rep in recs.report.values())
    per_dataset = {n: {"read": rep["total"], "kept": rep["kept"], "dropped": sum(rep["skipped"].values())}
                   for n, rep in recs.report.items()}
    tok = load_tokenizer(ns)
    tpl = resolve_template(ns, tok)
    cutoff = int(ns.cutoff_len)

    # the stage's own encoder: full length and whether cutoff_len cuts it, per record (pt: a long text is split,
    # never cut; its continuation chunks have no length of their own)
    cols = stage.batch(P.as_columns(rows), tok, tpl, P.options(ns)) if rows else {P.LEN: [], P.TRUNC: []}
    measured = [(int(n), bool(c)) for n, c in zip(cols[P.LEN], cols[P.TRUNC]) if n > 0]
    lengths = [n for n, _ in measured]
    truncated = sum(c for _, c in measured)
    srt = sorted(lengths)

    dups = duplicates(recs)
    conflicts = 0
    if stage.target:  # one answer per prompt: the same prompt taught two answers
        answers: dict[str, set] = {}
        for r in rows:
            q, a = stage.target(r)
            answers.setdefault(q, set()).add(a)
        conflicts = sum(1 for a in answers.values() if len(a) > 1)
    empty = Counter()
    for r in rows:
        if "messages" not in r:  # pre-training text
            continue
        if any(m["role"] == "user" and not m["content"].strip() for m in r["messages"]):
            empty["empty_prompt"] += 1
        if r.get("system") is not None and isinstance(r.get("system"), str) and r["system"] and not r["system"].strip():
            empty["blank_system"] += 1
    for reason, c in dropped.items():
        empty[f"dropped: {reason}"] += c
    langs = Counter(language_of(_text_of(r)) for r in rows)
    idx = min(max(0, int(sample)), len(rows) - 1) if rows else 0
    return {
        "datasets": names, "stage": ns.stage, "template": tpl.name, "cutoff_len": cutoff,
        "read": read, "kept": len(rows), "dropped": sum(dropped.values()), "dropped_reasons": dict(dropped),
        "per_dataset": per_dataset,
        "truncated": truncated, "truncated_pct": round(100 * truncated / len(rows), 1) if rows else 0.0,
        "lengths": {"min": srt[0] if srt else 0, "p50": P.percentile(srt, 0.5), "p90": P.percentile(srt, 0.9),
                    "p95": P.percentile(srt, 0.95), "p99": P.percentile(srt, 0.99), "max": srt[-1] if srt else 0,
                    "mean": round(sum(srt) / len(srt), 1) if srt else 0.0},
        "histogram": _histogram(lengths, cutoff),
        "suggested_cutoff_len": _suggest(srt, cutoff),
        "duplicates": dups["duplicates"], "duplicate_groups": len(dups["groups"]),
        "duplicate_examples": [rows[g[0]] for g in dups["groups"][:3]],
        "conflicting_answers": conflicts,
        "empty_fields": dict(empty),
        "languages": dict(langs.most_common()),
        "sample_index": idx,
        "sample": [[text, kind is not None] for text, kind in P.mark_trained(rows[idx], ns.stage, tok, tpl, ns)]
        if rows else [],
    }


def _suggest(srt: list[int], cutoff: int) -> int | None:
    """The smallest power of two that keeps 99 % of samples whole, when cutoff_len cuts more than 1 %."""
    if not srt:
        return None
    p99 = P.percentile(srt, 0.99)
    if p99 <= cutoff:
        return None
    n = 16
    while n < p99:
        n *= 2
    return n


def render(rep: dict, lang: str = "en") -> str:
    def w(k):
        return t(f"ins_{k}", lang)
    L = rep["lengths"]
    lines = [f"{w('samples')}: {w('read')} {rep['read']}, {w('kept')} {rep['kept']}, {w('dropped')} {rep['dropped']}"
             + (f" ({'; '.join(f'{c} x {r}' for r, c in rep['dropped_reasons'].items())})" if rep['dropped'] else ""),
             f"{w('lengths')}: p50 {L['p50']} / p90 {L['p90']} / p95 {L['p95']} / p99 {L['p99']} / max {L['max']}; "
             f"cutoff_len {rep['cutoff_len']}: {rep['truncated']} ({rep['truncated_pct']}%) {w('cut')}"
             + (f"; {w('suggest')} {rep['suggested_cutoff_len']}" if rep["suggested_cutoff_len"] else "")]
    peak = max((b["count"] for b in rep["histogram"]), default=0) or 1
    for b in rep["histogram"]:
        bar = "#" * max(0, round(30 * b["count"] / peak))
        mark = " >cutoff" if b["over_cutoff"] else ""
        lines.append(f"  {b['from']:>6}-{b['to']:<6} {b['count']:>6} {bar}{mark}")
    lines.append(f"{w('dups')}: {rep['duplicates']} ({rep['duplicate_groups']} {w('groups')}); "
                 f"{w('conflicts')}: {rep['conflicting_answers']}")
    lines.append(f"{w('empty')}: " + (", ".join(f"{k} {v}" for k, v in rep["empty_fields"].items()) or w("none")))
    lines.append(f"{w('langs')}: " + ", ".join(f"{k} {v}" for k, v in rep["languages"].items()))
    lines.append(f"{w('sample')} #{rep['sample_index']} ({w('trained')}):")
    lines.append("".join(f"[[{piece}]]" if tr else piece for piece, tr in rep["sample"]))
    return "\n".join(lines)

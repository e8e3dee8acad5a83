"""A dataset against a recipe, before training: how long the samples are next to cutoff_len, what gets cut or
dropped, duplicates, empty fields, which languages, and one sample as the model sees it.

    inspect_dataset(recipe=None, overrides=(), values=None, sample=0) -> report dict
    render(report, lang) -> plain words

Samples are read, converted and tokenised with the same functions training uses (engine.data), so the
truncated / dropped counts here are the ones the run will have.
"""
from __future__ import annotations

import json
import unicodedata
from collections import Counter

from ..config import load_config
from ..data import processing as P
from ..utils import UserError

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


def _text_of(row: dict, stage: str) -> str:
    if stage == "pt":
        return row["text"]
    parts = [row.get("system") or ""] + [m["content"] for m in row["messages"]]
    if stage == "dpo":
        parts += [row["chosen"], row["rejected"]]
    if stage == "kto":
        parts.append(row["completion"])
    return "\n".join(parts)


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def _histogram(lengths: list[int], cutoff: int) -> list[dict]:
    if not lengths:
        return []
    hi = max(max(lengths), cutoff)
    width = max(1, -(-hi // HIST_BINS))
    counts = Counter(min(x // width, HIST_BINS - 1) for x in lengths)
    return [{"from": i * width, "to": (i + 1) * width, "count": counts.get(i, 0),
             "over_cutoff": i * width >= cutoff} for i in range(HIST_BINS) if i * width <= hi]


def _marked(row: dict, stage: str, tok, tpl, ns) -> list[list]:
    """[[text, trained?], ...]: the sample after the template and cutoff, split where training starts/stops."""
    if stage == "pt":
        ids = P.pt_texts({"text": [row["text"]]}, tok, tpl, ns.cutoff_len)["input_ids"][0]
        return [[tok.decode(ids, skip_special_tokens=False), True]]
    if stage == "dpo":
        out = P.dpo_batch({"system": [row.get("system") or ""], "messages": [row["messages"]],
                           "chosen": [row["chosen"]], "rejected": [row["rejected"]]}, tok, tpl, ns.cutoff_len)
        return [[out["prompt"][0], False], [out["chosen"][0], True], ["\n", False], [out["prompt"][0], False],
                [out["rejected"][0], True]]
    if stage == "kto":
        out = P.kto_batch({"system": [row.get("system") or ""], "messages": [row["messages"]],
                           "completion": [row["completion"]], "label": [row["label"]]}, tok, tpl, ns.cutoff_len)
        return [[out["prompt"][0], False], [out["completion"][0], True]]
    enc = P.encode_sft(row["messages"], row.get("system") or "", tok, tpl, ns.cutoff_len,
                       bool(ns.train_on_prompt), bool(ns.mask_history))
    spans: list[list] = []
    cur: list[int] = []
    state = None
    for tid, lab in zip(enc["input_ids"], enc["labels"]):
        trained = lab != -100
        if cur and trained != state:
            spans.append([tok.decode(cur, skip_special_tokens=False), state])
            cur = []
        cur.append(tid)
        state = trained
    if cur:
        spans.append([tok.decode(cur, skip_special_tokens=False), state])
    return spans


def inspect_dataset(recipe=None, overrides=(), values: dict | None = None, sample: int = 0) -> dict:
    from ..data.converters import convert, replace_identity
    from ..data.readers import read_records
    from ..data.registry import data_kind, load_dataset_info
    from ..data.templates import get_template
    from ..models.loader import load_tokenizer
    from ..models.registry import default_template

    ns = load_config(None, dict(values), "train", finalize=False) if values is not None else \
        load_config(recipe, overrides or (), "train", finalize=False)
    names = ns.dataset or []
    if not names:
        raise UserError("dataset: no dataset given; name one or more from dataset_info.json.")
    stage = data_kind(ns.stage)  # the kind of data the stage reads (rm reads dpo's pairs)
    info = load_dataset_info(ns.dataset_dir)
    unknown = [n for n in names if n not in info]
    if unknown:
        raise UserError(f"dataset: unknown dataset {unknown[0]!r} in {ns.dataset_dir}/dataset_info.json; "
                        f"known: {', '.join(info)}.")
    rows, dropped, read = [], Counter(), 0
    per_dataset = {}
    for n in names:
        raw = read_records(info[n])
        if ns.max_samples:
            raw = raw[:ns.max_samples]
        conv, skipped = convert(info[n], raw, stage)
        conv = [replace_identity(r, ns.identity_name, ns.identity_author) for r in conv]
        read += len(raw)
        dropped.update(skipped)
        rows += conv
        per_dataset[n] = {"read": len(raw), "kept": len(conv), "dropped": sum(skipped.values())}
    tok = load_tokenizer(ns)
    tpl = get_template(ns.template or default_template(ns.model_name_or_path), tok, ns.default_system)
    tpl.fix_tokenizer(tok)
    cutoff = int(ns.cutoff_len)

    lengths, truncated = [], 0
    for r in rows:
        if stage == "pt":
            ids = tpl.bos_ids(tok) + tok.encode(r["text"], add_special_tokens=False) + [tok.eos_token_id]
            full = len(ids)
            cut = False  # pre-training text is split into cutoff_len blocks, nothing is lost
        elif stage == "dpo":
            out = P.dpo_batch({"system": [r.get("system") or ""], "messages": [r["messages"]], "chosen": [r["chosen"]],
                               "rejected": [r["rejected"]]}, tok, tpl, cutoff)
            full, cut = out[P.LEN][0], out[P.TRUNC][0]
        elif stage == "kto":
            out = P.kto_batch({"system": [r.get("system") or ""], "messages": [r["messages"]],
                               "completion": [r["completion"]], "label": [r["label"]]}, tok, tpl, cutoff)
            full, cut = out[P.LEN][0], out[P.TRUNC][0]
        else:
            e = P.encode_sft(r["messages"], r.get("system") or "", tok, tpl, cutoff, bool(ns.train_on_prompt),
                             bool(ns.mask_history))
            full, cut = e[P.LEN], e[P.TRUNC]
        lengths.append(int(full))
        truncated += bool(cut)
    srt = sorted(lengths)

    seen = Counter(_key(r) for r in rows)
    dup_groups = {k: c for k, c in seen.items() if c > 1}
    conflicts = 0
    if stage == "sft":
        answers: dict[str, set] = {}
        for r in rows:
            q = json.dumps([r.get("system") or "", r["messages"][:-1]], sort_keys=True, ensure_ascii=False)
            answers.setdefault(q, set()).add(r["messages"][-1]["content"])
        conflicts = sum(1 for a in answers.values() if len(a) > 1)
    empty = Counter()
    for r in rows:
        if stage == "pt":
            continue
        if any(m["role"] == "user" and not m["content"].strip() for m in r["messages"]):
            empty["empty_prompt"] += 1
        if r.get("system") is not None and isinstance(r.get("system"), str) and r["system"] and not r["system"].strip():
            empty["blank_system"] += 1
    for reason, c in dropped.items():
        empty[f"dropped: {reason}"] += c
    langs = Counter(language_of(_text_of(r, stage)) for r in rows)
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
        "duplicates": sum(c - 1 for c in dup_groups.values()), "duplicate_groups": len(dup_groups),
        "duplicate_examples": [json.loads(k) for k in list(dup_groups)[:3]],
        "conflicting_answers": conflicts,
        "empty_fields": dict(empty),
        "languages": dict(langs.most_common()),
        "sample_index": idx,
        "sample": _marked(rows[idx], stage, tok, tpl, ns) if rows else [],
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


_W = {
    "samples": ("Samples", "样本"), "read": ("read", "读取"), "kept": ("kept", "保留"),
    "dropped": ("dropped", "丢弃"), "lengths": ("Token lengths (after the template)", "token 长度（套用模板后）"),
    "cut": ("cut by cutoff_len", "被 cutoff_len 截断"), "suggest": ("suggested cutoff_len", "建议的 cutoff_len"),
    "dups": ("Duplicates", "重复"), "groups": ("groups", "组"), "conflicts": ("same prompt, different answers",
                                                                          "同一提示不同回答"),
    "empty": ("Empty fields", "空字段"), "langs": ("Languages", "语言"), "sample": ("Sample", "样本"),
    "trained": ("trained tokens in [[ ]]", "[[ ]] 内为参与训练的 token"), "none": ("none", "无"),
}


def render(rep: dict, lang: str = "en") -> str:
    i = 1 if lang == "zh" else 0

    def w(k):
        return _W[k][i]
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
    lines.append("".join(f"[[{t}]]" if tr else t for t, tr in rep["sample"]))
    return "\n".join(lines)

"""Standard-form examples -> what the trainers consume, with per-example length facts for the stats.

sft: input_ids / labels (prompt tokens -100 unless train_on_prompt; with mask_history only the last
     answer is trained). Over cutoff_len, whole turns are kept while they fit; a turn that does not fit
     on its own has its budget split between prompt and answer so part of the answer always stays.
pt:  text + eos. packing off: the token stream of all texts is cut into cutoff_len blocks (no padding,
     the usual causal-LM recipe; eos marks where a text ends). packing on: each text (split into
     cutoff_len chunks when longer) stays its own sequence and rows are packed with no attention across
     texts — as dense as blocks, without one text attending to another.
dpo: strings for trl: prompt = rendered conversation ending with the assistant header, chosen/rejected =
     answer + stop word. A prompt too long for cutoff_len is cut from the left so trl keeps part of
     each answer instead of dropping the pair.
kto: the same strings for one answer (completion) and its desirable/undesirable label.
rm:  token ids for trl's RewardTrainer: chosen_ids / rejected_ids = prompt + answer, cut to cutoff_len here
     (the trainer would drop a pair that is too long instead of cutting it).
grpo: the prompt as text (ending with the assistant header, cut from the left to cutoff_len) and its reference
     answer; trl samples the completions.
mark_trained: one record split into trained / untrained text, from the same encoders (the previews).

Each stage's record (engine.train.stages) names its functions here: `*_chunk(batch, tokenizer, template, opts)`
over a chunk of records (run in worker processes when the data is large), `finish_*(columns, opts)` -> (the
trainer's dataset columns, stats), `mark_*` for the previews and `*_lengths` for the estimate.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass

from .collator import IGNORE, pack_rows

# Columns added during tokenisation for the stats, removed before the dataset is returned.
LEN, TRUNC, TOKENS = "_full_len", "_truncated", "_tokens"
SPLIT = "_split"  # pt: a text longer than cutoff_len goes on in the next chunk (nothing is lost, nothing is cut)


@dataclass(frozen=True)
class Options:
    """The data arguments tokenisation reads (engine.args names); picklable for the worker processes."""
    cutoff_len: int = 1024
    train_on_prompt: bool = False
    mask_history: bool = False
    packing: bool = False
    seed: int = 42


def options(args) -> Options:
    return Options(cutoff_len=int(args.cutoff_len),
                   train_on_prompt=bool(args.train_on_prompt),
                   mask_history=bool(args.mask_history),
                   packing=bool(args.packing or args.neat_packing),
                   seed=int(args.seed))


def as_columns(rows: list[dict]) -> dict[str, list]:
    """Records -> one batch of columns (rows of several datasets may differ in keys: tools)."""
    keys = dict.fromkeys(k for r in rows for k in r)
    return {key: [r.get(key) for r in rows] for key in keys}


def fit_budget(lp: int, lr: int, budget: int) -> tuple[int, int]:
    """How many prompt / response tokens to keep when lp + lr > budget.
    A short answer is kept whole (the prompt is cut); a short prompt is kept whole (the answer is cut);
    when both are long, each keeps half. The answer always keeps >= min(lr, budget // 2) tokens."""
    if lp + lr <= budget:
        return lp, lr
    half = budget // 2
    if lr <= half:
        return budget - lr, lr
    if lp <= half:
        return lp, budget - lp
    return half, budget - half


def encode_sft(messages: list[dict], system: str, tokenizer, template, cutoff_len: int,
               train_on_prompt: bool = False, mask_history: bool = False, tools: str | None = None) -> dict:
    """Tool records: `tools` (the tool list) goes into the system prompt and tool results into user-side turns
    (never trained); the assistant's calls are answers (trained), see engine.data.tools."""
    pairs = template.encode_multiturn(tokenizer, messages, system or None, tools=tools or None)
    full_len = sum(len(p) + len(r) for p, r in pairs)
    n = len(pairs)
    order = list(range(n))[::-1] if mask_history else list(range(n))  # mask_history: the last turn must survive
    kept: dict[int, tuple[list[int], list[int]]] = {}
    budget, truncated = cutoff_len, False
    for i in order:
        p, r = pairs[i]
        if len(p) + len(r) <= budget:
            kept[i] = (p, r)
            budget -= len(p) + len(r)
            continue
        truncated = True
        if not kept:  # this turn alone is too long: keep the end of its prompt and the start of its answer
            pb, rb = fit_budget(len(p), len(r), budget)
            kept[i] = (p[len(p) - pb:] if pb else [], r[:rb])
        break
    ids, labels = [], []
    for i in sorted(kept):
        p, r = kept[i]
        trained = not mask_history or i == n - 1
        ids += p + r
        labels += (p if train_on_prompt and trained else [IGNORE] * len(p)) + (r if trained else [IGNORE] * len(r))
    tokens = sum(1 for t in labels[1:] if t != IGNORE)  # position 0 is never predicted
    return {"input_ids": ids, "labels": labels, LEN: full_len, TRUNC: truncated, TOKENS: tokens}


def sft_batch(batch: dict, tokenizer, template, cutoff_len: int, train_on_prompt: bool, mask_history: bool) -> dict:
    out: dict[str, list] = {"input_ids": [], "labels": [], LEN: [], TRUNC: [], TOKENS: []}
    tools = batch.get("tools") or [None] * len(batch["messages"])
    for system, messages, tl in zip(batch["system"], batch["messages"], tools):
        e = encode_sft(messages, system, tokenizer, template, cutoff_len, train_on_prompt, mask_history, tl)
        for k in out:
            out[k].append(e[k])
    return out


def pt_texts(batch: dict, tokenizer, template, cutoff_len: int) -> dict:
    """Each text -> ids (+ bos when the tokenizer adds one) + eos, cut into chunks of <= cutoff_len."""
    bos = template.bos_ids(tokenizer)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out: dict[str, list] = {"input_ids": [], LEN: [], TRUNC: [], SPLIT: []}
    for text in batch["text"]:
        ids = bos + tokenizer.encode(text, add_special_tokens=False) + eos
        for k in range(0, len(ids), cutoff_len):
            out["input_ids"].append(ids[k:k + cutoff_len])
            out[LEN].append(len(ids) if k == 0 else 0)  # the text's length counted once
            out[TRUNC].append(False)
            out[SPLIT].append(len(ids) > cutoff_len)
    return out


def pt_blocks(chunks: list[list[int]], cutoff_len: int) -> list[list[int]]:
    """Concatenate all texts and cut the stream into cutoff_len blocks; the last, shorter block is kept."""
    import numpy as np
    flat = np.fromiter((t for c in chunks for t in c), dtype=np.int64) if chunks else np.zeros(0, np.int64)
    return [flat[k:k + cutoff_len].tolist() for k in range(0, len(flat), cutoff_len)]


def dpo_batch(batch: dict, tokenizer, template, cutoff_len: int) -> dict:
    out: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], LEN: [], TRUNC: [], TOKENS: []}
    tools = batch.get("tools") or [None] * len(batch["messages"])
    for system, messages, chosen, rejected, tl in zip(batch["system"], batch["messages"], batch["chosen"],
                                                      batch["rejected"], tools):
        prompt = template.render(messages, system or None, tools=tl or None)
        c, r = template.render_response(chosen), template.render_response(rejected)
        p_ids = tokenizer.encode(prompt, add_special_tokens=False)
        lc = len(tokenizer.encode(c, add_special_tokens=False))
        lr = len(tokenizer.encode(r, add_special_tokens=False))
        answer = max(lc, lr)
        pb, rb = fit_budget(len(p_ids), answer, cutoff_len)
        if pb < len(p_ids):
            prompt = tokenizer.decode(p_ids[len(p_ids) - pb:])  # keep the end: question + assistant header
        out["prompt"].append(prompt)
        out["chosen"].append(c)
        out["rejected"].append(r)
        out[LEN].append(len(p_ids) + answer)
        out[TRUNC].append(len(p_ids) + answer > cutoff_len)
        out[TOKENS].append(min(lc, cutoff_len - pb) + min(lr, cutoff_len - pb))
    return out


def grpo_batch(batch: dict, tokenizer, template, cutoff_len: int) -> dict:
    """Prompts for sampling (grpo): the conversation rendered up to the assistant header, cut from the left to
    cutoff_len tokens when longer (the question and the header stay); the reference answer as it is. No token is
    trained here: the completions are sampled during training (max_completion_length)."""
    out: dict[str, list] = {"prompt": [], "answer": [], LEN: [], TRUNC: [], TOKENS: []}
    tools = batch.get("tools") or [None] * len(batch["messages"])
    for system, messages, answer, tl in zip(batch["system"], batch["messages"], batch["answer"], tools):
        prompt = template.render(messages, system or None, tools=tl or None)
        p_ids = tokenizer.encode(prompt, add_special_tokens=False)
        if len(p_ids) > cutoff_len:
            prompt = tokenizer.decode(p_ids[len(p_ids) - cutoff_len:])
        out["prompt"].append(prompt)
        out["answer"].append(answer)
        out[LEN].append(len(p_ids))
        out[TRUNC].append(len(p_ids) > cutoff_len)
        out[TOKENS].append(0)
    return out


def _fit_prompt(tokenizer, prompt: str, answer_len: int, cutoff_len: int) -> tuple[str, list[int], int]:
    """(prompt text, prompt ids, full prompt length): a prompt too long for cutoff_len next to the answer keeps
    its end (the question and the assistant header)."""
    p_ids = tokenizer.encode(prompt, add_special_tokens=False)
    full = len(p_ids)
    pb, _ = fit_budget(full, answer_len, cutoff_len)
    if pb < full:
        p_ids = p_ids[full - pb:]
        prompt = tokenizer.decode(p_ids)
    return prompt, p_ids, full


def kto_batch(batch: dict, tokenizer, template, cutoff_len: int) -> dict:
    out: dict[str, list] = {"prompt": [], "completion": [], "label": [], LEN: [], TRUNC: [], TOKENS: []}
    for system, messages, completion, label in zip(batch["system"], batch["messages"], batch["completion"],
                                                   batch["label"]):
        prompt = template.render(messages, system or None)
        c = template.render_response(completion)
        lc = len(tokenizer.encode(c, add_special_tokens=False))
        prompt, p_ids, lp = _fit_prompt(tokenizer, prompt, lc, cutoff_len)
        out["prompt"].append(prompt)
        out["completion"].append(c)
        out["label"].append(bool(label))
        out[LEN].append(lp + lc)
        out[TRUNC].append(lp + lc > cutoff_len)
        out[TOKENS].append(min(lc, cutoff_len - len(p_ids)))
    return out


def rm_batch(batch: dict, tokenizer, template, cutoff_len: int) -> dict:
    out: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], LEN: [], TRUNC: [], TOKENS: []}
    tools = batch.get("tools") or [None] * len(batch["messages"])
    for system, messages, chosen, rejected, tl in zip(batch["system"], batch["messages"], batch["chosen"],
                                                      batch["rejected"], tools):
        prompt = template.render(messages, system or None, tools=tl or None)  # as dpo_batch: the same pairs
        c = tokenizer.encode(template.render_response(chosen), add_special_tokens=False)
        r = tokenizer.encode(template.render_response(rejected), add_special_tokens=False)
        _, p_ids, lp = _fit_prompt(tokenizer, prompt, max(len(c), len(r)), cutoff_len)
        room = cutoff_len - len(p_ids)
        out["chosen_ids"].append(p_ids + c[:room])
        out["rejected_ids"].append(p_ids + r[:room])
        out[LEN].append(lp + max(len(c), len(r)))
        out[TRUNC].append(lp + max(len(c), len(r)) > cutoff_len)
        out[TOKENS].append(min(len(c), room) + min(len(r), room))
    return out


def percentile(sorted_vals: list[int], q: float) -> int:
    if not sorted_vals:
        return 0
    k = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return int(sorted_vals[k])


def length_stats(full_lens: list[int], truncated: list[bool], tokens: list[int] | None = None) -> dict:
    lens = sorted(x for x in full_lens if x > 0)
    return {
        "kept": len(lens),
        "truncated": int(sum(1 for t, n in zip(truncated, full_lens) if t and n > 0)),
        "max_len": int(lens[-1]) if lens else 0,
        "mean_len": round(sum(lens) / len(lens), 1) if lens else 0.0,
        "p50": percentile(lens, 0.5),
        "p95": percentile(lens, 0.95),
        "tokens": int(sum(tokens)) if tokens is not None else 0,
    }


TRAINED, CHOSEN, REJECTED = "trained", "chosen", "rejected"
DESIRABLE, UNDESIRABLE = "desirable", "undesirable"  # kto: the one answer, by its label
REFERENCE = "reference"  # grpo: the reference answer the rewards compare with (never trained on)


def mark_trained(row: dict, stage: str, tokenizer, template, args) -> list[tuple[str, str | None]]:
    """One record of load_records as the model sees it with the cutoff_len / train_on_prompt / mask_history of
    `args`: [(text, kind)], kind TRAINED where tokens have labels and None where not; pairs (dpo, rm): the prompt
    (None), its CHOSEN answer, then the prompt again and its REJECTED answer; kto: the prompt, then its answer as
    DESIRABLE or UNDESIRABLE. What the web UI's and the inspector's previews show (the stage's `mark`)."""
    from ..train.stages import get_stage
    return get_stage(stage).mark(row, tokenizer, template, options(args))


def _one(row: dict, *keys: str) -> dict:
    """One record as a batch of one (the previews)."""
    return {k: [row.get(k) if k != "system" else row.get("system") or ""] for k in keys}


def mark_pt(row: dict, tokenizer, template, opts: Options) -> list[tuple[str, str | None]]:
    ids = pt_texts({"text": [row["text"]]}, tokenizer, template, opts.cutoff_len)["input_ids"][0]
    return [(tokenizer.decode(ids, skip_special_tokens=False), TRAINED)]


def mark_kto(row: dict, tokenizer, template, opts: Options) -> list[tuple[str, str | None]]:
    out = kto_batch(_one(row, "system", "messages", "completion", "label"), tokenizer, template, opts.cutoff_len)
    return [(out["prompt"][0], None), (out["completion"][0], DESIRABLE if row["label"] else UNDESIRABLE)]


def mark_pairs(row: dict, tokenizer, template, opts: Options) -> list[tuple[str, str | None]]:
    out = dpo_batch(_one(row, "system", "messages", "chosen", "rejected", "tools"), tokenizer, template,
                    opts.cutoff_len)
    prompt = out["prompt"][0]
    return [(prompt, None), (out["chosen"][0], CHOSEN), ("\n", None), (prompt, None), (out["rejected"][0], REJECTED)]


def mark_prompt(row: dict, tokenizer, template, opts: Options) -> list[tuple[str, str | None]]:
    out = grpo_batch(_one(row, "system", "messages", "answer", "tools"), tokenizer, template, opts.cutoff_len)
    ref = row.get("answer")
    return [(out["prompt"][0], None)] + ([("\n", None), (str(ref), REFERENCE)] if ref is not None else [])


def mark_sft(row: dict, tokenizer, template, opts: Options) -> list[tuple[str, str | None]]:
    enc = encode_sft(row["messages"], row.get("system") or "", tokenizer, template, opts.cutoff_len,
                     opts.train_on_prompt, opts.mask_history, row.get("tools"))
    spans: list[tuple[str, str | None]] = []
    cur: list[int] = []
    state = None
    for tid, lab in zip(enc["input_ids"], enc["labels"]):
        trained = lab != IGNORE
        if cur and trained != state:
            spans.append((tokenizer.decode(cur, skip_special_tokens=False), TRAINED if state else None))
            cur = []
        cur.append(tid)
        state = trained
    if cur:
        spans.append((tokenizer.decode(cur, skip_special_tokens=False), TRAINED if state else None))
    return spans


def sft_target(row: dict) -> tuple[str, str]:
    """(the prompt, the answer trained on it); the same question with other tools is another prompt."""
    q = json.dumps([row.get("system") or "", row["messages"][:-1], row.get("tools")], sort_keys=True,
                   ensure_ascii=False)
    return q, row["messages"][-1]["content"]


def prompt_target(row: dict) -> tuple[str, str] | None:
    """(the prompt, its reference answer); None without a reference."""
    if row.get("answer") is None:
        return None
    return json.dumps([row.get("system") or "", row["messages"], row.get("tools")], sort_keys=True,
                      ensure_ascii=False), row["answer"]


# ---------------------------------------------------------------- per stage: chunks of records -> columns
def pt_chunk(batch: dict, tokenizer, template, opts: Options) -> dict:
    return pt_texts(batch, tokenizer, template, opts.cutoff_len)


def sft_chunk(batch: dict, tokenizer, template, opts: Options) -> dict:
    return sft_batch(batch, tokenizer, template, opts.cutoff_len, opts.train_on_prompt, opts.mask_history)


def rm_chunk(batch: dict, tokenizer, template, opts: Options) -> dict:
    return rm_batch(batch, tokenizer, template, opts.cutoff_len)


def dpo_chunk(batch: dict, tokenizer, template, opts: Options) -> dict:
    return dpo_batch(batch, tokenizer, template, opts.cutoff_len)


def kto_chunk(batch: dict, tokenizer, template, opts: Options) -> dict:
    return kto_batch(batch, tokenizer, template, opts.cutoff_len)


def grpo_chunk(batch: dict, tokenizer, template, opts: Options) -> dict:
    return grpo_batch(batch, tokenizer, template, opts.cutoff_len)


# ---------------------------------------------------------------- per stage: all columns -> dataset + stats
def _columns(cols: dict, keys: tuple[str, ...]) -> tuple[dict, dict]:
    """A trl stage's dataset: its columns as they are (trl batches them), with the length stats."""
    st = length_stats(cols[LEN], cols[TRUNC], cols[TOKENS])
    data = {k: cols[k] for k in keys}
    return data, {**st, "rows": len(data[keys[0]])}


def finish_rm(cols: dict, opts: Options) -> tuple[dict, dict]:
    return _columns(cols, ("chosen_ids", "rejected_ids"))


def finish_dpo(cols: dict, opts: Options) -> tuple[dict, dict]:
    return _columns(cols, ("prompt", "chosen", "rejected"))


def finish_grpo(cols: dict, opts: Options) -> tuple[dict, dict]:
    data, st = _columns(cols, ("prompt", "answer"))
    st["tokens"] = None  # the trained tokens are the completions, sampled while training
    return data, st


def finish_kto(cols: dict, opts: Options) -> tuple[dict, dict]:
    # trl's KTOTrainer reads batches in order (each answer's KL pair is its batch neighbour), so the desirable
    # and undesirable answers are mixed here, reproducibly
    order = list(range(len(cols["label"])))
    random.Random(opts.seed).shuffle(order)
    data, st = _columns({k: [v[i] for i in order] for k, v in cols.items()}, ("prompt", "completion", "label"))
    st["desirable"] = sum(data["label"])  # how the labels are balanced (kto_chosen_weight / kto_rejected_weight)
    st["undesirable"] = st["rows"] - st["desirable"]
    return data, st


def finish_sft(cols: dict, opts: Options) -> tuple[dict, dict]:
    st = length_stats(cols[LEN], cols[TRUNC], cols[TOKENS])
    return _causal(list(zip(cols["input_ids"], cols["labels"])), opts, st)


def finish_pt(cols: dict, opts: Options) -> tuple[dict, dict]:
    st = length_stats(cols[LEN], cols[TRUNC])
    st["split_texts"] = sum(1 for s, n in zip(cols[SPLIT], cols[LEN]) if s and n)
    seqs = cols["input_ids"] if opts.packing else pt_blocks(cols["input_ids"], opts.cutoff_len)
    st["tokens"] = sum(len(s) - 1 for s in seqs)
    return _causal([(s, s) for s in seqs], opts, st)


def _causal(examples: list[tuple[list[int], list[int]]], opts: Options, st: dict) -> tuple[dict, dict]:
    """(input_ids, labels) examples -> the Trainer's rows: packed (position_ids restart per example) or one example
    a row with its attention mask; with how much of the rows x cutoff_len grid is data."""
    if opts.packing:
        rows = pack_rows([{"input_ids": i, "labels": l} for i, l in examples], opts.cutoff_len)
        st["packed_from"] = len(examples)
        data = {k: [r[k] for r in rows] for k in ("input_ids", "labels", "position_ids")}
    else:
        data = {"input_ids": [i for i, _ in examples], "attention_mask": [[1] * len(i) for i, _ in examples],
                "labels": [l for _, l in examples]}
    n = len(data["input_ids"])
    st["rows"] = n
    if n:
        st["fill"] = round(sum(len(x) for x in data["input_ids"]) / (n * opts.cutoff_len), 3)
    return data, st


# ---------------------------------------------------------------- per stage: tokens per row (the estimate)
def ids_lengths(train, stats: dict, ns) -> tuple[list[int], int]:
    lengths = [len(x) for x in train["input_ids"]]
    return lengths, max(lengths) if lengths else 0


def pair_ids_lengths(train, stats: dict, ns) -> tuple[list[int], int]:
    """rm: pairs arrive tokenised and cut; the longer of the two sequences per row."""
    lengths = [max(len(c), len(r)) for c, r in zip(train["chosen_ids"], train["rejected_ids"])]
    return lengths, max(lengths) if lengths else 0


def stats_lengths(train, stats: dict, ns) -> tuple[list[int], int]:
    """Strings trl tokenises later: prompt + (longer) answer per row, from the stats."""
    return [int(stats.get("mean_len", 0))] * len(train), min(int(stats.get("max_len", 0)), int(ns.cutoff_len))


def prompt_lengths(train, stats: dict, ns) -> tuple[list[int], int]:
    """grpo: a prompt (from the stats) and a completion of up to max_completion_length tokens."""
    gen = int(ns.max_completion_length)
    return ([int(stats.get("mean_len", 0)) + gen] * len(train),
            min(int(stats.get("max_len", 0)), int(ns.cutoff_len)) + gen)

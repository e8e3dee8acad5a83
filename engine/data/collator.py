"""Batching for the Trainer: dynamic padding, and packing without attention across examples.

Packing is done once, at dataset level (`pack_rows`, called by get_dataset and cached):
rows of <= cutoff_len tokens filled by best-fit decreasing over the example lengths. Doing it
there rather than per batch packs across the whole dataset (fuller rows than a batch of 4 allows),
costs nothing per step, and gives the Trainer the true number of rows, so steps/epoch and the
progress bar are right.

A packed row carries `position_ids` that restart at 0 for every example and no attention_mask.
transformers (5.x, masking_utils.find_packed_sequence_indices) then builds a block-diagonal causal
mask from the position_ids for sdpa/eager/flex, and flash-attention uses them as cu_seqlens. That
detection only runs when no KV cache is built, and Llama-style models build one in training mode
when config.use_cache is true — so packed batches carry use_cache=False (verified in the tests:
without it, examples attend across boundaries).
The first token of every example gets label -100 so it is never predicted from the end of the
previous example (in an unpacked row that position is never predicted either).
"""
from __future__ import annotations

import bisect

IGNORE = -100


def pack_lengths(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices grouped into bins of total length <= capacity (best-fit decreasing: each example goes
    to the fullest bin it still fits in; O(n log n) with a sorted list of free spaces)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (free space, bin id)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example of {n} tokens does not fit a row of {capacity}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            space, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (space - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - n, len(bins) - 1))
    return [sorted(b) for b in bins]


def pack_rows(examples: list[dict], capacity: int | None) -> list[dict]:
    """Tokenised examples (input_ids, labels) -> packed rows (input_ids, labels, position_ids).
    capacity None: everything in one row."""
    lengths = [len(e["input_ids"]) for e in examples]
    groups = pack_lengths(lengths, capacity) if capacity else [list(range(len(examples)))]
    rows = []
    for g in groups:
        ids, labels, pos = [], [], []
        for i in g:
            e = examples[i]
            ids += list(e["input_ids"])
            lab = list(e["labels"])
            lab[0] = IGNORE
            labels += lab
            pos += range(len(e["input_ids"]))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": pos})
    return rows


class DataCollator:
    """features -> padded tensors. Unpacked: input_ids / attention_mask / labels, padded on the right
    (labels with -100). Packed rows (features with position_ids, or any features when packing=True,
    which are then packed here into rows of <= cutoff_len): input_ids / labels / position_ids and no
    attention_mask; padding forms its own sequence (positions from 0) so nothing real attends to it."""

    def __init__(self, tokenizer, packing: bool = False, pad_to_multiple_of: int | None = None,
                 cutoff_len: int | None = None):
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        self.packing = packing
        self.multiple = pad_to_multiple_of
        self.cutoff_len = cutoff_len

    def _width(self, n: int) -> int:
        m = self.multiple
        return -(-n // m) * m if m else n

    def __call__(self, features: list[dict]) -> dict:
        import torch

        feats = [{k: list(v) for k, v in f.items() if k in ("input_ids", "labels", "position_ids")}
                 for f in features]
        for f in feats:
            f.setdefault("labels", list(f["input_ids"]))
        packed = any("position_ids" in f for f in feats)
        if self.packing and not packed:
            feats, packed = pack_rows(feats, self.cutoff_len), True
        width = self._width(max(len(f["input_ids"]) for f in feats))
        ids = torch.full((len(feats), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(feats), width), IGNORE, dtype=torch.long)
        for r, f in enumerate(feats):
            n = len(f["input_ids"])
            ids[r, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[r, :n] = torch.tensor(f["labels"], dtype=torch.long)
        batch = {"input_ids": ids, "labels": labels}
        if packed:
            pos = torch.zeros((len(feats), width), dtype=torch.long)
            for r, f in enumerate(feats):
                n = len(f.get("position_ids") or [])
                if n:
                    pos[r, :n] = torch.tensor(f["position_ids"], dtype=torch.long)
                else:  # an unpacked example in a packed batch
                    n = len(f["input_ids"])
                    pos[r, :n] = torch.arange(n)
                pos[r, n:] = torch.arange(width - n)
            batch["position_ids"] = pos
            batch["use_cache"] = False
        else:
            mask = torch.zeros((len(feats), width), dtype=torch.long)
            for r, f in enumerate(feats):
                mask[r, :len(f["input_ids"])] = 1
            batch["attention_mask"] = mask
        return batch


def make_collator(tokenizer, packing: bool, pad_to_multiple_of: int | None = None,
                  cutoff_len: int | None = None, padding_free: bool = False) -> DataCollator:
    """The Trainer's data_collator. get_dataset already packs when packing is on; given unpacked
    examples with packing=True, the collator packs each batch itself (rows of <= cutoff_len).
    padding_free (without packing): each batch's examples go in one row, position ids restarting per example:
    no padding and no attention across examples, and the same examples per step as padded batches."""
    if padding_free and not packing:
        return DataCollator(tokenizer, packing=True, pad_to_multiple_of=pad_to_multiple_of, cutoff_len=None)
    return DataCollator(tokenizer, packing=packing, pad_to_multiple_of=pad_to_multiple_of, cutoff_len=cutoff_len)

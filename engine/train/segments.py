"""Attention over packed rows, one example at a time.

A padding-free or packed row holds several examples, position ids restarting at each. transformers' sdpa then
builds a row x row block-diagonal mask, and SDPA with an explicit mask computes every block, the masked ones too,
and cannot skip the causal upper half. Here each example's span of the row goes through SDPA by itself with
is_causal: the same result (tested equal, values and gradients), on the blocks that count only. On the benchmark's
LoRA rows (4 examples of ~150 tokens) the profiled attention time of 6 steps fell from 12.0 s to 5.8 s.

    use_segments(model) -> bool   the model's attention now runs this way (sdpa models without sliding windows)

Anything else (a padding mask, a KV cache, a single query) goes to transformers' sdpa unchanged.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "tuneboard_segments"
_last: list = [None, None]  # (position ids, their spans): every layer of one forward gets the same tensor


def _spans(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the (start, end) of each example: a new one wherever the position does not follow the last."""
    if _last[0] is position_ids:
        return _last[1]
    starts = (position_ids[:, 1:] - position_ids[:, :-1] != 1).nonzero().tolist()
    length = position_ids.shape[1]
    cuts: list[list[int]] = [[0] for _ in range(position_ids.shape[0])]
    for row, at in starts:
        cuts[row].append(at + 1)
    spans = [list(zip(c, c[1:] + [length])) for c in cuts]
    _last[0], _last[1] = position_ids, spans
    return spans


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    pos = kwargs.get("position_ids")
    length = query.shape[2]
    if (attention_mask is not None or pos is None or length == 1 or key.shape[2] != length
            or pos.shape[-1] != length or not getattr(module, "is_causal", True)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    spans = _spans(pos)
    gqa = query.shape[1] != key.shape[1]
    # On a CPU, SDPA's flash kernel runs faster in fp32 than in bf16 (causal 9 heads x 407 x 64, forward and
    # backward: 10.6 ms against 12.4), so under CPU autocast the spans are computed in fp32: the LoRA benchmark
    # went from 233-262 to 269-282 tokens/s with less memory (bench/README.md). CUDA keeps its bf16 kernels.
    wide = query.device.type == "cpu" and torch.is_autocast_enabled("cpu")
    if wide:
        query, key, value = query.float(), key.float(), value.float()
    rows = []
    # split, not slices: the gradient of a split is one cat, where each slice's would be a zero-filled tensor of the
    # whole row, one per span and per q / k / v, summed
    with torch.autocast("cpu", enabled=False) if wide else contextlib.nullcontext():
        for r, (q, k, v) in enumerate(zip(query.split(1), key.split(1), value.split(1))):
            lengths = [e - s for s, e in spans[r if len(spans) > 1 else 0]]
            parts = [F.scaled_dot_product_attention(qs, ks, vs, dropout_p=dropout, is_causal=True, scale=scaling,
                                                    enable_gqa=gqa)
                     for qs, ks, vs in zip(q.split(lengths, 2), k.split(lengths, 2), v.split(lengths, 2))]
            rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))
    out = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
    return out.transpose(1, 2).contiguous(), None


def _mask(*args, attention_mask=None, q_offset=0, kv_length=None, q_length=None, **kwargs):
    """No mask for a full causal forward (attention() finds the examples from the position ids); a padding mask
    or a cache gets sdpa's own."""
    if attention_mask is None and q_offset == 0 and kv_length == q_length:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, q_offset=q_offset, kv_length=kv_length,
                     q_length=q_length, **kwargs)


def use_segments(model) -> bool:
    """Switch a loaded sdpa model (plain or peft-wrapped) to per-example attention; False (unchanged) where its
    attention is not plain causal sdpa: sliding windows, soft-capping, another implementation."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(inner, "config", None)
    if cfg is None or getattr(cfg, "_attn_implementation", None) != "sdpa":
        return False
    if getattr(cfg, "sliding_window", None) or getattr(cfg, "attn_logit_softcapping", None) \
            or any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return False
    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, _mask)
    inner.set_attn_implementation(NAME)
    return True

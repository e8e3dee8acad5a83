"""Preference batches without padding: trl's padded pairs computed as one packed row.

trl's DPOTrainer pads a batch's 2 x batch sequences (prompt + chosen, then prompt + rejected) to the longest and
(since trl 1.x) has padding-free DPO switched off. With long chosen answers and short rejected ones, much of such a
batch is padding (the benchmark's DPO batches: 36-38 %). And off CUDA its fused LM head scores every position of
the padded batch, prompt and padding included, through the 49k-word head.

`unpad_fused_head(model, outputs)` re-patches the forward trl gave the model (`model(..., labels=...,
fused_lm_head=True)`): a right-padded batch is cut into one row of its real tokens, position ids restarting per
sequence, attention within each sequence (engine.train.segments), and only the labelled positions go through the
head (trl's own chunked log-prob kernel). The per-token fields come back in the padded shape trl reads, so its
losses, reference pass, metrics and evaluation are untouched and give the same values (tests/test_unpad.py).
Anything else (a left-padded or unmasked batch, shifted labels, MoE router logits, embeddings passed in) goes to
trl's forward unchanged.
"""
from __future__ import annotations

import types

import torch

from .segments import use_segments
from .sft import IGNORE, split_causal_lm


def _right_padded(mask) -> bool:
    return (mask is not None and mask.dim() == 2 and bool(mask[:, 0].all())
            and bool((mask[:, 1:] <= mask[:, :-1]).all()))


def unpad_fused_head(model, outputs: tuple[str, ...]) -> bool:
    """Patch `model` (plain or peft-wrapped, after trl's add_fused_lm_head); False (unchanged) where its attention
    or its head does not allow it."""
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import FusedCausalLMOutput

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if split_causal_lm(model) is None or not use_segments(model):
        return False
    fused = inner.forward

    def forward(self, *args, fused_lm_head=False, labels=None, input_ids=None, attention_mask=None, **kwargs):
        if (not fused_lm_head or args or labels is None or input_ids is None or not _right_padded(attention_mask)
                or kwargs.get("shift_labels") is not None or kwargs.get("inputs_embeds") is not None
                or kwargs.get("output_router_logits") or kwargs.get("position_ids") is not None):
            return fused(*args, fused_lm_head=fused_lm_head, labels=labels, input_ids=input_ids,
                         attention_mask=attention_mask, **kwargs)
        decoder, head = split_causal_lm(self)
        keep = attention_mask.bool()
        rows, length = keep.shape
        positions = torch.arange(length, device=keep.device).expand(rows, length)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("num_items_in_batch", "use_cache", "return_dict")
                  and v is not None}
        hidden = decoder(input_ids=input_ids[keep][None], position_ids=positions[keep][None], use_cache=False,
                         **kwargs).last_hidden_state[0]
        # position j of a row predicts token j + 1: label j + 1, where the row's last real token has none
        targets = torch.cat([labels[:, 1:], labels.new_full((rows, 1), IGNORE)], dim=1)
        targets = torch.where(keep, targets, IGNORE)
        scored = targets != IGNORE
        fields = ChunkedLogProbFunction.apply(hidden[scored[keep]], head.weight, head.bias, targets[scored], 1.0,
                                              32768, None, 1.0, outputs)
        shape = scored[:, :-1]  # trl's shape: (rows, length - 1), zero where there is no label
        log_probs, entropy, log_sum_sq, mean_logits, is_top1 = (
            None if x is None else x.new_zeros(shape.shape).masked_scatter(shape, x) for x in fields)
        loss = -log_probs.sum() / shape.sum().clamp(min=1)
        return FusedCausalLMOutput(loss=loss, log_probs=log_probs, entropy=entropy, log_sum_sq_probs=log_sum_sq,
                                   mean_logits=mean_logits, is_top1=is_top1, label_mask=shape)

    inner.forward = types.MethodType(forward, inner)
    return True

"""Cross-entropy of a linear LM head without the vocabulary-sized logits tensor.

`linear_cross_entropy(hidden, weight, bias, labels)` = F.cross_entropy(F.linear(hidden, weight, bias), labels,
reduction="sum"), computed over row chunks: each chunk's logits are made, turned into its loss and its gradients
(d hidden = (softmax - onehot) W, d weight = (softmax - onehot)^T hidden), and dropped. Only the gradients, the
size of hidden (and of the weight when it trains), outlive a chunk, so the peak is one chunk of logits instead of
rows x vocabulary floats (x3 with log-softmax and its gradient). Backward only scales what forward kept. Matmuls
follow the ambient autocast (bf16 where it is on); the softmax and the loss are always fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 25  # logits per chunk: 32M floats (128 MB in fp32); 682 rows of SmolLM2's 49k vocabulary


def chunk_rows(vocab: int) -> int:
    return max(16, CHUNK_ELEMENTS // max(1, vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk):
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        kind = hidden.device.type
        # the matmul type: autocast's where it is on (cast the head once here, not once per chunk), else the wider
        cdt = (torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind)
               else torch.promote_types(hidden.dtype, weight.dtype))
        w = weight.to(cdt)
        b = bias.to(cdt) if bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        gh = torch.empty_like(hidden) if want_h else None
        gw = None  # made by the first chunk: no zero-filled vocabulary x hidden tensor to add it to
        gb = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if want_b else None
        with torch.autocast(kind, enabled=False):
            for s in range(0, hidden.shape[0], chunk):
                h, y = hidden[s:s + chunk].to(cdt), labels[s:s + chunk]
                logits = F.linear(h, w, b).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, y[:, None]).squeeze(1)).sum()
                if not (want_h or want_w or want_b):
                    continue
                grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                grad[torch.arange(len(y), device=y.device), y] -= 1
                grad = grad.to(cdt)
                del logits
                if want_h:
                    gh[s:s + chunk] = grad @ w
                if want_w:
                    part = grad.t() @ h
                    gw = part.float() if gw is None else gw.add_(part)
                if want_b:
                    gb += grad.float().sum(0)
        if want_w and gw is None:  # no rows
            gw = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        ctx.save_for_backward(gh, gw, gb)
        ctx.dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx, go):
        gh, gw, gb = ctx.saved_tensors
        wdt, bdt = ctx.dtypes
        # scaled in place: the weight's gradient is vocabulary x hidden (113 MB for SmolLM2) and nothing else holds
        # these; a second backward through the graph would fail on the saved tensors' version, not go wrong
        return (gh.mul_(go.to(gh.dtype)) if gh is not None else None, gw.mul_(go).to(wdt) if gw is not None else None,
                gb.mul_(go).to(bdt) if gb is not None else None, None, None)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         labels: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Summed cross-entropy of linear(hidden) against labels (every label valid), rows of hidden at a time."""
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, chunk or chunk_rows(weight.shape[0]))

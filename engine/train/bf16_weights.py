"""Trained Linear weights stored in bf16 between steps of a bf16-autocast run, with fp32 masters in the optimizer.

Under autocast each nn.Linear casts its fp32 weight to a fresh bf16 copy in every forward, and its backward widens
the bf16 weight gradient into a fresh fp32 one: in a full fine-tune every weight is copied twice per step into
newly allocated memory. Stored in bf16, the weights give the same forward (the cast rounded them the same way) and
the same gradients (the fp32 gradient was the bf16 one widened) without those copies. The trained weights (full,
freeze's trained layers) become bf16 Parameters of the model; their fp32 Parameters stay in the optimizer as the
masters (the very ones it was built with, so its state, checkpoints and resume are unchanged). Before each optimizer
step the bf16 gradients, clipped by the Trainer, are widened onto the masters; the optimizer steps the masters and
the bf16 weights are copied from them. Every save writes the fp32 masters, and the model gets them back when
training ends.
Not touched: the embedding and any weight tied to it (so its output, and the residual stream, stay fp32), norms,
biases, LoRA's own layers, quantized and frozen weights (a bf16 run loads a LoRA base in bf16 already). Only where
nothing else reads the gradients and it is exact: bf16 autocast (fp16's loss scaler unscales the optimizer's
gradients), one process without DeepSpeed / FSDP (they keep masters of their own), no gradient accumulation (the
micro-batches' gradients would be summed in bf16), no load_best_model_at_end (the Trainer loads the best
checkpoint into the model inside train()). Measured on bench/peer.py's full workload: bench/README.md.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import TrainerCallback

from ..utils import get_logger

log = get_logger()


def _linears(model):
    """(owner module, its weight) of every plain fp32 nn.Linear whose weight is not shared (tied) with another
    module and that is not one of LoRA's own layers."""
    counts: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        counts[id(p)] = counts.get(id(p), 0) + 1
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = {id(out_emb.weight)} if out_emb is not None and hasattr(out_emb, "weight") else set()
    for name, m in model.named_modules():
        if type(m) is not torch.nn.Linear or "lora_" in name:
            continue
        w = m.weight
        if w.dtype == torch.float32 and counts.get(id(w), 0) == 1 and id(w) not in tied:
            yield m, w


def applies(trainer) -> bool:
    a = trainer.args
    return bool(a.bf16 and not a.fp16 and trainer.accelerator.num_processes == 1
                and not trainer.is_deepspeed_enabled and not trainer.is_fsdp_enabled
                and a.gradient_accumulation_steps == 1
                and not a.load_best_model_at_end)  # the Trainer loads the best checkpoint inside train()


class Bf16Weights(TrainerCallback):
    """Converts at the start of training (after a checkpoint's weights and optimizer state are loaded); puts the
    trained weights' fp32 masters back at its end."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.trained: list = []  # (module, its fp32 master Parameter, its bf16 Parameter)
        self._step = None

    def on_train_begin(self, args, state, control, **kw):
        if self.trained:
            return
        model = self.trainer.model
        opt = self.trainer.optimizer
        inner = getattr(opt, "optimizer", opt)  # accelerate wraps the torch optimizer
        in_opt = {id(p) for g in inner.param_groups for p in g["params"]}
        with torch.no_grad():
            for m, w in list(_linears(model)):
                if w.requires_grad and id(w) in in_opt:
                    half = torch.nn.Parameter(w.detach().to(torch.bfloat16))
                    self.trained.append((m, w, half))
                    m.weight = half
        if self.trained:
            self._step = inner.step
            inner.step = self._stepped
            _patch_save(self.trainer, self)
            log.info("bf16 weights between steps: %d Linear weights, fp32 masters in the optimizer "
                     "(engine.train.bf16_weights)", len(self.trained))

    def _stepped(self, *a, **kw):
        with torch.no_grad():
            for _, master, half in self.trained:
                # widened into a fresh tensor, and the bf16 one dropped: a persistent fp32 buffer per weight
                # measured no faster and held 0.3 GiB more through the forward
                master.grad = None if half.grad is None else half.grad.float()
                half.grad = None
            out = self._step(*a, **kw)
            torch._foreach_copy_([h for _, _, h in self.trained], [m for _, m, _ in self.trained])
            for _, master, _ in self.trained:
                master.grad = None
        return out

    @contextmanager
    def fp32(self):
        """The model with its fp32 weights (masters) in place, for a save."""
        for m, master, _ in self.trained:
            m.weight = master
        try:
            yield
        finally:
            for m, _, half in self.trained:
                m.weight = half

    def on_train_end(self, args, state, control, **kw):
        for m, master, _ in self.trained:
            m.weight = master
            master.grad = None
        if self._step is not None:
            inner = getattr(self.trainer.optimizer, "optimizer", self.trainer.optimizer)
            inner.step = self._step
        self.trained, self._step = [], None


def _patch_save(trainer, owner: Bf16Weights) -> None:
    if getattr(trainer, "_bf16_weights_save", None):
        return
    save = trainer._save

    def saved(*a, **kw):
        with owner.fp32():
            return save(*a, **kw)
    trainer._save = saved
    trainer._bf16_weights_save = True


def attach(trainer) -> None:
    """Registers the conversion on a built Trainer (a no-op where it does not apply)."""
    if applies(trainer):
        trainer.add_callback(Bf16Weights(trainer))

"""pt and sft: HF Trainer over examples built by engine.data (labels already masked there).

One change to the Trainer's loss: the vocabulary projection runs only on positions that have a label.
SFT prompts carry no labels, and for a small model the lm_head (vocab 49k) is a large share of the
compute and of the memory (a float32 logits tensor of batch x length x vocab); skipping the masked
positions gives the same loss for less of both. Single-process only: under DDP/DeepSpeed calling the
inner modules would bypass the wrapper's gradient sync, so those runs use the stock loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Trainer

IGNORE = -100


def split_causal_lm(model):
    """(decoder, lm_head) of a plain or peft-wrapped causal LM whose logits are just lm_head(hidden);
    None where the architecture scales or caps logits (the stock loss is used there)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(inner, "config", None)
    if cfg is None or getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    decoder = getattr(inner, "model", None)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if decoder is None or head is None or not isinstance(head, torch.nn.Linear):
        return None
    return decoder, head


def labelled_loss(model, inputs: dict, num_items_in_batch=None):
    """Causal-LM loss computing logits only where labels != -100; None if the model does not allow it."""
    parts = split_causal_lm(model)
    if parts is None or "labels" not in inputs:
        return None
    decoder, head = parts
    feats = {k: v for k, v in inputs.items() if k != "labels"}
    feats["use_cache"] = False
    hidden = decoder(**feats).last_hidden_state
    labels = inputs["labels"][:, 1:]
    mask = labels != IGNORE
    logits = head(hidden[:, :-1][mask]).float()
    loss = F.cross_entropy(logits, labels[mask], reduction="sum")
    if num_items_in_batch is not None:
        return loss / num_items_in_batch
    return loss / mask.sum().clamp(min=1)


class CausalLMTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        fast_ok = (not return_outputs and self.accelerator.num_processes == 1 and not self.is_deepspeed_enabled
                   and self.label_smoother is None and self.compute_loss_func is None)
        if fast_ok:
            if num_items_in_batch is not None and not self.model_accepts_loss_kwargs:
                num_items_in_batch = None  # the Trainer divides by the accumulation steps itself then
            loss = labelled_loss(model, inputs, num_items_in_batch)
            if loss is not None:
                return loss
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def build_trainer(ns, model, tokenizer, data, args, callbacks) -> Trainer:
    from ..data.collator import make_collator

    return CausalLMTrainer(model=model, args=args, train_dataset=data.train_dataset,
                           eval_dataset=data.eval_dataset,
                           data_collator=make_collator(tokenizer, packing=ns.packing, cutoff_len=ns.cutoff_len),
                           processing_class=tokenizer, callbacks=callbacks)

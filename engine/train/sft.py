"""pt and sft: HF Trainer over examples built by engine.data (labels already masked there).

Changes to the Trainer's loss, all giving the same value:
- the vocabulary projection runs only on positions that have a label. SFT prompts carry no labels, and for a small
  model the lm_head (vocab 49k) is a large share of the compute and of the memory;
- those positions go through the head and the cross-entropy in chunks (engine.train.lmloss), so the float32 logits
  of batch x length x vocab are never held at once (training and evaluation alike);
- evaluation computes the loss that way too and keeps no logits (nothing reads them without compute_metrics).
Single-process only: under DDP/DeepSpeed/FSDP calling the inner modules would bypass the wrapper's gradient sync
(or its parameter gathering), so those runs use the stock loss.
Batches: padding_free (the default) puts each batch's examples in one row with position ids restarting per example
(engine.data.collator): no padding, no attention across examples, the same steps and loss as padded batches;
attention then runs over each example's span of the row alone (engine.train.segments).
"""
from __future__ import annotations

import math

import torch
from transformers import Trainer

from ..data.collator import make_collator
from ..utils import get_logger
from . import bf16_weights, embedding_grad
from .lmloss import linear_cross_entropy
from .segments import use_segments

IGNORE = -100
log = get_logger()


def split_causal_lm(model):
    """(decoder, lm_head) of a plain or peft-wrapped causal LM whose logits are just lm_head(hidden);
    None where the architecture scales or caps logits (the stock loss is used there)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(inner, "config", None)
    # logits capped or scaled (Gemma 2, Cohere, Granite, ...; the names trl's fused head reads) are not lm_head(hidden)
    if cfg is None or any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in (
            "final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier", "lm_head_multiplier")):
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
    loss = linear_cross_entropy(hidden[:, :-1][mask], head.weight, head.bias, labels[mask])
    if num_items_in_batch is not None:
        return loss / num_items_in_batch
    return loss / mask.sum().clamp(min=1)


def real_length(ids, pos, labels) -> int:
    """Tokens of a packed row (engine.data.collator) before its padding: the collator pads a row's tail with the pad
    token, label -100 and positions counting from 0 again, after the last example."""
    starts = (pos == 0).nonzero().flatten()
    t = int(starts[-1]) if len(starts) else 0
    if t > 0 and bool((labels[t:] == IGNORE).all()) and bool((ids[t:] == ids[-1]).all()):
        return t
    return int(ids.numel())


class CausalLMTrainer(Trainer):
    def _fast_ok(self) -> bool:
        return (self.accelerator.num_processes == 1 and not self.is_deepspeed_enabled and not self.is_fsdp_enabled
                and self.label_smoother is None and self.compute_loss_func is None)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not return_outputs and self._fast_ok():
            if num_items_in_batch is not None and not self.model_accepts_loss_kwargs:
                num_items_in_batch = None  # the Trainer divides by the accumulation steps itself then
            # the inner modules are called directly, past the autocast accelerate wraps around model.forward
            with self.accelerator.autocast():
                loss = labelled_loss(model, inputs, num_items_in_batch)
            if loss is not None:
                return loss
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)

    def _track_num_input_tokens(self, inputs):
        """Packed rows have no attention mask, and the Trainer would count the tokens that differ from the pad
        token, which SmolLM2-style tokenizers also use as end of turn: count each row less its padding tail."""
        if (self.args.include_num_input_tokens_seen == "non_padding" and "position_ids" in inputs
                and "attention_mask" not in inputs):
            n = sum(real_length(ids, pos, lab) for ids, pos, lab in
                    zip(inputs["input_ids"], inputs["position_ids"], inputs["labels"]))
            self.state.num_input_tokens_seen += self.accelerator.gather(
                torch.as_tensor(n, device=self.args.device, dtype=torch.int64)).sum().item()
            return
        super()._track_num_input_tokens(inputs)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        """The eval loss is the mean over every labelled token of the eval set. The Trainer averages each batch's
        mean loss weighted by its row count, and a packed batch is one row, so its figure moved with the eval batch
        size (the benchmark's LoRA run: 2.956 at per_device_eval_batch_size 4, 2.861 at 16) and with packing on or
        off. Where a batch leaves the labelled-loss path the Trainer's figure stays."""
        self._eval_tokens = [0.0, 0, True]  # summed token losses, labelled tokens, every batch summed
        try:
            out = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                          metric_key_prefix)
            total, count, whole = self._eval_tokens
        finally:
            self._eval_tokens = None
        key = f"{metric_key_prefix}_loss"
        if whole and count and key in out.metrics and math.isfinite(total):
            out.metrics[key] = total / count
        return out

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        tally = getattr(self, "_eval_tokens", None)
        if (prediction_loss_only or self.compute_metrics is None) and self._fast_ok():
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.accelerator.autocast():
                loss = labelled_loss(model, inputs)
            if loss is not None:
                if tally is not None:
                    n = int((inputs["labels"][:, 1:] != IGNORE).sum())
                    tally[0] += loss.item() * n
                    tally[1] += n
                return loss.detach(), None, None
        if tally is not None:
            tally[2] = False
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


def build_trainer(ns, model, tokenizer, data, args, callbacks) -> Trainer:
    collator = make_collator(tokenizer, packing=ns.packing, cutoff_len=ns.cutoff_len,
                             padding_free=ns.padding_free)
    if (ns.packing or ns.padding_free) and use_segments(model):
        log.info("attention: each example of a packed row by itself (engine.train.segments)")
    trainer = CausalLMTrainer(model=model, args=args, train_dataset=data.train_dataset,
                              eval_dataset=data.eval_dataset, data_collator=collator,
                              processing_class=tokenizer, callbacks=callbacks)
    bf16_weights.attach(trainer)
    embedding_grad.attach(trainer)
    return trainer

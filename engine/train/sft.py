"""pt and sft: HF Trainer over examples built by engine.data (labels already masked there)."""
from __future__ import annotations

from transformers import Trainer


def build_trainer(ns, model, tokenizer, data, args, callbacks) -> Trainer:
    from ..data.collator import make_collator

    return Trainer(model=model, args=args, train_dataset=data.train_dataset, eval_dataset=data.eval_dataset,
                   data_collator=make_collator(tokenizer, packing=ns.packing), processing_class=tokenizer,
                   callbacks=callbacks)

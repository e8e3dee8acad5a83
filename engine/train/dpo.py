"""dpo: trl's DPOTrainer on (prompt, chosen, rejected) strings rendered with our template.

With LoRA the reference model is the base with the adapter switched off (no second copy in memory);
for freeze/full, trl builds a frozen copy.
"""
from __future__ import annotations


def build_trainer(ns, model, tokenizer, data, args, callbacks):
    from trl import DPOTrainer

    return DPOTrainer(model=model, ref_model=None, args=args, train_dataset=data.train_dataset,
                      eval_dataset=data.eval_dataset, processing_class=tokenizer, callbacks=callbacks)

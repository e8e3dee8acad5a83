"""kto: single answers labelled desirable / undesirable (kto_tag) through trl's KTOTrainer.

The data are strings (prompt rendered with our template, completion = answer + stop word, label), shuffled
by engine.data because KTOTrainer reads them in order: each answer's KL term is estimated against its batch
neighbour's answer, so a batch needs at least two rows (config.validate insists). With LoRA the reference
model is the base with the adapter switched off; for freeze/full, trl builds a frozen copy.
kto_chosen_weight / kto_rejected_weight map to trl's desirable_weight / undesirable_weight (engine.args hf=).
"""
from __future__ import annotations

from ..utils import get_logger

log = get_logger()


def config_class(ns):
    from trl import KTOConfig
    return KTOConfig


def trainer_fields(ns, common: dict) -> dict:
    if ns.pref_ftx > 0:  # LLaMA-Factory recipes may carry it
        log.warning("pref_ftx=%g ignored: trl's KTOTrainer has no extra SFT term", ns.pref_ftx)
    # trl's configs default to gradient checkpointing on; ours is applied to the model by engine.train.methods.
    # desirable/undesirable_weight come mapped from the schema (kto_chosen_weight / kto_rejected_weight)
    return dict(common, max_length=ns.cutoff_len, activation_checkpointing=False, beta=ns.pref_beta)


def build_trainer(ns, model, tokenizer, data, args, callbacks):
    from trl import KTOTrainer

    return KTOTrainer(model=model, ref_model=None, args=args, train_dataset=data.train_dataset,
                      eval_dataset=data.eval_dataset, processing_class=tokenizer, callbacks=callbacks)

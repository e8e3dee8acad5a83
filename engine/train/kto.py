"""kto: single answers labelled desirable / undesirable (kto_tag) through trl's KTOTrainer.

The data are strings (prompt rendered with our template, completion = answer + stop word, label), shuffled
by engine.data because KTOTrainer reads them in order: each answer's KL term is estimated against its batch
neighbour's answer, so a batch needs at least two rows (validate insists). With LoRA the reference
model is the base with the adapter switched off; for freeze/full, trl builds a frozen copy.
kto_chosen_weight / kto_rejected_weight map to trl's desirable_weight / undesirable_weight (engine.args hf=).
"""
from __future__ import annotations

from ..errors import ConfigError
from ..utils import get_logger

log = get_logger()


def validate(v: dict) -> None:
    """A batch needs two answers (engine.config.validate calls this for stage kto)."""
    if v["per_device_train_batch_size"] >= 2:
        return
    ga = v["gradient_accumulation_steps"]
    if ga % 2:
        raise ConfigError("per_device_train_batch_size: KTO needs at least 2 (each answer is compared with a "
                          "mismatched one from its batch to estimate the KL term); set it to 2.",
                          "per_device_train_batch_size")
    # LLaMA-Factory's KTO recipes use batch 1 x accumulation 8: the same effective batch as 2 x 4
    v["per_device_train_batch_size"], v["gradient_accumulation_steps"] = 2, ga // 2
    log.warning("KTO needs 2 answers per batch: per_device_train_batch_size 1 -> 2 and "
                "gradient_accumulation_steps %d -> %d (the same effective batch)", ga, ga // 2)


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

"""dpo: preference pairs (prompt, chosen, rejected strings rendered with our template) through trl.

pref_loss picks the trainer:
  sigmoid / ipo / hinge  trl's DPOTrainer. With LoRA the reference model is the base with the adapter switched
                         off (no second copy in memory); for freeze/full, trl builds a frozen copy.
                         pref_ftx adds trl's "sft" loss on the chosen answer with that weight.
  simpo                  trl's CPOTrainer with loss_type="simpo" (SimPO, Meng et al. 2024: length-normalised
                         log-likelihood margin beta * (avg logp chosen - avg logp rejected) - gamma); cpo_alpha is
                         the SFT weight, so pref_ftx maps onto it (0 = pure SimPO). No reference model.
  orpo                   trl's ORPOTrainer (ORPO, Hong et al. 2024: SFT loss on the chosen answer + beta x the log
                         odds-ratio loss). No reference model; the SFT term is always there.
padding_free (the default) computes DPO / IPO / hinge batches without their padding (engine.train.unpad); the
results are the same as padded batches.
The two reference-free trainers are trl.experimental: they tokenise the same strings themselves (bos/eos added only
when missing) and log the same rewards/* keys as DPOTrainer (rewards = beta x average log-probability).
"""
from __future__ import annotations

from ..utils import get_logger

log = get_logger()
REFERENCE_FREE = ("orpo", "simpo")


def uses_reference(ns) -> bool:
    """DPO, IPO and hinge compare with a frozen reference model (and compute log-probabilities through trl's
    tiled LM head); ORPO and SimPO have none and build the full logits."""
    return ns.pref_loss not in REFERENCE_FREE


def bf16_on_cpu(values: dict) -> bool:
    """Whether precision=auto may train this in bf16 autocast on a CPU. Measured on bench/peer.py's DPO workload:
    batches without padding (engine.train.unpad) ended 0.85 % / 1.7 % off fp32's train / eval loss; padded
    batches 3.7 % / 3.2 % (41 % / 82 % before the LoRA sums stayed fp32). ipo and hinge share that path; ORPO and
    SimPO (full logits, padded) were not measured and stay fp32."""
    free = values.get("padding_free", True)
    return values.get("pref_loss") not in REFERENCE_FREE and free not in (False, "false", "False")


def config_class(ns):
    """The trl arguments class of this pref_loss."""
    loss = getattr(ns, "pref_loss", "sigmoid") if ns is not None else "sigmoid"
    if loss == "orpo":
        from trl.experimental.orpo import ORPOConfig
        return ORPOConfig
    if loss == "simpo":
        from trl.experimental.cpo import CPOConfig
        return CPOConfig
    from trl import DPOConfig
    return DPOConfig


def trainer_fields(ns, common: dict) -> dict:
    """This pref_loss's fields on top of the TrainingArguments shared by every stage."""
    # trl's configs default to gradient checkpointing on; ours is applied to the model by engine.train.methods
    shared = dict(common, max_length=ns.cutoff_len, activation_checkpointing=False)
    if ns.pref_loss == "orpo":
        if ns.pref_ftx > 0:
            log.warning("pref_ftx=%g ignored: ORPO's loss already holds an SFT term of weight 1", ns.pref_ftx)
        return dict(shared, beta=ns.pref_beta)
    if ns.pref_loss == "simpo":
        return dict(shared, loss_type="simpo", beta=ns.pref_beta, simpo_gamma=ns.simpo_gamma, cpo_alpha=ns.pref_ftx)
    loss = [ns.pref_loss] + (["sft"] if ns.pref_ftx > 0 else [])
    weights = [1.0] + ([ns.pref_ftx] if ns.pref_ftx > 0 else [])
    return dict(shared, beta=ns.pref_beta, loss_type=loss, loss_weights=weights, padding_free=False)


def build_trainer(ns, model, tokenizer, data, args, callbacks):
    kw = dict(model=model, args=args, train_dataset=data.train_dataset, eval_dataset=data.eval_dataset,
              processing_class=tokenizer, callbacks=callbacks)
    if ns.pref_loss == "orpo":
        from trl.experimental.orpo import ORPOTrainer
        return ORPOTrainer(**kw)
    if ns.pref_loss == "simpo":
        from trl.experimental.cpo import CPOTrainer
        return CPOTrainer(**kw)
    from trl import DPOTrainer
    from . import bf16_weights, embedding_grad
    trainer = DPOTrainer(ref_model=None, **kw)
    if getattr(ns, "padding_free", False):
        _unpad(trainer)
    bf16_weights.attach(trainer)
    embedding_grad.attach(trainer)
    return trainer


def _unpad(trainer) -> None:
    """padding_free: each padded batch of pairs as one row of its real tokens (engine.train.unpad)."""
    from .unpad import unpad_fused_head
    # the per-token fields DPOTrainer asks its fused head for (its metrics; WPO weights)
    fields = ("log_probs", "entropy", "mean_logits", "is_top1") + (
        ("log_sum_sq_probs",) if getattr(trainer, "use_weighting", False) else ())
    if trainer.ref_model is not None:
        unpad_fused_head(trainer.ref_model, ("log_probs",))
    if unpad_fused_head(trainer.model, fields):
        log.info("padding_free: each batch of pairs runs as one row of its real tokens (engine.train.unpad)")
    else:
        log.info("padding_free: not for this model's attention or head; the pairs are padded")

"""rm: a reward model on preference pairs through trl's RewardTrainer.

The model is the causal LM's backbone with a one-output score head (AutoModelForSequenceClassification,
num_labels=1; engine.models.loader builds it, the head starts random). The loss is -log sigmoid(r_chosen -
r_rejected) (Bradley-Terry); trl logs `accuracy` (share of pairs with r_chosen > r_rejected) and `margin`, so the
eval split's accuracy lands in trainer_log.jsonl and all_results.json as eval_accuracy. With LoRA the score head
is trained and saved whole next to the adapter (peft's modules_to_save, set by engine.train.methods).
Pairs arrive tokenised (chosen_ids / rejected_ids cut to cutoff_len by engine.data), so trl filters none out.
"""
from __future__ import annotations


def config_class(ns):
    from trl import RewardConfig
    return RewardConfig


def trainer_fields(ns, common: dict) -> dict:
    # trl's configs default to gradient checkpointing on; ours is applied to the model by engine.train.methods
    return dict(common, max_length=ns.cutoff_len, activation_checkpointing=False)


def build_trainer(ns, model, tokenizer, data, args, callbacks):
    from trl import RewardTrainer

    return RewardTrainer(model=model, args=args, train_dataset=data.train_dataset, eval_dataset=data.eval_dataset,
                         processing_class=tokenizer, callbacks=callbacks)

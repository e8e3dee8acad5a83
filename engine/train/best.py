"""Keep the best checkpoint and stop early, both on eval loss (the doctor's advice for overfitting runs).

Whenever a run evaluates, the Trainer tracks eval_loss as its metric for the best model: trainer_state.json
names best_model_checkpoint and save_total_limit never deletes that checkpoint. load_best_model_at_end makes
that checkpoint the run's result (a checkpoint is then saved at every evaluation, as the Trainer requires);
early_stopping_patience stops once eval loss has not improved for that many evaluations.
"""
from __future__ import annotations

from ..utils import get_logger

log = get_logger()
EVAL_SHARE = 0.1  # eval_steps left empty: evaluate every tenth of the run (the Trainer reads a share below 1)


def eval_steps(ns):
    """The eval interval the Trainer gets: the run's eval_steps, else EVAL_SHARE of its steps (a short run
    evaluates along the way, not only at the end; a long one not every few steps)."""
    return ns.eval_steps if ns.eval_steps else EVAL_SHARE


def best_model_args(ns) -> dict:
    """TrainingArguments fields for tracking / keeping the best model; {} when the run does not evaluate."""
    if ns.eval_strategy in (None, "no"):
        return {}
    out = {"metric_for_best_model": "eval_loss", "greater_is_better": False}
    if ns.load_best_model_at_end:
        out["load_best_model_at_end"] = True
        out["save_strategy"] = ns.eval_strategy
        if ns.eval_strategy == "steps" and ns.save_steps != eval_steps(ns):
            # every evaluation needs its checkpoint: the best one may fall between two save_steps
            log.info("load_best_model_at_end: saving a checkpoint at every evaluation (save_steps %s -> %s)",
                     ns.save_steps, eval_steps(ns))
            out["save_steps"] = eval_steps(ns)
    return out


def early_stopping(ns) -> list:
    """[EarlyStoppingCallback] when early_stopping_patience is set (config.validate ensured an eval set)."""
    if not ns.early_stopping_patience or ns.eval_strategy in (None, "no"):
        return []
    from transformers import EarlyStoppingCallback
    return [EarlyStoppingCallback(early_stopping_patience=int(ns.early_stopping_patience))]


def best_metrics(state) -> dict:
    """What all_results.json records about the best model (the final model is it with load_best_model_at_end)."""
    out = {}
    if state.best_metric is not None:
        out["best_eval_loss"] = state.best_metric
    if state.best_model_checkpoint:
        out["best_checkpoint"] = state.best_model_checkpoint
    return out

"""Keep the best checkpoint and stop early, both on eval loss (the doctor's advice for overfitting runs).

Whenever a run evaluates, the Trainer tracks eval_loss as its metric for the best model: trainer_state.json
names best_model_checkpoint and save_total_limit never deletes that checkpoint. load_best_model_at_end makes
that checkpoint the run's result (a checkpoint is then saved at every evaluation, as the Trainer requires);
early_stopping_patience stops once eval loss has not improved for that many evaluations.
"""
from __future__ import annotations

import math

from ..utils import get_logger

log = get_logger()
EVAL_SHARE = 0.1  # eval_steps left empty: evaluate every tenth of the run (the Trainer reads a share below 1)
EVAL_BUDGET = 0.15  # ... or less often, so that evaluating takes at most about this share of the training compute
MIN_EVALS = 2  # ... but at least once along the way and once at the end: the doctor reads a curve


def eval_steps(ns):
    """The eval interval the Trainer gets: the run's eval_steps (planned_eval_steps fills it for a run that left it
    empty), else EVAL_SHARE of its steps (a short run evaluates along the way, not only at the end; a long one not
    every few steps)."""
    return ns.eval_steps if ns.eval_steps else EVAL_SHARE


def planned(ns) -> bool:
    """Whether this run's evaluations are planned here: eval_steps left empty and nothing that needs the Trainer to
    evaluate at each save (keeping the best checkpoint, early stopping)."""
    return (ns.eval_strategy == "steps" and not ns.eval_steps and not ns.load_best_model_at_end
            and not ns.early_stopping_patience)


def planned_eval_steps(ns, train_rows: int, eval_rows: int, total_steps: int, steps_per_epoch: int) -> int:
    """The eval interval of a run that left eval_steps empty. An evaluation is one forward pass over the eval set;
    a trained row costs a forward and a backward (about two forwards with LoRA, three when the weights train, one
    more with gradient checkpointing). Every tenth of the run, unless the eval set is large next to the training
    (a short run on a small set with a quarter held out: evaluating every tenth took half of its time): then as
    often as EVAL_BUDGET of the training compute allows, at least MIN_EVALS times, the final one included."""
    per_row = (2 if ns.finetuning_type == "lora" else 3) + (1 if ns.gradient_checkpointing else 0)
    trained = train_rows * total_steps / max(1, steps_per_epoch)
    affordable = int(EVAL_BUDGET * per_row * trained / max(1, eval_rows))
    n = max(MIN_EVALS, min(round(1 / EVAL_SHARE), affordable))
    return max(1, math.ceil(total_steps / n))


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


def count_final(state, eval_loss: float | None, checkpoint: str | None) -> None:
    """The evaluation made after a planned run (engine.train.callbacks.AfterTheLoop) joins the
    best-model tracking as the in-loop ones do."""
    if eval_loss is None:
        return
    if state.best_metric is None or eval_loss < state.best_metric:
        state.best_metric = eval_loss
        state.best_model_checkpoint = checkpoint


def best_metrics(state) -> dict:
    """What all_results.json records about the best model (the final model is it with load_best_model_at_end)."""
    out = {}
    if state.best_metric is not None:
        out["best_eval_loss"] = state.best_metric
    if state.best_model_checkpoint:
        out["best_checkpoint"] = state.best_model_checkpoint
    return out

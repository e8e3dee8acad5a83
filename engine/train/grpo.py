"""grpo: reinforcement learning with verifiable rewards through trl's GRPOTrainer (GRPO, Shao et al. 2024).

Each step samples num_generations completions of every prompt (max_completion_length tokens at most, at
grpo_temperature), scores them with the run's rewards (engine.train.rewards: presets and the user's own functions,
weighted by reward_weights), and moves the policy towards the completions that scored above their group's mean
(the advantage: reward minus the mean of the prompt's group, over its spread), clipped at grpo_epsilon, with
grpo_beta x the KL to the starting model. The batch counts completions: per_device_train_batch_size x
gradient_accumulation_steps (x devices) holds whole groups of num_generations (validate insists).

The prompts arrive as text rendered with our template (engine.data: prompt, answer), and are tokenised here
without special tokens, so the template's own bos / headers are the only ones. Generation runs in transformers
(CPU or GPU), or in vLLM on a GPU (use_vllm: colocated with the training process; refused where vLLM or CUDA is
missing). With LoRA the reference model is the base with the adapter off; freeze/full with grpo_beta > 0 load a
frozen copy (grpo_beta = 0, trl's default, needs none).

What a run writes besides the usual files: trainer_log.jsonl gets reward, reward_std, rewards/<name>/mean, kl,
completions/mean_length, completions/clipped_ratio, clip_ratio/region_mean, frac_reward_zero_std (trl's names);
completions.jsonl (engine.train.rundir.COMPLETIONS) gets, at each logging step, a few prompts with their sampled
completions and rewards.
"""
from __future__ import annotations

import importlib.util
import json

from ..errors import ConfigError, UserError
from ..utils import get_logger
from . import rewards, rundir

log = get_logger()
SHOWN_PROMPTS = 4   # prompts (with all their completions) written to completions.jsonl per logging step
SHOWN_CHARS = 2000  # a completion is cut to this many characters there


def group(ns) -> int:
    """Completions sampled per prompt."""
    return int(ns.num_generations)


def uses_reference(ns) -> bool:
    """grpo_beta > 0 compares with the starting model (KL); 0 needs no reference."""
    return ns.grpo_beta > 0


def validate(v: dict) -> None:
    """The batch holds whole groups, the rewards exist, vLLM can run (engine.config.validate, stage grpo)."""
    n, world = v["num_generations"], max(1, v["nproc_per_node"]) * max(1, v["nnodes"])
    per_step = v["per_device_train_batch_size"] * v["gradient_accumulation_steps"] * world
    if per_step % n:
        fit = [b for b in range(1, 257) if b * v["gradient_accumulation_steps"] * world % n == 0][:1]
        raise ConfigError(f"per_device_train_batch_size: a GRPO batch holds whole groups of num_generations={n} "
                          f"completions, but per_device_train_batch_size x gradient_accumulation_steps"
                          f"{' x devices' if world > 1 else ''} = {per_step} is not a multiple of {n}; set "
                          f"per_device_train_batch_size to {fit[0] if fit else n} (or change num_generations).",
                          "per_device_train_batch_size")
    if v["eval_strategy"] not in (None, "no") and (v["per_device_eval_batch_size"] * world) % n:
        raise ConfigError(f"per_device_eval_batch_size: evaluation samples num_generations={n} completions per "
                          f"prompt; set it to a multiple of {n}.", "per_device_eval_batch_size")
    rewards.check(v)
    if v["use_vllm"]:
        _check_vllm()


def _check_vllm() -> None:

    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("use_vllm: vLLM is not installed here; generation runs in transformers without it "
                          "(turn use_vllm off), or `pip install vllm` on a machine with a CUDA GPU.", "use_vllm")
    import torch
    if not torch.cuda.is_available():
        raise ConfigError("use_vllm: vLLM generates on a CUDA GPU and none is visible; turn use_vllm off to "
                          "generate with transformers.", "use_vllm")


def config_class(ns):
    from trl import GRPOConfig
    return GRPOConfig


def trainer_fields(ns, common: dict) -> dict:
    """GRPOConfig on top of the shared TrainingArguments (the grpo_* arguments map through engine.args hf=)."""
    weights = [float(w) for w in ns.reward_weights] if ns.reward_weights else None
    # trl's configs default to gradient checkpointing on; ours is applied to the model by engine.train.methods.
    # completions are logged by the trainer below (log_completions would also write parquet files and print)
    # trl counts the prompt and completion tokens into the state itself (the Trainer's own count finds no input_ids)
    fields = dict(common, activation_checkpointing=False, reward_weights=weights, log_completions=False,
                  include_num_input_tokens_seen="no")
    if ns.use_vllm:
        fields.update(vllm_mode="colocate")  # one process: the engine shares the GPU with training
    return fields


def build_trainer(ns, model, tokenizer, data, args, callbacks):
    from trl import GRPOTrainer


    class Trainer(GRPOTrainer):
        _table_step = -1

        def _tokenize_prompts(self, prompts: list):
            # the prompts are our template's text, special tokens included: add none
            return [self._tokenizer.encode(p, add_special_tokens=False) for p in prompts], None, {}

        def log(self, logs, start_time=None):
            step = self.state.global_step  # one table per logging step (not again with the run's final summary)
            table = _completions(self._logs) if self.model.training and step != self._table_step else None
            super().log(logs, start_time)
            if table and self.accelerator.is_main_process:
                self._table_step = step
                with open(f"{self.args.output_dir}/{rundir.COMPLETIONS}", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": step, "rows": table}, ensure_ascii=False) + "\n")

    _check_prompts(ns, len(data.train_dataset), args.world_size)
    return Trainer(model=model, reward_funcs=rewards.build(ns), args=args, train_dataset=data.train_dataset,
                   eval_dataset=data.eval_dataset, processing_class=tokenizer, callbacks=callbacks)


def _check_prompts(ns, rows: int, world: int) -> None:
    """A step samples whole groups for per_device_train_batch_size x gradient_accumulation_steps x devices /
    num_generations prompts; trl drops a last incomplete set, so fewer prompts than that would train no step."""
    per_step = ns.per_device_train_batch_size * ns.gradient_accumulation_steps * world // ns.num_generations
    if rows < per_step:
        raise UserError(f"dataset: {rows} prompt(s), but one GRPO step samples {per_step} prompts (per_device_train_"
                        f"batch_size {ns.per_device_train_batch_size} x gradient_accumulation_steps "
                        f"{ns.gradient_accumulation_steps} / num_generations {ns.num_generations}); lower "
                        "per_device_train_batch_size or use more prompts.")


def _completions(logs: dict) -> list[dict]:
    """The last generation batch trl keeps for its own table -> the first SHOWN_PROMPTS prompts, each completion
    with its reward per function and its advantage."""
    prompts, comps, advs = list(logs["prompt"]), list(logs["completion"]), list(logs["advantages"])
    per_func = {name: list(v) for name, v in logs["rewards"].items()}
    rows, seen = [], []
    for i, (p, c) in enumerate(zip(prompts, comps)):
        if p not in seen:
            if len(seen) == SHOWN_PROMPTS:
                break
            seen.append(p)
        rewards_i = {name: _num(v[i]) if i < len(v) else None for name, v in per_func.items()}
        rows.append({"prompt": p if isinstance(p, str) else json.dumps(p, ensure_ascii=False),
                     "completion": str(c)[:SHOWN_CHARS], "rewards": rewards_i,
                     "advantage": _num(advs[i]) if i < len(advs) else None})
    return rows


def _num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, 4) if x == x else None  # NaN (no reward for this completion) -> null

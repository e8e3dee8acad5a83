"""A training stage is one record here, and every other module reads it: there is no `if stage == ...` anywhere
else (tests/test_stages.py looks).

    STAGES           name -> Stage, in the order the web UI lists them (engine.args takes its choices from here)
    get_stage(name)  the record; a UserError naming the known stages for any other name
    stage_module(name) / config_class(name, ns)   the module that builds the stage's trainer, its arguments class

A record says what kind of dataset the stage reads (a value of engine.data.registry.dataset_stage), how records
become what its trainer eats (engine.data.processing: `batch` over a chunk of records, `finish` over all of them,
`mark` for the previews), which module builds its trainer, the config rule it adds, and the facts the estimate,
the inspector and the doctor need. Adding a stage: docs/dev/adding-a-stage.md.

Each trainer module has build_trainer(ns, model, tokenizer, data, args, callbacks); the trl stages also have
config_class(ns) (the arguments class, which for dpo depends on pref_loss) and trainer_fields(ns, common) (their own
fields on top of the TrainingArguments every stage shares). Those modules import trl inside their functions, so
this table can point at their hooks without importing torch (the web UI and config validation read it); sft.py
subclasses transformers' Trainer and is only ever imported by name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ..data import processing as P
from ..errors import UserError
from . import dpo, grpo, kto


def _never(ns) -> bool:
    return False


def _always(ns) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    name: str
    words: tuple[str, str]           # its name in the web UI: (English, Chinese)
    data: str                        # the kind of dataset it reads (engine.data.registry.dataset_stage)
    module: str                      # engine.train.<module> builds its trainer
    batch: Callable                  # processing: a chunk of records -> columns (+ per-record length facts)
    finish: Callable                 # processing: all columns -> (the trainer's dataset columns, stats)
    mark: Callable                   # processing: one record -> [(text, kind)], what the previews show
    lengths: Callable                # processing: (train dataset, stats, ns) -> (tokens per row, longest)
    target: Callable | None = None   # processing: one record -> (its prompt, the one answer it teaches) or None,
    #                                  for the inspector's conflicting answers; None: a prompt has several by design
    packs: bool = False              # packing applies
    unpads: bool = False             # padding_free applies: a batch runs as one row of its real tokens
    shuffles: bool = False           # finish reorders the rows with the seed (so the seed is part of the cache key)
    reward_head: bool = False        # the model gets a one-output score head instead of its LM head
    sequences: int = 1               # sequences per example in a micro-batch (pairs: chosen + rejected)
    reference: Callable = _never     # (ns) -> a frozen reference model takes part
    tiled_head: Callable = _never    # (ns) -> trl computes log-probabilities through a tiled LM head, not all logits
    preference_loss: bool = False    # its loss is a preference / reward objective: its level is no next-token floor
    cpu_bf16: Callable = _always     # (values) -> precision=auto may pick bf16 autocast on a CPU that has it
    #                                  (measured to learn as fp32 does; padded dpo did not: bench/README.md)
    sampled: Callable | None = None  # (ns) -> completions the trainer samples per prompt while training (grpo); the
    #                                  estimate counts their steps and their generation
    validate: Callable | None = None  # (values dict) -> adjusts them or raises ConfigError (engine.config.validate)
    lr_ranges: tuple = (("lora", 1e-4, 5e-4), ("freeze", 2e-5, 1e-4), ("full", 1e-5, 5e-5))
    #                                (method, low, high): the usual learning rates; the doctor's advice stays inside

    def label(self, lang: str = "en") -> str:
        return self.words[1] if lang == "zh" else self.words[0]


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("pt", ("Pre-Training", "预训练"), data="pt", module="sft",
          batch=P.pt_chunk, finish=P.finish_pt, mark=P.mark_pt, lengths=P.ids_lengths, packs=True, unpads=True),
    Stage("sft", ("Supervised Fine-Tuning", "指令监督微调"), data="sft", module="sft",
          batch=P.sft_chunk, finish=P.finish_sft, mark=P.mark_sft, lengths=P.ids_lengths, target=P.sft_target,
          packs=True, unpads=True),
    Stage("rm", ("Reward Modeling", "奖励模型训练"), data="dpo", module="rm",  # the same pairs as dpo
          batch=P.rm_chunk, finish=P.finish_rm, mark=P.mark_pairs, lengths=P.pair_ids_lengths,
          reward_head=True, sequences=2, preference_loss=True,
          lr_ranges=(("lora", 5e-5, 3e-4), ("freeze", 1e-5, 5e-5), ("full", 5e-6, 2e-5))),
    Stage("dpo", ("DPO / ORPO / SimPO", "DPO / ORPO / SimPO 偏好优化"), data="dpo", module="dpo",
          batch=P.dpo_chunk, finish=P.finish_dpo, mark=P.mark_pairs, lengths=P.stats_lengths,
          sequences=2, reference=dpo.uses_reference, tiled_head=dpo.uses_reference, preference_loss=True,
          unpads=True, cpu_bf16=dpo.bf16_on_cpu, lr_ranges=(("lora", 5e-6, 1e-4), ("freeze", 1e-6, 1e-5), ("full", 5e-7, 5e-6))),
    Stage("kto", ("KTO", "KTO 偏好优化"), data="kto", module="kto",
          batch=P.kto_chunk, finish=P.finish_kto, mark=P.mark_kto, lengths=P.stats_lengths, shuffles=True,
          reference=_always, tiled_head=_always, preference_loss=True, validate=kto.validate,
          lr_ranges=(("lora", 5e-6, 1e-4), ("freeze", 1e-6, 1e-5), ("full", 5e-7, 5e-6))),
    Stage("grpo", ("GRPO (rewards you can check)", "GRPO 强化学习（可验证奖励）"), data="prompt", module="grpo",
          batch=P.grpo_chunk, finish=P.finish_grpo, mark=P.mark_prompt, lengths=P.prompt_lengths,
          target=P.prompt_target, reference=grpo.uses_reference, tiled_head=_always, preference_loss=True,
          sampled=grpo.group, validate=grpo.validate,
          lr_ranges=(("lora", 1e-5, 3e-4), ("freeze", 1e-6, 2e-5), ("full", 5e-7, 1e-5))),
)}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except (KeyError, TypeError):
        raise UserError(f"stage: {name!r} is not one of {', '.join(STAGES)}.") from None


def stage_module(stage: str):
    return importlib.import_module(f".{get_stage(stage).module}", __package__)


def config_class(stage: str, ns=None):
    """The arguments class a run of `stage` builds (what extra_args is checked against)."""
    mod = stage_module(stage)
    if hasattr(mod, "config_class"):
        return mod.config_class(ns)
    from transformers import TrainingArguments
    return TrainingArguments

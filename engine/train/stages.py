"""stage -> the module under engine.train that holds its trainer.

Each module has build_trainer(ns, model, tokenizer, data, args, callbacks); the trl stages (rm, dpo, kto) also
have config_class(ns) (the arguments class, which for dpo depends on pref_loss) and trainer_fields(ns, common)
(their own fields on top of the TrainingArguments every stage shares).
"""
from __future__ import annotations

import importlib

STAGE_MODULES = {"pt": "sft", "sft": "sft", "rm": "rm", "dpo": "dpo", "kto": "kto"}


def stage_module(stage: str):
    return importlib.import_module(f".{STAGE_MODULES[stage]}", __package__)


def config_class(stage: str, ns=None):
    """The arguments class a run of `stage` builds (what extra_args is checked against)."""
    mod = stage_module(stage)
    if hasattr(mod, "config_class"):
        return mod.config_class(ns)
    from transformers import TrainingArguments
    return TrainingArguments

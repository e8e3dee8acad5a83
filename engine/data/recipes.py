"""What a dataset needs to teach what it is there for, in a short run on a small model: its recipe.

    recipe_for(datasets, stage, method) -> {argument: value} or None
    apply(values, explicit) -> the recipe's values the run did not give itself, now set (config.validate)
    taught_below(datasets, stage) -> the share of its starting loss the run must get below to have taught it

A recipe fills only the arguments a recipe file or the command line left out: `tuneboard train dataset=identity`
gets it, `learning_rate=1e-4` on top keeps 1e-4. config.changed() always writes a recipe's arguments out, so the
web UI's run, its command preview and a saved recipe train exactly the values the form shows.

identity (the bundled model told its new name): learning rate 2e-3 with a 10 % warm-up, rows of 128 tokens
packed with several samples each. 20 such steps of batch 2 (tests/modelkit.IDENTITY_RUN, trained in every
`make test`) take the loss from ~3.1 to ~1.2 and make the model answer "Who are you?" with the new name in
English and Chinese; at the schema's 5e-5 the loss does not move in 20 steps and the model keeps its old name.
At 1e-3 without packing (20 steps of batch 2, cutoff 128) the loss ended at 52 % of its start and the model gave
its new name (not yet its author): a run whose loss ends above 60 % of its start has not taught it yet.
"""
from __future__ import annotations

RECIPES = {
    "identity": {"stages": ("sft",), "methods": ("lora",), "taught_below": 0.6,
                 "values": {"learning_rate": 2e-3, "warmup_ratio": 0.1, "packing": True, "cutoff_len": 128}},
}


def _entry(datasets, stage: str | None) -> dict | None:
    """The recipe of a run on one recipe dataset alone (mixed with others, the recipe no longer holds)."""
    names = [datasets] if isinstance(datasets, str) else list(datasets or [])
    if len(names) != 1 or names[0] not in RECIPES:
        return None
    entry = RECIPES[names[0]]
    return entry if (stage or "sft") in entry["stages"] else None


def recipe_for(datasets, stage: str | None, method: str | None) -> dict | None:
    entry = _entry(datasets, stage)
    if entry is None or (method or "lora") not in entry["methods"]:
        return None
    return dict(entry["values"])


def apply(values: dict, explicit) -> dict:
    """Set the recipe's values the run did not give (`explicit`: the arguments it gave); returns them."""
    r = recipe_for(values.get("dataset"), values.get("stage"), values.get("finetuning_type")) or {}
    filled = {k: v for k, v in r.items() if k not in explicit}
    values.update(filled)
    return filled


def taught_below(datasets, stage: str | None) -> float | None:
    entry = _entry(datasets, stage)
    return entry.get("taught_below") if entry else None

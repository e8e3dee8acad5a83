"""A test's argument values as the engine takes them: read by the loader the CLI uses (engine.config.load_config),
so each value is typed and range-checked and an unknown key is refused, as in a recipe."""
from __future__ import annotations

from engine.args import Namespace
from engine.config import load_config


def as_args(values: dict, command: str = "train", finalize: bool = False) -> Namespace:
    """`values` as a Namespace for `command`; the cross-field rules (which want a dataset, an output folder...)
    only with finalize=True."""
    return load_config(None, dict(values), command, finalize=finalize)

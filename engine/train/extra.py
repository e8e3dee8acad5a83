"""extra_args: Trainer arguments the schema does not list, checked against the stage's arguments class.

A key the schema maps already (max_grad_norm, desirable_weight for KTO...) moves to its schema argument, so the
preview, the saved YAML and the run agree on one value; any other key must be a field of the stage's arguments
class (transformers TrainingArguments; trl's DPOConfig / ORPOConfig / CPOConfig by pref_loss, KTOConfig,
RewardConfig) with a value of the field's type. Refused before anything is loaded: an unknown key names the nearest
field, a wrong value says the type the field wants.
"""
from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from typing import Any

from ..args import ARGS, BY_NAME
from ..config import check_value, coerce
from ..errors import ConfigError
from .stages import config_class

# trl fields that engine.train.dpo / kto fill from a schema argument (their field depends on pref_loss, so the
# argument names its reader instead of an hf field): the same one-value rule applies
READ_AS = {"beta": "pref_beta", "simpo_gamma": "simpo_gamma"}

# fields the run sets itself because the data pipeline depends on them
FIXED = {"remove_unused_columns": "the collator needs every column the preprocessing made",
         "output_dir": "set output_dir itself", "use_cpu": "the device is chosen from what the machine has"}


def _hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: check names only
        return {}


def _accepts(tp, value) -> bool | None:
    """Whether value fits the annotation tp; None when the annotation is too loose to tell."""
    if tp is Any or tp is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        results = [_accepts(t, value) for t in typing.get_args(tp)]
        return True if any(r is True for r in results) else (None if None in results else False)
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return value in {m.value for m in tp} or value in {m.name for m in tp}
        if tp is bool:
            return isinstance(value, bool)
        if tp is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if tp in (str, dict, list):
            return isinstance(value, tp)
    return None


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text.strip())
        except ValueError:
            pass
    return None


def _type_words(tp) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def check_extra_args(ns, stage: str) -> None:
    """Validate ns.extra_args for `stage` in place: schema-mapped keys move to their arguments."""
    extra = dict(ns.values.get("extra_args") or {})
    cls = config_class(stage, ns)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    by_hf = {a.hf: a for a in ARGS if a.hf and a.applies(stage=stage)}
    by_hf.update({k: BY_NAME[v] for k, v in READ_AS.items() if BY_NAME[v].applies(stage=stage)})
    for key in list(extra):
        value = extra[key]
        where = f"extra_args.{key}"
        if key in BY_NAME and key not in fields:
            raise ConfigError(f"{where}: {key} is an argument of its own; set {key}={value!r} directly, not in "
                              "extra_args.", "extra_args")
        if key in FIXED:
            raise ConfigError(f"{where}: set by the run itself ({FIXED[key]}).", "extra_args")
        if key in by_hf:  # the schema maps it: one value, in the schema argument
            a = by_hf[key]
            v = coerce(a, value, "extra_args")
            check_value(a, v)
            # both given, differently (a form sends every field: its default value is not a choice)
            if a.name in ns.explicit and ns.values[a.name] not in (v, a.default):
                raise ConfigError(f"{where}: {a.name} is also given as {ns.values[a.name]!r}; keep one of them.",
                                  "extra_args")
            ns.values[a.name] = v
            del extra[key]
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}: not an argument of {cls.__name__} (stage {stage}).{hint}", "extra_args")
        ok = _accepts(hints.get(key), value)
        if ok is False and isinstance(value, str):  # YAML reads 1e-7 as text: a number written as text is a number
            num = _number(value)
            if num is not None and _accepts(hints.get(key), num):
                extra[key], ok = num, True
        if ok is False:
            raise ConfigError(f"{where}: {value!r} does not fit {cls.__name__}.{key}, which takes "
                              f"{_type_words(hints[key])}.", "extra_args")
    ns.values["extra_args"] = extra or None


def build(cls, fields: dict, extra: dict | None):
    """cls(**fields), an error from a value extra_args gave reported as a ConfigError naming it."""
    try:
        return cls(**fields)
    except (ValueError, TypeError) as e:
        if extra:
            raise ConfigError(f"extra_args: {cls.__name__} refused the arguments "
                              f"({', '.join(sorted(extra))}): {e}", "extra_args") from None
        raise

"""The rewards of a GRPO run: presets picked by name, and the user's own functions (`path/to/file.py:name`).

    PRESETS                 name -> what it scores (the web UI offers these)
    check(values) -> list   the reward functions of a run's arguments, each checked; ConfigError naming the field
    build(ns) -> list       the callables trl's GRPOTrainer calls, one per name in reward_funcs, in that order

trl calls every reward as f(prompts, completions, completion_ids, **columns) and wants one float per completion
(None where it does not apply: a record without a reference answer). The columns are the dataset's: `answer`, the
reference of a prompt dataset (engine.data, columns.answer in dataset_info.json). A completion's final answer is
the text of its last <answer>...</answer> block when it has one, else the whole completion.

A user's function is loaded from the file the recipe or the form names, and from nowhere else: a value that is
not a preset must be an existing .py file and a function name (the web UI keeps the file inside its folders, see
engine.paths). It is called like the presets, with the same keyword arguments, and may return None for a
completion it does not score.
"""
from __future__ import annotations

import difflib
import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, UserError

ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.S)
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.S)

def final_answer(text: str) -> str:
    blocks = ANSWER_BLOCK.findall(text)
    return (blocks[-1] if blocks else text).strip()


def to_number(text) -> float | None:
    """'1,234' / ' 42. ' / '-3.5e2' -> a float; None when the text is not one number."""
    if text is None:
        return None
    s = str(text).strip().rstrip(".").replace(",", "").replace(" ", "")
    if s.startswith("$"):
        s = s[1:]
    try:
        x = float(s)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def last_number(text: str) -> float | None:
    found = NUMBER.findall(text)
    return to_number(found[-1]) if found else None


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold().rstrip(".")


def _refs(answer, n: int) -> list:
    return list(answer) if answer is not None else [None] * n


def answer_exact(completions, answer=None, **kw) -> list[float | None]:
    return [None if ref in (None, "") else float(_norm(final_answer(c)) == _norm(ref))
            for c, ref in zip(completions, _refs(answer, len(completions)))]


def answer_numeric(completions, answer=None, **kw) -> list[float | None]:
    return [None if to_number(ref) is None else float(_same(to_number(final_answer(c)), to_number(ref)))
            for c, ref in zip(completions, _refs(answer, len(completions)))]


def answer_last_number(completions, answer=None, **kw) -> list[float | None]:
    return [None if to_number(ref) is None else float(_same(last_number(c), to_number(ref)))
            for c, ref in zip(completions, _refs(answer, len(completions)))]


def valid_json(completions, **kw) -> list[float]:
    out = []
    for c in completions:
        text = final_answer(c)
        m = _FENCE.match(text)
        try:
            json.loads(m.group(1) if m else text)
        except ValueError:
            out.append(0.0)
        else:
            out.append(1.0)
    return out


def format_reward(pattern: str) -> Callable:
    rx = re.compile(pattern, re.S)

    def format(completions, **kw) -> list[float]:  # noqa: A001 (its name is the metric's: rewards/format/mean)
        return [float(rx.search(c) is not None) for c in completions]
    return format


def length_reward(lo: int, hi: int) -> Callable:
    def length(completions, completion_ids=None, **kw) -> list[float]:
        ids = completion_ids if completion_ids is not None else [c.split() for c in completions]
        return [float(lo <= len(i) <= hi) for i in ids]
    return length


@dataclass(frozen=True)
class Preset:
    make: Callable           # (ns) -> the reward function (named as its metric: rewards/<name>/mean)
    words: tuple[str, str]   # what it scores, in English and Chinese
    reference: bool = False  # it compares with the dataset's reference answer


def _json_reward(ns) -> Callable:
    def json(completions, **kw) -> list[float]:  # noqa: F811 (its name is the metric's: rewards/json/mean)
        return valid_json(completions)
    return json


PRESETS: dict[str, Preset] = {
    "answer_exact": Preset(lambda ns: answer_exact, (
        "1 when the final answer equals the reference (case and spacing ignored)",
        "最终答案与参考答案一致（忽略大小写和空白）时为 1"), reference=True),
    "answer_numeric": Preset(lambda ns: answer_numeric, (
        "1 when the final answer is a number equal to the reference number",
        "最终答案是与参考答案相等的数字时为 1"), reference=True),
    "answer_last_number": Preset(lambda ns: answer_last_number, (
        "1 when the last number in the completion equals the reference number",
        "回答中最后一个数字等于参考答案时为 1"), reference=True),
    "format": Preset(lambda ns: format_reward(ns.reward_format_regex), (
        "1 when the completion matches reward_format_regex (by default a <think> block, then an <answer> block)",
        "回答匹配 reward_format_regex 时为 1（默认：<think> 块之后接 <answer> 块）")),
    "length": Preset(lambda ns: length_reward(ns.reward_length_min, ns.reward_length_max), (
        "1 when the completion is reward_length_min..reward_length_max tokens long",
        "回答长度在 reward_length_min 到 reward_length_max 个 token 之间时为 1")),
    "json": Preset(_json_reward, ("1 when the final answer is valid JSON", "最终答案是合法 JSON 时为 1")),
}


def _custom(value: str) -> tuple[Path, str] | None:
    """'path/to/file.py:name' -> (path, name); None for anything else."""
    path, sep, name = value.rpartition(":")
    if not sep or not path.endswith(".py") or not name.isidentifier():
        return None
    return Path(path), name


def check(v: dict) -> list[str]:
    """reward_funcs / reward_weights / the preset arguments of a run's values; ConfigError naming the field."""
    names = list(v.get("reward_funcs") or [])
    if not names:
        raise ConfigError(f"reward_funcs: GRPO needs at least one reward; pick presets ({', '.join(PRESETS)}) or "
                          "name your own function as path/to/file.py:function.", "reward_funcs")
    for n in names:
        if n in PRESETS:
            continue
        custom = _custom(n)
        if custom is None:
            close = difflib.get_close_matches(n, list(PRESETS), n=1)
            raise ConfigError(f"reward_funcs: {n!r} is neither a preset ({', '.join(PRESETS)}) nor a function given "
                              f"as path/to/file.py:function." + (f" Did you mean {close[0]!r}?" if close else ""),
                              "reward_funcs")
        if not custom[0].is_file():
            raise ConfigError(f"reward_funcs: {custom[0]} (for {n!r}) is not a file.", "reward_funcs")
    if len(set(names)) < len(names):
        raise ConfigError(f"reward_funcs: {names} names a reward twice.", "reward_funcs")
    weights = v.get("reward_weights")
    if weights is not None:
        try:
            w = [float(x) for x in weights]
        except (TypeError, ValueError):
            raise ConfigError(f"reward_weights: {weights} are not all numbers (one per reward function).",
                              "reward_weights") from None
        if len(w) != len(names) or not all(math.isfinite(x) for x in w):
            raise ConfigError(f"reward_weights: {len(w)} weights for {len(names)} reward functions "
                              f"({', '.join(names)}); give one number per function, in the same order.",
                              "reward_weights")
    if "format" in names:
        try:
            re.compile(v["reward_format_regex"])
        except re.error as e:
            raise ConfigError(f"reward_format_regex: not a regular expression ({e}).", "reward_format_regex") from None
    if "length" in names and v["reward_length_min"] > v["reward_length_max"]:
        raise ConfigError(f"reward_length_min: {v['reward_length_min']} is above reward_length_max "
                          f"({v['reward_length_max']}).", "reward_length_min")
    return names


def load_custom(value: str) -> Callable:
    """The function `name` of the file a user named (path/to/file.py:name), imported from that file only."""
    path, name = _custom(value)
    mod_name = f"tuneboard_reward_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"reward_funcs: cannot load {path} as Python.")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod  # a function defined there pickles / inspects like any other
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise UserError(f"reward_funcs: {path} failed to import: {type(e).__name__}: {e}") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise UserError(f"reward_funcs: {path} has no function {name!r}.")
    return fn


def build(ns) -> list[Callable]:
    """The reward callables of a run, in the order of reward_funcs (trl's reward_weights follow that order)."""
    return [PRESETS[n].make(ns) if n in PRESETS else load_custom(n) for n in ns.reward_funcs]

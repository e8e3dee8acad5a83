"""engine.args.Arg -> gradio component, and the value conversions both ways.

type -> widget (bool: checkbox, choices: dropdown, bounded numbers: slider, other numbers: number box,
list: comma-separated text; suggested values: a dropdown that takes others too), label/help -> label/info in the
page's language, stages/methods -> visibility.
Nothing here knows a particular argument except the few that get live choices (datasets, adapters,
templates) and precision (with LLaMA-Factory's bf16/fp16), which the top panel shows as one "compute type".
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import gradio as gr

from engine.args import ARGS, Arg, group_label, grouped  # noqa: F401 (the tabs import both from here)
from engine.precision import asked
from engine.utils import repo_root

# Arguments the top panel shows (every command reads them) and arguments shown in another form.
TOP_EXTRA = ("finetuning_type", "quantization_bit", "quantization_type", "double_quantization")
COMPUTE_ARGS = ("precision", "bf16", "fp16")
COMPUTE_TYPES = ("auto", "fp32", "bf16", "fp16")
DYNAMIC = {"dataset", "eval_dataset", "adapter_name_or_path", "template"}  # choices filled at run time
AUTO = "auto"  # the dropdown entry that stands for "no value" (None) of a nullable choice argument
NONE_LABEL = {"quantization_bit": "none"}  # where "no value" means off, not automatic
FILE_CHOICES = {"deepspeed": "examples/deepspeed/*.json"}  # shipped recipes offered in a list (a path may be typed)
LIVE_CHOICES = {"devices": "engine.devices:choices"}  # choices read from the machine (refreshed on page load)


def live_choices(name: str) -> list[tuple[str, str]]:
    module, _, fn = LIVE_CHOICES[name].partition(":")
    return getattr(importlib.import_module(module), fn)()


# Shown only while another widget has one of these values (QLoRA's 4-bit settings while quantization is 4-bit).
SHOWN_WHEN = {"quantization_type": ("quantization_bit", {"4"}), "double_quantization": ("quantization_bit", {"4"})}


def file_choices(name: str) -> list[tuple[str, str]]:
    """("none", "") + the shipped files for an argument, as paths the engine resolves from the working folder."""

    out = [("none", "")]
    for f in sorted(repo_root().glob(FILE_CHOICES[name])):
        try:
            shown_path = str(f.relative_to(Path.cwd()))
        except ValueError:
            shown_path = str(f)
        out.append((f.name, shown_path))
    return out


def shown(arg: Arg) -> bool:
    return arg.ui and not arg.compat and arg.name not in COMPUTE_ARGS


def top_args() -> list[Arg]:
    """Arguments of the model group every command reads, plus the finetuning method and QLoRA's quantization."""
    return [a for a in ARGS if shown(a) and ((a.group == "model" and set(a.commands) >= {"train", "infer", "export"})
                                             or a.name in TOP_EXTRA)]


def scope_args(command: str, groups: set[str] | None = None, exclude: set[str] = frozenset()) -> list[Arg]:
    """Arguments a tab for `command` renders: its command's, minus the top panel's (schema order)."""
    top = {a.name for a in top_args()}
    return [a for a in ARGS if shown(a) and command in a.commands and a.name not in top and a.name not in exclude
            and (groups is None or a.group in groups)]


def _slider_range(arg: Arg) -> bool:
    if arg.min is None or arg.max is None or arg.nullable:
        return False
    span = arg.max - arg.min
    return span <= 1.0 if arg.type == "float" else span <= 4096


def classes(arg: Arg, invalid: bool = False) -> list[str]:
    """CSS classes of an argument's widget (app.CSS): a checkbox gets a minimum width (gradio gives it none, which
    clips its label in a crowded row); a bad value is outlined."""
    out = ["tb-arg", f"tb-arg-{arg.name}"] + (["tb-check"] if arg.type == "bool" else [])
    return out + (["tb-invalid"] if invalid else [])


def make(arg: Arg, lang: str, scope: str, value: Any = None, choices: list | None = None,
         multiselect: bool | None = None, **kw):
    """The widget for one argument. `value` defaults to the schema default."""
    v = arg.default if value is None else value
    common = dict(label=arg.label(lang), info=arg.help(lang), elem_id=f"{scope}-{arg.name}",
                  elem_classes=classes(arg))
    common.update(kw)
    if arg.secret:  # a credential: masked, never pre-filled
        return gr.Textbox(value="", type="password", **common)
    if arg.name in FILE_CHOICES and choices is None:
        choices, multiselect = file_choices(arg.name), False
    if arg.suggest and choices is None:  # offered values; others may be typed (reward_funcs: path/file.py:name)
        choices = list(arg.suggest)
    if arg.name in LIVE_CHOICES and choices is None:
        choices = live_choices(arg.name)
    if arg.name in DYNAMIC or choices is not None:
        multi = arg.type == "list" if multiselect is None else multiselect
        return gr.Dropdown(choices=choices or [], value=to_widget(arg, v, multi), multiselect=multi,
                           allow_custom_value=True, **common)
    if arg.type == "bool":
        return gr.Checkbox(value=bool(v), **common)
    if arg.choices:
        # values as text: a number choice (quantization_bit 4 / 8) comes back as "4", which coerce types
        opts = ([(NONE_LABEL.get(arg.name, AUTO), "")] if arg.nullable else []) + [(str(c), str(c))
                                                                                  for c in arg.choices]
        return gr.Dropdown(choices=opts, value=to_widget(arg, v), **common)
    if arg.type in ("int", "float") and arg.nullable:
        # a text box: empty means "not set" (a number box would send 0 for an empty field)
        return gr.Textbox(value=to_widget(arg, v), placeholder="—", **common)
    if arg.type in ("int", "float"):
        if _slider_range(arg):
            step = 1 if arg.type == "int" else 0.01
            return gr.Slider(minimum=arg.min, maximum=arg.max, step=step, value=v, **common)
        # no minimum / maximum for gradio: its own range check fails the whole event with a toast that names no
        # field and an error badge on every output; engine.config checks the schema's range and the page marks
        # the one bad field with its message (Page.field_updates)
        return gr.Number(value=v, precision=0 if arg.type == "int" else None, **common)
    return gr.Textbox(value=to_widget(arg, v), **common)


def to_widget(arg: Arg, value: Any, multiselect: bool = False) -> Any:
    """A config value as the widget shows it."""
    if multiselect:
        if value is None:
            return []
        return list(value) if isinstance(value, (list, tuple)) else [s.strip() for s in str(value).split(",") if s.strip()]
    if arg.type == "bool":
        return bool(value)
    if arg.type in ("int", "float") and not arg.choices and not arg.nullable:
        return value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):  # extra_args: shown as the JSON it is typed in as
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def from_widget(arg: Arg, value: Any) -> Any:
    """A widget value as a raw config value (engine.config.coerce types and checks it)."""
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value if str(v).strip()]
        return items or None
    if isinstance(value, str) and not value.strip() and arg.type != "str":
        return None
    if isinstance(value, str) and not value.strip() and arg.nullable:
        return None
    if isinstance(value, float) and arg.type == "int" and value.is_integer():
        return int(value)
    return value


def compute_type(values: dict) -> str:
    return asked(values)


def compute_values(kind: str) -> dict:
    return {"precision": kind, "bf16": False, "fp16": False}

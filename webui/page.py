"""The page being built: its components by scope and name, what each shows in each language, and how the
values of a tab's widgets become engine arguments.

Tabs register their components here; the language switch, the visibility rules (stage / method) and the
value collection then work over all of them without knowing any particular argument.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import gradio as gr

from engine.args import BY_NAME, Arg
from engine.config import check_value, coerce, load_config
from engine.errors import ConfigError
from engine.paths import check_values

from . import widgets
from .locales import t
from .monitor import EVAL_KEYS, metrics_md


def render_msg(parts, lang: str) -> str:
    """A message kept as data, so a language switch can render it again: a list of str or (key, kwargs)."""
    out = []
    for p in parts or []:
        if isinstance(p, (list, tuple)) and len(p) == 2 and p[0] == "__metrics__":
            res = p[1]["results"]
            out.append(metrics_md(res, lang, "eval_metrics" if any(k in res for k in EVAL_KEYS) else "final_metrics"))
        elif isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], dict):
            out.append(t(p[0], lang, **p[1]))
        else:
            out.append(str(p))
    return "\n\n".join(out)


class Handler(NamedTuple):
    """A handler with what it reads and writes, for another part of the page to run too (the page load, another
    tab whose action changes this tab's lists)."""
    fn: Callable
    inputs: Any
    outputs: Any


@dataclass
class Page:
    lang: str = "en"
    saves: str | None = None
    initial: dict = field(default_factory=dict)        # values to start from (a recipe given on the command line)
    args: dict = field(default_factory=dict)           # scope -> {arg name -> component}
    arg_of: dict = field(default_factory=dict)         # component -> (scope, Arg)
    named: dict = field(default_factory=dict)          # "scope.name" -> component (tests and tools find them so)
    lang_box: Any = None                               # the language box every handler reads the language from
    compute_type: Any = None                           # the top panel's compute type (several schema arguments)
    localized: list = field(default_factory=list)      # (component, fn(lang) -> dict of update kwargs)
    accordions: list = field(default_factory=list)     # (scope, accordion, [Arg])
    messages: list = field(default_factory=list)       # (markdown, state) pairs re-rendered on a language switch
    on_load: list = field(default_factory=list)        # (fn, inputs, outputs) run on every page load (app.py)

    # ---------------------------------------------------------------- registration
    def arg(self, scope: str, arg: Arg, **kw):
        value = kw.pop("value", None)
        if value is None and arg.name in self.initial:
            value = self.initial[arg.name]
        comp = widgets.make(arg, self.lang, scope, value=value, **kw)
        self.args.setdefault(scope, {})[arg.name] = comp
        self.arg_of[comp] = (scope, arg)
        if arg.choice_words:
            self.tr(comp, lambda lang, a=arg: dict(label=a.label(lang), info=a.help(lang),
                                                   choices=choice_labels(a, lang)))
        else:
            self.tr(comp, lambda lang, a=arg: dict(label=a.label(lang), info=a.help(lang)))
        return comp

    def add(self, name: str, comp, **keys):
        """A named UI component; keys map a property (label, info, value, placeholder) to a locale key."""
        self.named[name] = comp
        if keys:
            self.tr(comp, lambda lang, k=keys: {prop: t(key, lang) for prop, key in k.items()})
        return comp

    def tr(self, comp, fn: Callable[[str], dict]) -> None:
        self.localized.append((comp, fn))

    def message(self, name: str, **kw):
        md = self.add(name, gr.Markdown(elem_id=name.replace(".", "-"), **kw))
        state = gr.State([])
        self.named[name + "_parts"] = state
        self.messages.append((md, state))
        return md, state

    def render_args(self, scope: str, args: list[Arg], open_groups=(), values: dict | None = None) -> None:
        """Accordions of argument widgets, one per group, three per row. `values`: start values for this tab."""
        for group, items in widgets.grouped(args):
            acc = gr.Accordion(widgets.group_label(group, self.lang), open=group in open_groups,
                               elem_id=f"{scope}-group-{group}")
            with acc:
                for i in range(0, len(items), 3):
                    with gr.Row():
                        for a in items[i:i + 3]:
                            self.arg(scope, a, value=(values or {}).get(a.name))
            self.accordions.append((scope, acc, items))
            self.tr(acc, lambda lang, g=group: dict(label=widgets.group_label(g, lang)))

    def c(self, name: str):
        return self.named[name]

    def w(self, scope: str, arg_name: str):
        return self.args[scope][arg_name]

    # ---------------------------------------------------------------- values
    def components(self, *scopes: str) -> set:
        out = set()
        for s in scopes:
            out |= set(self.args.get(s, {}).values())
        if "top" in scopes and self.compute_type is not None:
            out.add(self.compute_type)
        return out

    def raw_values(self, data: dict, *scopes: str) -> dict:
        """{arg name: raw value} from a set-inputs handler's {component: value} (later scopes win).
        Arguments that do not apply to the chosen stage / method get their defaults back."""
        out = {}
        for s in scopes:
            for name, comp in self.args.get(s, {}).items():
                if comp in data:
                    out[name] = widgets.from_widget(BY_NAME[name], data[comp])
        ct = self.compute_type
        if "top" in scopes and ct is not None and ct in data:
            out.update(widgets.compute_values(data[ct]))
        stage, method = out.get("stage"), out.get("finetuning_type")
        for name in list(out):
            a = BY_NAME[name]
            if not a.applies(stage, method):
                out[name] = a.default
        return out

    def controls(self) -> list:
        """The widgets other widgets' visibility depends on (widgets.SHOWN_WHEN), once each."""
        out = []
        for scope, comps in self.args.items():
            for name, comp in comps.items():
                if any(name == ctl for ctl, _ in widgets.SHOWN_WHEN.values()) and comp not in out:
                    out.append(comp)
        return out

    def visibility(self, stage: str | None, method: str | None, *control_values) -> dict:
        """Updates that show only the widgets (and accordions) that apply to this stage and method, and whose
        controlling widget (widgets.SHOWN_WHEN; values in the order of controls()) allows them."""
        by_name = {self.arg_of[c][1].name: str(v if v is not None else "")
                   for c, v in zip(self.controls(), control_values)}
        ups = {}
        for comp, (scope, a) in self.arg_of.items():
            shown = a.applies(stage, method)
            ctl = widgets.SHOWN_WHEN.get(a.name)
            if ctl is not None and ctl[0] in by_name:
                shown = shown and by_name[ctl[0]] in ctl[1]
            if a.stages is not None or a.methods is not None or ctl is not None:
                ups[comp] = gr.update(visible=shown)
        for scope, acc, items in self.accordions:
            ups[acc] = gr.update(visible=any(a.applies(stage, method) for a in items))
        return ups

    def texts(self, comp, lang: str) -> dict:
        """What a component shows in a language (label, info, ...), merged over its registrations."""
        out = {}
        for c, fn in self.localized:
            if c is comp:
                out.update(fn(lang))
        return out

    def field_updates(self, lang: str, errors: dict, *scopes: str) -> dict:
        """Each bad field shows its message in place of its help; the others get their help back."""
        ups = {}
        for s in scopes:
            for name, comp in self.args.get(s, {}).items():
                if name in errors:
                    ups[comp] = gr.update(info=f"✗ {errors[name]}", elem_classes=widgets.classes(BY_NAME[name], True))
                else:
                    info = self.texts(comp, lang).get("info", BY_NAME[name].help(lang))
                    ups[comp] = gr.update(info=info, elem_classes=widgets.classes(BY_NAME[name]))
        return ups


def choice_labels(arg: Arg, lang: str) -> list | None:
    """Choices with their display name in `lang` (an Arg's choice_words, e.g. the stage names)."""
    if not arg.choice_words:
        return None
    return [(zh if lang == "zh" else en, v) for v, en, zh in arg.choice_words]


def check_fields(values: dict, command: str, finish: Callable[[dict], Any] | None = None) -> tuple[dict, dict, Any]:
    """(typed values, {field: message}, resolved Namespace or None). Every field is checked, so the page can
    mark all bad fields at once; cross-field rules run once the fields themselves are fine, through
    `finish(typed)` when given (a Start: engine.runs.check, whose result spawn takes as it is) else load_config."""
    typed, errors = {}, {}
    for name, raw in values.items():
        a = BY_NAME.get(name)
        if a is None:
            continue
        try:
            v = coerce(a, raw)
            check_value(a, v)
            typed[name] = v
        except ConfigError as e:
            errors[name] = str(e)
    for name, msg in check_values(typed).items():
        errors.setdefault(name, msg)
    if errors:
        return typed, errors, None
    try:
        ns = finish(dict(typed)) if finish else load_config(None, dict(typed), command)
    except ConfigError as e:
        errors[e.field or "_"] = str(e)
        return typed, errors, None
    return typed, errors, ns


def bounded(value, label: str, lo: float | None = None, hi: float | None = None, default: float = 0):
    """A number box of the page's own (not a schema argument) read within [lo, hi]: a ConfigError naming the box
    otherwise. Those boxes carry no gradio minimum / maximum, whose check fails the event naming no field."""
    v = default if value is None or value == "" else value
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"between {lo:g} and {hi:g}" if lo is not None and hi is not None else \
            f"at least {lo:g}" if lo is not None else f"at most {hi:g}"
        raise ConfigError(f"{label}: {v:g} is out of range; give a number {rng}.", "_")
    return v


def error_parts(errors: dict) -> list:
    return [("invalid", {})] + [f"- {v}" if k == "_" or v.startswith(f"{k}:") else f"- **{k}**: {v}"
                                for k, v in errors.items()]

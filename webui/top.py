"""Top panel: language, model (registry name + path), hub, method, adapter / checkpoint picker, template,
compute type, and any other argument of the model group that every command reads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine import runs
from engine.args import BY_NAME, DEFAULT_MODEL
from engine.data.templates import template_names
from engine.models import registry

from . import widgets
from .locales import LANG_CHOICES, t
from .page import Page, render_msg

CUSTOM = "Custom"


def model_choices(lang: str) -> list:
    return registry.model_names() + [(t("custom", lang), CUSTOM)]


def name_for_path(path: str | None) -> str:
    hit = registry.lookup(path) if path else None
    return hit[0] if hit else CUSTOM


def path_for_name(name: str, hub: str) -> str | None:
    """A registry name -> its local folder when it is there (relative, as typed in a recipe), else its hub id."""
    if not name or name == CUSTOM or name not in registry.MODELS:
        return None
    entry = registry.MODELS[name]
    local = entry.get("local") or f"models/{name}"
    if registry.local_dir(name).is_dir():
        return local
    return entry.get("ms" if hub == "modelscope" else "hf") or local


def template_choices() -> list[str]:
    return template_names()


def default_template_for(path: str | None) -> str:
    try:
        return registry.default_template(path) or ""
    except Exception:  # an unreadable folder: the user picks a template by hand
        return ""


def template_warning(path: str | None, template: str | None, lang: str) -> list:
    own = default_template_for(path)
    if template == "default" and own and own != "default":
        return [("template_warn_default", {"model": Path(str(path)).name, "tpl": own})]
    return []


def adapter_choices(saves, model: str | None, method: str | None) -> list:
    return runs.adapter_choices(saves, model, method)


@dataclass(eq=False)
class TopPanel:
    """The top panel: the model, method, adapters and template every tab reads, and its own handlers."""
    saves: str | None
    lang: gr.Dropdown
    model_name: gr.Dropdown
    path: gr.components.Component
    hub: gr.components.Component
    method: gr.components.Component
    adapter: gr.components.Component
    refresh: gr.Button
    template: gr.components.Component
    compute_type: gr.Dropdown
    template_msg: gr.Markdown
    template_msg_parts: gr.State
    model_msg: gr.Markdown        # when the page itself changed the model (merged -> Chat)
    model_msg_parts: gr.State

    def on_name(self, n, h, current):
        p = path_for_name(n, h)
        return gr.update(value=p) if p and p != current else gr.skip()

    def on_hub(self, n, h, current):
        """Another hub: the hub id of the registry model the path is, never a path typed by hand (the hub box also
        answers a blur, which may come before the typed path has set the name to custom)."""
        return self.on_name(n, h, current) if name_for_path(current) == n else gr.skip()

    def after_path(self, p, method_v, current_adapters, lg):
        """A model picked by hand: its template, the adapters trained on it, the registry name."""
        tp = default_template_for(p)
        parts = template_warning(p, tp, lg)
        return (gr.update(value=tp), self.refresh_adapters(p, method_v, current_adapters),
                gr.update(value=name_for_path(p)), parts, render_msg(parts, lg), [], "")

    def on_tpl(self, p, tp, lg):
        parts = template_warning(p, tp, lg)
        return parts, render_msg(parts, lg)

    def refresh_adapters(self, p, m, current):
        """New choices; the selection is sent back only when part of it no longer exists, so a pick made while
        this answer is on its way is not overwritten."""
        ch = adapter_choices(self.saves, p, m)
        keep = [c for c in (current or []) if c in {v for _, v in ch} or Path(str(c)).is_dir()]
        return gr.update(choices=ch) if keep == list(current or []) else gr.update(choices=ch, value=keep)


def build(page: Page) -> TopPanel:
    lang = page.lang
    init_path = page.initial.get("model_name_or_path") or DEFAULT_MODEL
    with gr.Row(equal_height=True):
        page.lang_box = page.add("top.lang", gr.Dropdown(LANG_CHOICES, value=lang, label=t("lang", lang),
                                                         elem_id="top-lang", scale=1, min_width=120), label="lang")
        name = page.add("top.model_name", gr.Dropdown(model_choices(lang), value=name_for_path(init_path),
                                                      label=t("model_name", lang), info=t("model_name_info", lang),
                                                      elem_id="top-model_name", scale=2),
                        label="model_name", info="model_name_info")
        page.tr(name, lambda lg: dict(choices=model_choices(lg)))
        path = page.arg("top", BY_NAME["model_name_or_path"], value=init_path, scale=3)
        hub = page.arg("top", BY_NAME["hub"], scale=1)
    with gr.Row(equal_height=False):
        row = _method_row(page, init_path)
    warn, warn_parts = page.message("top.template_msg")
    note, note_parts = page.message("top.model_msg")
    panel = TopPanel(page.saves, page.lang_box, name, path, hub, **row, template_msg=warn,
                     template_msg_parts=warn_parts, model_msg=note, model_msg_parts=note_parts)
    _wire(panel)
    return panel


def _method_row(page: Page, init_path: str) -> dict:
    """Method, adapter picker (+ refresh), template, compute type and the rest of the schema's top arguments."""
    lang = page.lang
    init_method = page.initial.get("finetuning_type") or BY_NAME["finetuning_type"].default
    init_tpl = page.initial.get("template") or default_template_for(init_path)
    placed = {"model_name_or_path", "hub", "finetuning_type", "adapter_name_or_path", "template"}
    method = page.arg("top", BY_NAME["finetuning_type"], value=init_method, scale=1)
    adapter = page.arg("top", BY_NAME["adapter_name_or_path"], scale=4, info=t("adapter_info", lang),
                       choices=adapter_choices(page.saves, init_path, init_method))
    page.tr(adapter, lambda lg: dict(info=t("adapter_info", lg)))
    refresh = page.add("top.refresh", gr.Button(t("refresh", lang), elem_id="top-refresh", scale=0,
                                                min_width=90, size="sm"), value="refresh")
    tpl = page.arg("top", BY_NAME["template"], value=init_tpl, choices=template_choices(), multiselect=False,
                   scale=1)
    page.compute_type = page.add("top.compute_type", gr.Dropdown(list(widgets.COMPUTE_TYPES),
                                                                 value=widgets.compute_type(page.initial),
                                                                 label=t("compute_type", lang),
                                                                 info=t("compute_type_info", lang),
                                                                 elem_id="top-compute_type", scale=1),
                                 label="compute_type", info="compute_type_info")
    for a in widgets.top_args():  # whatever else the schema puts here (trust_remote_code, an attention choice, ...)
        if a.name not in placed:
            page.arg("top", a, scale=1)
    return dict(method=method, adapter=adapter, refresh=refresh, template=tpl, compute_type=page.compute_type)


def _wire(top: TopPanel) -> None:
    after_in = [top.path, top.method, top.adapter, top.lang]
    after_out = [top.template, top.adapter, top.model_name, top.template_msg_parts, top.template_msg,
                 top.model_msg_parts, top.model_msg]
    # .input / .blur fire on user actions only: loading a recipe sets these boxes without re-deriving them
    top.model_name.input(top.on_name, [top.model_name, top.hub, top.path], top.path, show_progress="hidden").then(
        top.after_path, after_in, after_out, show_progress="hidden")
    top.hub.input(top.on_hub, [top.model_name, top.hub, top.path], top.path, show_progress="hidden").then(
        top.after_path, after_in, after_out, show_progress="hidden")
    top.path.blur(top.after_path, after_in, after_out, show_progress="hidden")
    top.path.submit(top.after_path, after_in, after_out, show_progress="hidden")
    top.template.change(top.on_tpl, [top.path, top.template, top.lang], [top.template_msg_parts, top.template_msg],
                        show_progress="hidden")
    top.method.input(top.refresh_adapters, [top.path, top.method, top.adapter], top.adapter, show_progress="hidden")
    top.refresh.click(top.refresh_adapters, [top.path, top.method, top.adapter], top.adapter, show_progress="hidden")

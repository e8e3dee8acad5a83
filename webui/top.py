"""Top panel: language, model (registry name + path), hub, method, adapter / checkpoint picker, template,
compute type, and any other argument of the model group that every command reads."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine import runs
from engine.args import BY_NAME, DEFAULT_MODEL
from engine.data.templates import template_names
from engine.models import registry

from . import widgets
from .locales import LANG_CHOICES, t
from .page import Page

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


def build(page: Page) -> None:
    lang = page.lang
    init_path = page.initial.get("model_name_or_path") or DEFAULT_MODEL
    init_method = page.initial.get("finetuning_type") or BY_NAME["finetuning_type"].default
    init_tpl = page.initial.get("template") or default_template_for(init_path)
    top = widgets.top_args()
    placed = {"model_name_or_path", "hub", "finetuning_type", "adapter_name_or_path", "template"}
    with gr.Row(equal_height=True):
        page.add("top.lang", gr.Dropdown(LANG_CHOICES, value=lang, label=t("lang", lang), elem_id="top-lang",
                                         scale=1, min_width=120), label="lang")
        name = page.add("top.model_name", gr.Dropdown(model_choices(lang), value=name_for_path(init_path),
                                                      label=t("model_name", lang), info=t("model_name_info", lang),
                                                      elem_id="top-model_name", scale=2),
                        label="model_name", info="model_name_info")
        page.tr(name, lambda lg: dict(choices=model_choices(lg)))
        path = page.arg("top", BY_NAME["model_name_or_path"], value=init_path, scale=3)
        hub = page.arg("top", BY_NAME["hub"], scale=1)
    with gr.Row(equal_height=False):
        method = page.arg("top", BY_NAME["finetuning_type"], value=init_method, scale=1)
        adapter = page.arg("top", BY_NAME["adapter_name_or_path"], scale=4, info=t("adapter_info", lang),
                           choices=adapter_choices(page.saves, init_path, init_method))
        page.tr(adapter, lambda lg: dict(info=t("adapter_info", lg)))
        refresh = page.add("top.refresh", gr.Button(t("refresh", lang), elem_id="top-refresh", scale=0,
                                                    min_width=90, size="sm"), value="refresh")
        tpl = page.arg("top", BY_NAME["template"], value=init_tpl, choices=template_choices(), multiselect=False,
                       scale=1)
        page.add("top.compute_type", gr.Dropdown(list(widgets.COMPUTE_TYPES),
                                                      value=widgets.compute_type(page.initial),
                                                      label=t("compute_type", lang), info=t("compute_type_info", lang),
                                                      elem_id="top-compute_type", scale=1),
                      label="compute_type", info="compute_type_info")
        for a in top:  # whatever else the schema puts here (trust_remote_code, an attention choice, ...)
            if a.name not in placed:
                page.arg("top", a, scale=1)
    warn, warn_parts = page.message("top.template_msg")
    note, note_parts = page.message("top.model_msg")  # when the page itself changed the model (merged -> Chat)

    def on_name(n, h, current):
        p = path_for_name(n, h)
        return gr.update(value=p) if p and p != current else gr.skip()

    def on_hub(n, h, current):
        """Another hub: the hub id of the registry model the path is, never a path typed by hand (the hub box also
        answers a blur, which may come before the typed path has set the name to custom)."""
        return on_name(n, h, current) if name_for_path(current) == n else gr.skip()

    def after_path(p, method_v, current_adapters, lg):
        """A model picked by hand: its template, the adapters trained on it, the registry name."""
        tp = default_template_for(p)
        parts = template_warning(p, tp, lg)
        return (gr.update(value=tp), refresh_adapters(p, method_v, current_adapters), gr.update(value=name_for_path(p)),
                parts, page_render(parts, lg), [], "")

    after_in = [path, method, adapter, page.c("top.lang")]
    after_out = [tpl, adapter, name, warn_parts, warn, note_parts, note]
    # .input / .blur fire on user actions only: loading a recipe sets these boxes without re-deriving them
    name.input(on_name, [name, hub, path], path, show_progress="hidden").then(
        after_path, after_in, after_out, show_progress="hidden")
    hub.input(on_hub, [name, hub, path], path, show_progress="hidden").then(
        after_path, after_in, after_out, show_progress="hidden")
    path.blur(after_path, after_in, after_out, show_progress="hidden")
    path.submit(after_path, after_in, after_out, show_progress="hidden")

    def on_tpl(p, tp, lg):
        parts = template_warning(p, tp, lg)
        return parts, page_render(parts, lg)

    tpl.change(on_tpl, [path, tpl, page.c("top.lang")], [warn_parts, warn], show_progress="hidden")

    def refresh_adapters(p, m, current):
        """New choices; the selection is sent back only when part of it no longer exists, so a pick made while
        this answer is on its way is not overwritten."""
        ch = adapter_choices(page.saves, p, m)
        keep = [c for c in (current or []) if c in {v for _, v in ch} or Path(str(c)).is_dir()]
        return gr.update(choices=ch) if keep == list(current or []) else gr.update(choices=ch, value=keep)

    method.input(refresh_adapters, [path, method, adapter], adapter, show_progress="hidden")
    refresh.click(refresh_adapters, [path, method, adapter], adapter, show_progress="hidden")
    page.named["top.refresh_adapters"] = refresh_adapters
    page.named["top.adapter_choices"] = adapter_choices


def page_render(parts, lang):
    from .page import render_msg
    return render_msg(parts, lang)

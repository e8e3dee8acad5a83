"""Export tab: merge the adapter picked in the top panel into its base model (`tuneboard export` as a
subprocess), show progress and the resulting folder, and load the merged model in the Chat tab."""
from __future__ import annotations

import gradio as gr

from engine import runs
from engine.config import ConfigError

from . import run_panel, widgets
from .locales import t
from .page import Page

SCOPE = "export"


def prepare_export(raw: dict, saves=None) -> dict:
    v = dict(raw)
    if v.get("finetuning_type") == "lora" and not v.get("adapter_name_or_path"):
        raise ConfigError("adapter_name_or_path: pick the adapter to merge (top panel).", "adapter_name_or_path")
    # a bare name goes under saves/<model>/<method>/, as the Train and Evaluate tabs' output dirs do
    v["export_dir"] = runs.resolve_output_dir(v.get("export_dir"), v.get("model_name_or_path"),
                                              v.get("finetuning_type"), saves)
    if not v.get("export_dir"):
        raise ConfigError("export_dir: give a folder to write the merged model to.", "export_dir")
    return v


def merged_model(run_id: str | None, saves=None) -> str | None:
    """The folder of the export this page shows, once it has finished; None when there is none."""
    run = runs.get_run(run_id, saves) if run_id else None
    if run is None or run.command != "export" or run.status()["state"] != "finished":
        return None
    return run.output


def build(page: Page) -> dict:
    lang = page.lang
    args = widgets.scope_args("export")
    with gr.Row(equal_height=True):
        for a in args:
            if a.name == "export_dir":
                comp = page.arg(SCOPE, a, info=t("export_dir_info", lang, base="saves/<model>/<method>/"))
                page.tr(comp, lambda lg: dict(info=t("export_dir_info", lg, base="saves/<model>/<method>/")))
            else:
                page.arg(SCOPE, a)
    panel = run_panel.build_panel(page, "export", SCOPE, "btn_export", plot=False)
    use = page.add("export.use_in_chat", gr.Button(t("btn_use_in_chat", lang), elem_id="export-use_in_chat"),
                   value="btn_use_in_chat")
    run_panel.wire(page, panel, ("top", SCOPE), lambda raw, lg: prepare_export(raw, page.saves))
    return {"panel": panel, "use": use}

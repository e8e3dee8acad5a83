"""Export tab: merge the adapter picked in the top panel into its base model (`tuneboard export` as a
subprocess) and write it as safetensors or GGUF (+ an Ollama Modelfile), optionally uploaded to a hub; show progress,
the resulting folder with its files' sizes and the line to copy next (`ollama create ...`), and load the merged
model in the Chat tab."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from engine import paths, runs
from engine.config import to_command
from engine.errors import ConfigError

from . import run_panel, widgets
from .locales import t
from .page import Page, error_parts, render_msg
from .train_tab import typed_for_preview

SCOPE = "export"


def prepare_export(raw: dict, saves=None) -> dict:
    v = dict(raw)
    if v.get("finetuning_type") == "lora" and not v.get("adapter_name_or_path"):
        raise ConfigError("adapter_name_or_path: pick the adapter to merge (top panel).", "adapter_name_or_path")
    # a bare name goes under saves/<model>/<method>/, as the Train and Evaluate tabs' output dirs do
    v["export_dir"] = paths.resolve_output_dir(v.get("export_dir"), v.get("model_name_or_path"),
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


UPLOAD = ("export_hub_model_id", "export_hub", "export_hub_private", "hub_token")  # under "Upload to a hub"


@dataclass(eq=False)
class ExportTab:
    preview: gr.Button
    command: gr.Textbox
    panel: run_panel.RunPanel
    use: gr.Button  # "Use in Chat": app.py wires it (it changes the top panel and opens the Chat tab)


def build(page: Page) -> ExportTab:
    lang = page.lang
    args = widgets.scope_args("export")
    with gr.Row(equal_height=True):
        for a in args:
            if a.name == "export_dir":
                comp = page.arg(SCOPE, a, info=t("export_dir_info", lang, base="saves/<model>/<method>/"))
                page.tr(comp, lambda lg: dict(info=t("export_dir_info", lg, base="saves/<model>/<method>/")))
            elif a.name not in UPLOAD:
                page.arg(SCOPE, a)
    with page.add("export.upload", gr.Accordion(t("export_upload", lang), open=False, elem_id="export-upload"),
                  label="export_upload"):
        with gr.Row(equal_height=True):
            for a in args:
                if a.name in UPLOAD:
                    page.arg(SCOPE, a)
    preview = page.add("export.preview", gr.Button(t("btn_preview", lang), elem_id="export-preview_command"),
                       value="btn_preview")
    command = page.add("export.command", gr.Textbox(label=t("command", lang), lines=2, max_lines=6, interactive=False,
                                                    buttons=["copy"], elem_id="export-command"), label="command")
    panel = run_panel.build_panel(page, "export", SCOPE, "btn_export", plot=False)
    lang_c = page.lang_box
    inputs = page.components("top", SCOPE) | {lang_c}

    def preview_command(data):
        try:
            values = typed_for_preview(prepare_export(page.raw_values(data, "top", SCOPE), page.saves), "export")
        except ConfigError as e:
            parts = error_parts({e.field or "_": str(e)})
            return {command: "", panel.message_parts: parts, panel.message: render_msg(parts, data[lang_c])}
        return {command: to_command(values, "export"), panel.message_parts: [], panel.message: ""}

    preview.click(preview_command, inputs, {command, panel.message, panel.message_parts}, show_progress="hidden")
    use = page.add("export.use_in_chat", gr.Button(t("btn_use_in_chat", lang), elem_id="export-use_in_chat"),
                   value="btn_use_in_chat")
    run_panel.wire(page, panel, ("top", SCOPE), lambda raw, lg: prepare_export(raw, page.saves))
    return ExportTab(preview, command, panel, use)

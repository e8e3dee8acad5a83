"""Evaluate & Predict tab: dataset, cutoff, samples, batch size and generation settings; runs `tuneboard eval`
as a subprocess with progress, then shows BLEU-4, ROUGE-1/2/L and exact-match accuracy."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from engine import paths
from engine.args import BY_NAME
from engine.errors import ConfigError

from . import run_panel, widgets
from .locales import t
from .page import Handler, Page, render_msg
from .train_tab import dataset_choices

SCOPE = "eval"
MAIN = ("dataset_dir", "dataset")
EXCLUDE = {"eval_dataset"}  # the Evaluate tab's dataset box is the data set evaluated


def prepare_eval(page: Page, raw: dict) -> dict:
    v = dict(raw)
    out = paths.resolve_output_dir(v.get("output_dir"), v.get("model_name_or_path"), v.get("finetuning_type"),
                                   page.saves)
    if out is None:
        raise ConfigError("output_dir: give a name or a folder for the predictions.", "output_dir")
    v["output_dir"] = out
    if not v.get("dataset"):
        raise ConfigError("dataset: pick the data set to evaluate on.", "dataset")
    return v


@dataclass(eq=False)
class EvalTab:
    ddir: gr.components.Component
    dataset: gr.components.Component
    ds_msg: gr.Markdown
    ds_msg_parts: gr.State
    panel: run_panel.RunPanel
    lang_box: gr.Dropdown

    def refresh(self, d, cur, lg):
        upd, parts = dataset_choices(d, "sft", cur)
        return upd, parts, render_msg(parts, lg)

    @property
    def dataset_refresh(self) -> Handler:
        """The datasets in the folder (the page load)."""
        return Handler(self.refresh, [self.ddir, self.dataset, self.lang_box],
                       [self.dataset, self.ds_msg_parts, self.ds_msg])


def build(page: Page) -> EvalTab:
    lang = page.lang
    args = widgets.scope_args("infer", exclude=EXCLUDE)
    ds_update, ds_parts = dataset_choices(BY_NAME["dataset_dir"].default, "sft")
    with gr.Row(equal_height=True):
        ddir = page.arg(SCOPE, BY_NAME["dataset_dir"], scale=1)
        dataset = page.arg(SCOPE, BY_NAME["dataset"], choices=ds_update["choices"], scale=3)
    ds_msg, ds_msg_parts = page.message("eval.dataset_msg", value=render_msg(ds_parts, lang))
    rest = [a for a in args if a.name not in MAIN and a.group != "output"]
    # generation settings start greedy here: a score should not change from one run to the next
    page.render_args(SCOPE, rest, open_groups=("data", "generation"), values={"do_sample": False})
    for a in [a for a in args if a.group == "output"]:
        comp = page.arg(SCOPE, a, value="", info=t("eval_output_info", lang, base="saves/<model>/<method>/"),
                        placeholder=t("output_dir_auto_eval", lang))
        page.tr(comp, lambda lg: dict(placeholder=t("output_dir_auto_eval", lg)))
        page.tr(comp, lambda lg: dict(info=t("eval_output_info", lg, base="saves/<model>/<method>/")))
    panel = run_panel.build_panel(page, "eval", SCOPE, "btn_eval", plot=False)
    tab = EvalTab(ddir, dataset, ds_msg, ds_msg_parts, panel, page.lang_box)
    refresh = tab.dataset_refresh
    ddir.blur(*refresh, show_progress="hidden")
    ddir.submit(*refresh, show_progress="hidden")
    run_panel.wire(page, panel, ("top", SCOPE), lambda raw, lg: prepare_eval(page, raw), explicit=("do_sample",))
    return tab

"""The page: top panel + Train / Evaluate & Predict / Chat / Export tabs, the live language switch and the
stage / method visibility rules. `create_ui()` builds the whole studio, `create_webchat()` the Chat tab alone."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from engine.devices import choices as device_choices

from . import chat_tab, data_tab, eval_tab, export_tab, insight_panel, top, train_tab
from .locales import LANG_CHOICES, t
from .page import Page, render_msg

CSS = """
.tb-progress { position: relative; height: 26px; border-radius: 6px; background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); overflow: hidden; }
.tb-progress .tb-bar { position: absolute; left: 0; top: 0; bottom: 0; background: #93c5fd; transition: width .4s; }
.tb-progress.tb-finished .tb-bar { background: #86efac; }
.tb-progress.tb-failed .tb-bar, .tb-progress.tb-aborted .tb-bar { background: #fca5a5; }
.tb-progress .tb-progress-text { position: relative; padding-left: 10px; line-height: 24px; font-size: 14px; }
.tb-progress.tb-idle { display: none; }
.tb-check { min-width: min(160px, 100%) !important; }
.tb-invalid { box-shadow: inset 0 0 0 2px #dc2626 !important; border-radius: 6px; }
.tb-invalid .info, .tb-invalid [data-testid="block-info"] + div { color: #dc2626 !important; }
footer { display: none !important; }
"""


def theme():
    # system fonts only: the default theme pulls Google Fonts, which hangs an offline browser
    return gr.themes.Soft(font=["system-ui", "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "sans-serif"],
                          font_mono=["ui-monospace", "DejaVu Sans Mono", "monospace"])


def wire_language(page: Page) -> None:
    """One change of the language box re-labels every registered component and re-renders every message."""
    lang_c = page.lang_box
    by_comp: dict = {}
    for comp, fn in page.localized:
        by_comp.setdefault(comp, []).append(fn)
    states = {st for _, st in page.messages}

    def switch(data):
        lang = data[lang_c]
        ups = {}
        for comp, fns in by_comp.items():
            kw = {}
            for fn in fns:
                kw.update(fn(lang))
            ups[comp] = gr.update(**kw)
        for md, st in page.messages:
            ups[md] = gr.update(value=render_msg(data[st], lang))
        return ups

    lang_c.change(switch, {lang_c} | states, set(by_comp) | {md for md, _ in page.messages}, show_progress="hidden",
                  queue=False)


def wire_visibility(page: Page, demo) -> None:
    stage = page.args.get("train", {}).get("stage")
    method = page.args.get("top", {}).get("finetuning_type")
    if stage is None or method is None:
        return
    controls = page.controls()
    targets = set(page.visibility(None, None))
    if not targets:
        return

    def show(s, m, *ctl):
        return page.visibility(s, m, *ctl)

    for trigger in [stage, method] + controls:
        trigger.change(show, [stage, method] + controls, targets, show_progress="hidden", queue=False)
    # the first render already shows only what applies to the starting stage, method and controls
    for comp, upd in page.visibility(stage.value, method.value, *(c.value for c in controls)).items():
        comp.visible = upd["visible"]


@dataclass
class Studio:
    """The whole page's parts, as create_ui wired them (tests and tools reach the handlers through it)."""
    top: top.TopPanel
    train: train_tab.TrainTab
    doctor: insight_panel.DoctorPanel
    data: data_tab.DataTab
    eval: eval_tab.EvalTab
    chat: chat_tab.ChatTab
    export: export_tab.ExportTab
    runs: insight_panel.RunsTab
    tabs: gr.Tabs


def create_ui(lang: str = "en", saves: str | None = None, initial: dict | None = None) -> gr.Blocks:
    page = Page(lang=lang, saves=saves, initial=dict(initial or {}))
    with gr.Blocks(title="TuneBoard", analytics_enabled=False) as demo:
        page.add("title", gr.Markdown(t("title", lang), elem_id="title"), value="title")
        top_panel = top.build(page)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab(t("tab_train", lang), id="train", elem_id="tab-train") as tab:
                page.add("tab.train", tab, label="tab_train")
                train = train_tab.build(page, top_panel)
                doctor = insight_panel.build_train(page)  # doctor, estimate, dataset inspector
            with gr.Tab(t("tab_data", lang), id="data", elem_id="tab-data") as tab:
                page.add("tab.data", tab, label="tab_data")
                data = data_tab.build(page, train.dataset_refresh)  # upload a dataset, augment one with an endpoint
            with gr.Tab(t("tab_eval", lang), id="eval", elem_id="tab-eval") as tab:
                page.add("tab.eval", tab, label="tab_eval")
                evaluate = eval_tab.build(page)
            with gr.Tab(t("tab_chat", lang), id="chat", elem_id="tab-chat") as tab:
                page.add("tab.chat", tab, label="tab_chat")
                chat = chat_tab.build(page)
            with gr.Tab(t("tab_export", lang), id="export", elem_id="tab-export") as tab:
                page.add("tab.export", tab, label="tab_export")
                export = export_tab.build(page)
            runs_tab = insight_panel.build_runs_tab(page)  # run comparison, learning-rate sweep
        studio = Studio(top_panel, train, doctor, data, evaluate, chat, export, runs_tab, tabs)
        wire_language(page)
        wire_visibility(page, demo)
        _wire_load(page, demo, studio)
        _wire_use_in_chat(page, studio)
    demo.page = page  # tests and tools reach the components through it
    demo.studio = studio
    return demo


def _wire_load(page: Page, demo, studio: Studio) -> None:
    """Every page load reads the datasets and adapters again (files change while the server runs). Only the
    choices are updated, never a value the user may already be editing."""
    top_panel = studio.top
    refresh_train, tin, tout = studio.train.dataset_refresh
    refresh_eval, ein, eout = studio.eval.dataset_refresh

    def datasets(fn):
        def load(*args):
            upd, parts, md = fn(*args)
            upd.pop("value", None)
            return upd, parts, md
        return load

    restore, r_in, r_out = studio.train.form_restore
    # the run going now puts its values into the form, after the lists of the default form are filled
    first = demo.load(datasets(refresh_train), tin, tout, show_progress="hidden",
                      **train_tab.DATASETS_IN_ORDER).then(
        lambda p, m: gr.update(choices=top.adapter_choices(page.saves, p, m)), [top_panel.path, top_panel.method],
        top_panel.adapter, show_progress="hidden", queue=False)
    dev = page.args.get("train", {}).get("devices")
    if dev is not None:  # free GPU memory changes while the server runs
        first = first.then(lambda: gr.update(choices=device_choices()), None, dev, show_progress="hidden",
                           queue=False)
    first.then(restore, r_in, r_out, show_progress="hidden", queue=False)
    demo.load(datasets(refresh_eval), ein, eout, show_progress="hidden", queue=False)
    for fn, inputs, outputs in page.on_load:  # run lists, the chat's loaded model
        demo.load(fn, inputs, outputs, show_progress="hidden", queue=False)


def _wire_use_in_chat(page: Page, studio: Studio) -> None:
    """After an export has finished: the merged folder becomes the model (no adapter), said in the top panel, and
    the Chat tab opens and loads it. Without a finished export nothing changes and the Export tab says why."""
    tp, export, chat = studio.top, studio.export, studio.chat
    run_id, msg, msg_parts = export.panel.run_id, export.panel.message, export.panel.message_parts
    note, note_parts = tp.model_msg, tp.model_msg_parts
    switched = gr.State(False)

    def use(rid, old, lang):
        merged = export_tab.merged_model(rid, page.saves)
        if not merged:
            parts = [("use_needs_export", {})]
            return {switched: False, msg_parts: parts, msg: render_msg(parts, lang)}
        parts = [("use_switched", {"old": old, "path": merged})]
        return {switched: True, tp.path: merged, tp.adapter: [], tp.model_name: top.name_for_path(merged),
                tp.template: top.default_template_for(merged) or "", studio.tabs: gr.Tabs(selected="chat"),
                note_parts: parts, note: render_msg(parts, lang), msg_parts: [], msg: ""}

    def load_if_switched(data):
        if not data[switched]:
            yield {}
            return
        yield from chat.do_load(data)

    export.use.click(use, [run_id, tp.path, tp.lang],
                     {switched, tp.path, tp.adapter, tp.model_name, tp.template, studio.tabs, note, note_parts, msg,
                      msg_parts}, show_progress="hidden").then(
        load_if_switched, chat.load_inputs | {switched}, chat.load_outputs)


def create_webchat(values: dict, lang: str = "en") -> gr.Blocks:
    """The Chat tab alone for `tuneboard webchat recipe.yaml`: the model comes from the recipe."""
    page = Page(lang=lang, initial=dict(values))
    with gr.Blocks(title="TuneBoard chat", analytics_enabled=False) as demo:
        with gr.Row():
            page.add("title", gr.Markdown(t("title", lang), elem_id="title"), value="title")
            page.lang_box = page.add("top.lang", gr.Dropdown(LANG_CHOICES, value=lang, label=t("lang", lang),
                                                             elem_id="top-lang", scale=0, min_width=140), label="lang")
        gr.Markdown(f"`{values.get('model_name_or_path')}`"
                    + (f" + `{', '.join(values.get('adapter_name_or_path') or [])}`"
                       if values.get("adapter_name_or_path") else ""), elem_id="webchat-model")
        chat = chat_tab.build(page, fixed=values)
        wire_language(page)

        def status(lg):
            """The recipe's model loads in the background at start: follow it until it is ready (or failed)."""
            sess = chat_tab.SESSION
            if sess.desc:
                parts, done = chat_tab.loaded_parts(sess.desc), True
            elif sess.error:
                parts, done = [("load_failed", {"error": sess.error})], True
            else:
                parts, done = [("model_loading", {"model": values.get("model_name_or_path")})], False
            return parts, render_msg(parts, lg), gr.Timer(active=not done)

        follow = gr.Timer(1.0)
        outs = [chat.info_parts, chat.info, follow]
        demo.load(status, page.lang_box, outs, queue=False)
        follow.tick(status, page.lang_box, outs, queue=False, show_progress="hidden")
    demo.page = page
    return demo

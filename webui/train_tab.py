"""Train tab: stage, datasets (filtered by stage) with a preview, every training argument of the schema in
accordions, output dir with a resume offer, config save / load, command preview, Start / Abort and the live
view of the run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine import runs
from engine.args import BY_NAME, Namespace
from engine.args import BY_NAME as ARGS_BY_NAME
from engine.config import load_config, save_config, to_command
from engine.data.processing import TRAINED, mark_trained
from engine.data.records import load_records
from engine.data.registry import list_datasets
from engine.data.templates import resolve_template
from engine.errors import ConfigError, UserError
from engine.models.loader import load_tokenizer, model_path
from engine.paths import WRITE, confine, default_output_dir, resolve_output_dir, saves_root
from engine.precision import choose, device_light
from engine.train import rundir

from . import queue_panel, run_panel, widgets
from .locales import t
from .page import Handler, Page, check_fields, choice_labels, error_parts, render_msg
from .top import TopPanel, adapter_choices, name_for_path

SCOPE = "train"
SCOPES = ("top", SCOPE)
MAIN = ("stage", "dataset_dir", "dataset")
PREVIEW_PAGE = 2  # samples per preview page


def dataset_choices(dataset_dir: str, stage: str | None, current=None) -> tuple[dict, list]:
    """(dropdown update, message parts): only datasets the stage can train on; a broken dataset_info.json is
    an error message, never a silently empty list."""
    try:
        confine(dataset_dir or "data", "dataset_dir")
        names = list_datasets(dataset_dir or "data", stage)
    except UserError as e:
        return gr.update(choices=[], value=[]), [("dataset_error", {"error": str(e)})]
    keep = [c for c in (current or []) if c in names]
    parts = [] if names else [("dataset_none", {"dir": dataset_dir, "stage": stage})]
    return gr.update(choices=names, value=keep), parts


def prepare_train(page: Page, raw: dict) -> dict:
    """UI values -> the values of the run: the output-dir name becomes a folder under saves/<model>/<method>/."""
    v = dict(raw)
    out = resolve_output_dir(v.get("output_dir"), v.get("model_name_or_path"), v.get("finetuning_type"), page.saves)
    if out is None:
        raise ConfigError("output_dir: give a name or a folder for this run.", "output_dir")
    v["output_dir"] = confine(out, "output_dir", WRITE, page.saves)
    return v


def run_state(out: str, state: str | None, lang: str) -> str:
    """What a run folder's status says, in words; a run whose status was left mid-way by a process that is gone
    (killed, or stopped before it could write its end) is said to be stopped, never running."""
    if state in rundir.FINAL_STATES:
        text = t(f"state_{state}", lang, error="").rstrip(" :：")
    elif state and rundir.active_pid(out) is not None:
        text = t("state_running", lang, phase=state)
    else:
        text = t("run_state_dead", lang)
    return text.lstrip("✓✗■… ")  # the word without the status line's glyph


def typed_for_preview(values: dict, command: str) -> dict:
    typed, errors, _ = check_fields(values, command)
    if errors:
        raise ConfigError("; ".join(f"{k}: {m}" if k != "_" and not m.startswith(k) else m for k, m in errors.items()),
                          next(iter(errors)))
    return typed


@dataclass(eq=False)
class TrainTab:
    """The Train tab: its components, its handlers, and the two the page load runs (dataset_refresh, form_restore)."""
    page: Page
    top: TopPanel
    stage: gr.components.Component
    ddir: gr.components.Component
    dataset: gr.components.Component
    preview_btn: gr.Button
    ds_msg: gr.Markdown
    ds_msg_parts: gr.State
    preview_col: gr.Column
    pv_page: gr.Number
    pv_close: gr.Button
    pv_info: gr.Markdown
    pv_info_parts: gr.State
    pv_text: gr.HighlightedText
    pv_json: gr.JSON
    config_path: gr.Textbox
    resume_md: gr.Markdown
    resume_parts: gr.State
    resume_btn: gr.Button
    preview: gr.Button
    save: gr.Button
    load: gr.Button
    command: gr.Textbox
    panel: run_panel.RunPanel
    queue: queue_panel.QueuePanel

    @property
    def inputs(self) -> set:
        return self.page.components(*SCOPES) | {self.page.lang_box}

    @property
    def out_box(self):
        return self.page.w(SCOPE, "output_dir")

    @property
    def dataset_refresh(self) -> Handler:
        """The datasets of the stage in the folder (the page load, a dataset saved in the Data tab)."""
        return Handler(self.refresh_datasets, [self.ddir, self.stage, self.dataset, self.page.lang_box],
                       [self.dataset, self.ds_msg_parts, self.ds_msg])

    @property
    def load_outputs(self) -> set:
        return self.page.components(*SCOPES) | {self.top.model_name, self.ds_msg, self.ds_msg_parts,
                                                self.panel.message, self.panel.message_parts}

    @property
    def form_restore(self) -> Handler:
        """A reloaded page shows the values of the training run going now."""
        return Handler(self.restore, [self.page.lang_box],
                       list(self.load_outputs - {self.panel.message, self.panel.message_parts}))

    # ---- datasets follow the stage and the folder
    def refresh_datasets(self, d, s, cur, lg):
        upd, parts = dataset_choices(d, s, cur)
        return upd, parts, render_msg(parts, lg)

    # ---- dataset preview
    def show_preview(self, data, page_no):
        lang_v = data[self.page.lang_box]
        raw = self.page.raw_values(data, *SCOPES)
        shown = {self.preview_col: gr.update(visible=True)}
        try:
            info, samples, marked, pages = preview_dataset(raw, int(page_no or 1), lang_v)
        except UserError as e:
            parts = [f"✗ {e}"]
            return {**shown, self.pv_info_parts: parts, self.pv_info: render_msg(parts, lang_v), self.pv_json: None,
                    self.pv_text: None}
        return {**shown, self.pv_info_parts: info, self.pv_info: render_msg(info, lang_v), self.pv_json: samples,
                self.pv_text: gr.update(value=marked, color_map=legend(marked)),
                self.pv_page: gr.update(value=min(max(int(page_no or 1), 1), max(pages, 1)))}  # kept in range here

    # ---- output dir: an existing run offers to resume
    def check_output(self, data):
        lang_v = data[self.page.lang_box]
        raw = self.page.raw_values(data, *SCOPES)
        none = {self.resume_parts: [], self.resume_md: "", self.resume_btn: gr.update(visible=False)}
        try:
            out = prepare_train(self.page, raw)["output_dir"] if raw.get("output_dir") else None
        except ConfigError:
            return none
        info = runs.inspect_output_dir(out) if out else None
        if info is None or raw.get("resume_from_checkpoint"):
            return none
        state = run_state(out, info["state"], lang_v)
        if info["last_checkpoint"]:
            parts = [("resume_offer", {"path": out, "state": state,
                                       "ckpt": Path(info["last_checkpoint"]).name, "step": info["last_step"]})]
        else:
            parts = [("resume_no_ckpt", {"path": out, "state": state})]
        return {self.resume_parts: parts, self.resume_md: render_msg(parts, lang_v),
                self.resume_btn: gr.update(visible=bool(info["last_checkpoint"]))}

    def do_resume(self, data):
        lang_v = data[self.page.lang_box]
        out = prepare_train(self.page, self.page.raw_values(data, *SCOPES))["output_dir"]
        info = runs.inspect_output_dir(out) or {}
        ckpt = info.get("last_checkpoint")
        parts = [("resume_set", {"ckpt": ckpt})] if ckpt else []
        return {self.page.w(SCOPE, "resume_from_checkpoint"): ckpt or "", self.resume_parts: parts,
                self.resume_md: render_msg(parts, lang_v), self.resume_btn: gr.update(visible=False)}

    # ---- preview command / save / load
    def _said(self, parts, lang_v) -> dict:
        return {self.panel.message_parts: parts, self.panel.message: render_msg(parts, lang_v)}

    def preview_command(self, data):
        """The command, or every bad field marked with its message as Start marks them."""
        lang_v = data[self.page.lang_box]
        raw, named = run_panel.name_output(self.page, data, SCOPES, "train")
        try:
            typed, errors, _ = check_fields(prepare_train(self.page, raw), "train")
        except ConfigError as e:
            typed, errors = {}, {e.field or "_": str(e)}
        ups = self.page.field_updates(lang_v, errors, *SCOPES)
        if errors:
            return run_panel.merge(ups, named, {self.command: "", **self._said(error_parts(errors), lang_v)})
        c = choose(typed, device_light())
        parts = [("precision_note", {"kind": c["precision"], "why": c["why_zh"] if lang_v == "zh" else c["why"]})]
        return run_panel.merge(ups, named, {self.command: to_command(typed, "train"), **self._said(parts, lang_v)})

    def save_args(self, data):
        lang_v = data[self.page.lang_box]
        path = (data[self.config_path] or "").strip()
        named = {}
        try:
            if not path or not path.endswith((".yaml", ".yml")):
                raise ConfigError("config path: give a file name ending in .yaml.", "_")
            confine(path, "config path", WRITE, self.page.saves)
            raw, named = run_panel.name_output(self.page, data, SCOPES, "train")
            typed = typed_for_preview(prepare_train(self.page, raw), "train")
            ns = load_config(None, typed, "train", finalize=False)
            save_config(ns, path, "train")
        except (ConfigError, UserError, OSError) as e:
            parts = [f"✗ {e}"]
        else:
            parts = [("saved_to", {"path": path})]
        return {**named, **self._said(parts, lang_v)}

    def load_args(self, data):
        lang_v = data[self.page.lang_box]
        path = (data[self.config_path] or "").strip()
        try:
            ns = load_config(confine(path, "config path", saves=self.page.saves), {}, "train", finalize=False)
        except (ConfigError, UserError) as e:
            return self._said([f"✗ {e}"], lang_v)
        return {**self.form_updates(ns.values, lang_v), **self._said([("loaded_from", {"path": path})], lang_v)}

    def restore(self, lang_v):
        """A page (re)loaded while a training run goes: the form shows that run's values, as the panel shows its
        progress (the doctor's "Apply to the form" then changes the run's settings, not the defaults)."""
        # nothing to change: one skipped component (gradio reads an empty dict as one missing value per output)
        unchanged = {self.dataset: gr.skip()}
        run = runs.active_run(self.page.saves, "train")
        if run is None:
            return unchanged
        try:
            values = load_config(run.config, {}, "train", finalize=False).values
        except (ConfigError, UserError):  # the run's file is unreadable: the form stays as it is
            return unchanged
        return self.form_updates({**values, "output_dir": short_output_dir(self.page, values)}, lang_v)

    def form_updates(self, values: dict, lang: str) -> dict:
        """Updates that put a config's values into the Train tab and the top panel, with the datasets of its stage
        and the adapters of its model offered (a loaded recipe, the run a reloaded page follows)."""
        ups = set_values(self.page, values, SCOPES)
        ds_upd, ds_p = dataset_choices(values.get("dataset_dir"), values.get("stage"), values.get("dataset"))
        ds_upd["value"] = values.get("dataset") or []
        ups[self.dataset] = ds_upd
        model, method = values.get("model_name_or_path"), values.get("finetuning_type")
        ups[self.top.adapter] = gr.update(choices=adapter_choices(self.page.saves, model, method),
                                          value=values.get("adapter_name_or_path") or [])
        ups[self.top.model_name] = gr.update(value=name_for_path(model))
        ups[self.ds_msg_parts] = ds_p
        ups[self.ds_msg] = render_msg(ds_p, lang)
        return ups

    def adapters_after_run(self, p, m, cur):
        """A finished run's adapter appears in the top panel's picker."""
        return [self.top.refresh_adapters(p, m, cur)]


def build(page: Page, top: TopPanel) -> TrainTab:
    args = widgets.scope_args("train")
    parts = {**_dataset_row(page), **_preview_box(page)}
    page.render_args(SCOPE, [a for a in args if a.name not in MAIN and a.group != "output"], open_groups=("train",))
    parts.update(_output_row(page, [a for a in args if a.group == "output"]))
    parts.update(_action_rows(page))
    panel = run_panel.build_panel(page, "train", SCOPE, "btn_start", plot=True)
    queue = queue_panel.build(page)  # the runs waiting for their turn (Start while a run goes offers "Queue it")
    tab = TrainTab(page, top, **parts, panel=panel, queue=queue)
    _wire(tab)
    return tab


def _dataset_row(page: Page) -> dict:
    """Stage, dataset folder and datasets (those the stage can train on), a preview button and the list's message."""
    lang = page.lang
    stage_arg = BY_NAME["stage"]
    init_dir = page.initial.get("dataset_dir") or BY_NAME["dataset_dir"].default
    init_stage = page.initial.get("stage") or stage_arg.default
    ds_update, ds_parts = dataset_choices(init_dir, init_stage, page.initial.get("dataset"))
    with gr.Row(equal_height=True):
        stage = page.arg(SCOPE, stage_arg, choices=choice_labels(stage_arg, lang), multiselect=False, scale=1)
        ddir = page.arg(SCOPE, BY_NAME["dataset_dir"], scale=1)
        dataset = page.arg(SCOPE, BY_NAME["dataset"], choices=ds_update["choices"], scale=3)
        page.tr(dataset, lambda lg: dict(info=BY_NAME["dataset"].help(lg)))
        preview_btn = page.add("train.preview_dataset", gr.Button(t("preview_dataset", lang), size="sm", scale=0,
                                                                  min_width=120, elem_id="train-preview_dataset"),
                               value="preview_dataset")
    ds_msg, ds_msg_parts = page.message("train.dataset_msg", value=render_msg(ds_parts, lang))
    return dict(stage=stage, ddir=ddir, dataset=dataset, preview_btn=preview_btn, ds_msg=ds_msg,
                ds_msg_parts=ds_msg_parts)


def _preview_box(page: Page) -> dict:
    """The dataset preview, hidden until asked: a page number, the samples as the model sees them, the raw ones."""
    lang = page.lang
    with gr.Column(visible=False, elem_id="train-preview") as preview_col:
        with gr.Row():
            pv_page = page.add("train.preview_page", gr.Number(1, precision=0, step=1,
                                                               label=t("preview_page", lang),
                                                               elem_id="train-preview_page", scale=3),
                               label="preview_page")
            pv_close = page.add("train.preview_close", gr.Button(t("preview_close", lang), size="sm", scale=0,
                                                                 min_width=120), value="preview_close")
        pv_info, pv_info_parts = page.message("train.preview_info")
        pv_text = page.add("train.preview_rendered", gr.HighlightedText(
            label=t("preview_rendered", lang), combine_adjacent=False, show_legend=True, elem_id="train-preview_text",
            color_map={}),
            label="preview_rendered")
        pv_json = page.add("train.preview_samples", gr.JSON(label=t("preview_samples", lang),
                                                            elem_id="train-preview_json"), label="preview_samples")
    return dict(preview_col=preview_col, pv_page=pv_page, pv_close=pv_close, pv_info=pv_info,
                pv_info_parts=pv_info_parts, pv_text=pv_text, pv_json=pv_json)


def _output_row(page: Page, out_args: list) -> dict:
    """The output arguments (the run's folder first) and the path a config is saved to / loaded from."""
    lang = page.lang
    with gr.Row(equal_height=True):
        for a in out_args:
            if a.name == "output_dir":
                comp = page.arg(SCOPE, a, value=page.initial.get("output_dir") or "", scale=2,
                                info=t("output_dir_info", lang, base="saves/<model>/<method>/"),
                                placeholder=t("output_dir_auto", lang))
                page.tr(comp, lambda lg: dict(placeholder=t("output_dir_auto", lg)))
                page.tr(comp, lambda lg: dict(info=t("output_dir_info", lg, base="saves/<model>/<method>/")))
            else:
                page.arg(SCOPE, a, scale=1)
        cfg = page.add("train.config_path", gr.Textbox(
            value=str(saves_root(page.saves) / "configs" / "train_config.yaml"),
            label=t("config_path", lang), info=t("config_path_info", lang), elem_id="train-config_path", scale=2),
            label="config_path", info="config_path_info")
    return dict(config_path=cfg)


def _action_rows(page: Page) -> dict:
    """The resume offer, then preview command / save / load and the command box."""
    lang = page.lang
    with gr.Row():
        resume_md, resume_parts = page.message("train.resume_msg")
        resume_btn = page.add("train.resume", gr.Button(t("btn_resume", lang), visible=False, size="sm",
                                                        elem_id="train-resume"), value="btn_resume")
    with gr.Row():
        preview = page.add("train.preview", gr.Button(t("btn_preview", lang), elem_id="train-preview_command"),
                           value="btn_preview")
        save = page.add("train.save", gr.Button(t("btn_save", lang), elem_id="train-save"), value="btn_save")
        load = page.add("train.load", gr.Button(t("btn_load", lang), elem_id="train-load"), value="btn_load")
    command = page.add("train.command", gr.Textbox(label=t("command", lang), lines=3, max_lines=8, interactive=False,
                                                   buttons=["copy"], elem_id="train-command"), label="command")
    return dict(resume_md=resume_md, resume_parts=resume_parts, resume_btn=resume_btn, preview=preview, save=save,
                load=load, command=command)


# The page load refreshes the dataset list too, with the stage the page had when it loaded: in one queue, one at a
# time, so a stage picked right after the page opened is answered after the load and its list stays.
DATASETS_IN_ORDER = dict(concurrency_id="train-datasets", concurrency_limit=1)


def _wire(tab: TrainTab) -> None:
    page, panel, inputs = tab.page, tab.panel, tab.inputs
    refresh = tab.dataset_refresh
    for ev in (tab.stage.change, tab.ddir.blur, tab.ddir.submit):
        ev(refresh.fn, refresh.inputs, refresh.outputs, show_progress="hidden", **DATASETS_IN_ORDER)

    preview_outputs = {tab.preview_col, tab.pv_info_parts, tab.pv_info, tab.pv_json, tab.pv_text, tab.pv_page}
    tab.preview_btn.click(lambda data: tab.show_preview(data, 1), inputs, preview_outputs)
    for ev in (tab.pv_page.submit, tab.pv_page.blur):
        ev(lambda data: tab.show_preview(data, data[tab.pv_page]), inputs | {tab.pv_page}, preview_outputs,
           show_progress="hidden", trigger_mode="always_last")
    tab.pv_close.click(lambda: gr.update(visible=False), None, tab.preview_col)

    out_outputs = {tab.resume_parts, tab.resume_md, tab.resume_btn}
    tab.out_box.blur(tab.check_output, inputs, out_outputs, show_progress="hidden")
    tab.out_box.submit(tab.check_output, inputs, out_outputs, show_progress="hidden")
    tab.resume_btn.click(tab.do_resume, inputs, out_outputs | {page.w(SCOPE, "resume_from_checkpoint")})

    said = {panel.message, panel.message_parts}
    tab.preview.click(tab.preview_command, inputs, page.components(*SCOPES) | {tab.command} | said,
                      show_progress="hidden")
    tab.save.click(tab.save_args, inputs | {tab.config_path}, said | {tab.out_box}, show_progress="hidden")
    tab.load.click(tab.load_args, inputs | {tab.config_path}, tab.load_outputs, show_progress="hidden")

    # start / abort / live view; a finished run's adapter appears in the top panel's picker
    top = tab.top
    run_panel.wire(page, panel, SCOPES, lambda raw, lg: prepare_train(page, raw),
                   on_end=([top.path, top.method, top.adapter], [top.adapter], tab.adapters_after_run))


def short_output_dir(page: Page, values: dict) -> str | None:
    """A run's output dir as the box shows it: its bare name when it is the default folder for that name."""
    out = values.get("output_dir")
    if not out:
        return out
    name = Path(str(out)).name
    default = default_output_dir(values.get("model_name_or_path"), values.get("finetuning_type"), name, page.saves)
    return name if Path(default).resolve() == Path(str(out)).resolve() else out


def set_values(page: Page, values: dict, scopes) -> dict:
    """Widget updates that show these config values (a loaded recipe)."""
    ups = {}
    for s in scopes:
        for name, comp in page.args.get(s, {}).items():
            if name in values:
                a = ARGS_BY_NAME[name]
                multi = isinstance(comp, gr.Dropdown) and a.type == "list"
                ups[comp] = gr.update(value=widgets.to_widget(a, values[name], multi))
    ct = page.compute_type
    if ct is not None and "top" in scopes:
        ups[ct] = gr.update(value=widgets.compute_type(values))
    return ups


# ---------------------------------------------------------------- dataset preview
_TOKENIZERS: dict = {}
GOOD, BAD = "#16a34a", "#dc2626"
LABEL_COLORS = {"chosen": GOOD, "rejected": BAD, "desirable": GOOD, "undesirable": BAD}


def legend(marked: list) -> dict:
    """The colours of the labels these samples use: the legend names only what the stage marks (an SFT set shows
    "trained", a DPO set chosen / rejected)."""
    return {lab: LABEL_COLORS.get(lab, GOOD) for lab in dict.fromkeys(lab for _, lab in marked if lab)}


def _tokenizer(args: Namespace):
    key = (model_path(args), bool(args.trust_remote_code))
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = load_tokenizer(args)
    return _TOKENIZERS[key]


def preview_dataset(values: dict, page_no: int, lang: str) -> tuple[list, list, list, int]:
    """(info parts, raw samples of the page, the page's samples as the model sees them with trained tokens
    marked, number of pages). The records are the ones training would use for these values (engine.data.records:
    max_samples, num_samples, skipped records, identity); the selected datasets are paged one after the other."""

    if not values.get("dataset"):
        raise UserError(t("preview_pick", lang))
    args = Namespace({k: v for k, v in values.items() if v is not None})  # the form as it is: a preview of
    args.dataset_dir = confine(args.dataset_dir or "data", "dataset_dir")  # data refuses no unrelated field
    recs = load_records(args, keep_raw=True)
    rows_of: dict[str, list[int]] = {n: [] for n in recs.report}
    for i, (name, _) in enumerate(recs.sources):
        rows_of[name].append(i)
    pages_of = [(n, max(1, -(-len(idx) // PREVIEW_PAGE))) for n, idx in rows_of.items()]
    pages = sum(k for _, k in pages_of)
    page_no = min(max(1, page_no), pages)
    k = page_no
    for name, npages in pages_of:
        if k <= npages:
            break
        k -= npages
    shown = rows_of[name][(k - 1) * PREVIEW_PAGE:k * PREVIEW_PAGE]
    rep = recs.report[name]
    info = [("preview_info", {"dataset": name, "total": rep["kept"], "page": page_no, "pages": pages})]
    if rep["skipped"]:
        info.append(("preview_skipped", {"n": sum(rep["skipped"].values()), "total": rep["total"],
                                         "reasons": ", ".join(f"{c} x {r}" for r, c in rep["skipped"].items())}))
    tok = _tokenizer(args)
    tpl = resolve_template(args, tok)
    label = t("trained", lang)
    marked = []
    for j, i in enumerate(shown):
        if j:
            marked.append(("\n\n────────\n\n", None))
        marked += [(text, label if kind == TRAINED else kind)
                   for text, kind in mark_trained(recs.rows[i], recs.stage, tok, tpl, args)]
    return info, [recs.raw_of(i) for i in shown], marked, pages

"""Train tab: stage, datasets (filtered by stage) with a preview, every training argument of the schema in
accordions, output dir with a resume offer, config save / load, command preview, Start / Abort and the live
view of the run."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine import runs
from engine.args import BY_NAME, defaults
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
from .page import Page, check_fields, choice_labels, error_parts, render_msg

SCOPE = "train"
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


def build(page: Page) -> dict:
    lang = page.lang
    args = widgets.scope_args("train")
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

    rest = [a for a in args if a.name not in MAIN and a.group != "output"]
    page.render_args(SCOPE, rest, open_groups=("train",))

    out_args = [a for a in args if a.group == "output"]
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
    panel = run_panel.build_panel(page, "train", SCOPE, "btn_start", plot=True)
    queue_panel.build(page)  # the runs waiting for their turn (Start while a run goes offers "Queue it")

    lang_c = page.c("top.lang")
    scopes = ("top", SCOPE)
    inputs = page.components(*scopes) | {lang_c}

    # ---- datasets follow the stage and the folder
    def refresh_datasets(d, s, cur, lg):
        upd, parts = dataset_choices(d, s, cur)
        return upd, parts, render_msg(parts, lg)

    for ev in (stage.change, ddir.blur, ddir.submit):
        ev(refresh_datasets, [ddir, stage, dataset, lang_c], [dataset, ds_msg_parts, ds_msg], show_progress="hidden")
    page.named["train.refresh_datasets"] = (refresh_datasets, [ddir, stage, dataset, lang_c],
                                            [dataset, ds_msg_parts, ds_msg])

    # ---- dataset preview
    def show_preview(data, page_no):
        lang_v = data[lang_c]
        raw = page.raw_values(data, *scopes)
        try:
            info, samples, marked, pages = preview_dataset(raw, int(page_no or 1), lang_v)
        except UserError as e:
            parts = [f"✗ {e}"]
            return {preview_col: gr.update(visible=True), pv_info_parts: parts, pv_info: render_msg(parts, lang_v),
                    pv_json: None, pv_text: None}
        return {preview_col: gr.update(visible=True), pv_info_parts: info, pv_info: render_msg(info, lang_v),
                pv_json: samples, pv_text: gr.update(value=marked, color_map=legend(marked)),
                pv_page: gr.update(value=min(max(int(page_no or 1), 1), max(pages, 1)))}  # kept in range here

    preview_outputs = {preview_col, pv_info_parts, pv_info, pv_json, pv_text, pv_page}
    preview_btn.click(lambda data: show_preview(data, 1), inputs, preview_outputs)
    pv_page.submit(lambda data: show_preview(data, data[pv_page]), inputs | {pv_page}, preview_outputs,
                   show_progress="hidden", trigger_mode="always_last")
    pv_page.blur(lambda data: show_preview(data, data[pv_page]), inputs | {pv_page}, preview_outputs,
                 show_progress="hidden", trigger_mode="always_last")
    pv_close.click(lambda: gr.update(visible=False), None, preview_col)

    # ---- output dir: an existing run offers to resume
    def check_output(data):
        lang_v = data[lang_c]
        raw = page.raw_values(data, *scopes)
        try:
            out = prepare_train(page, raw)["output_dir"] if raw.get("output_dir") else None
        except ConfigError:
            return {resume_parts: [], resume_md: "", resume_btn: gr.update(visible=False)}
        info = runs.inspect_output_dir(out) if out else None
        if info is None or raw.get("resume_from_checkpoint"):
            return {resume_parts: [], resume_md: "", resume_btn: gr.update(visible=False)}
        state = run_state(out, info["state"], lang_v)
        if info["last_checkpoint"]:
            parts = [("resume_offer", {"path": out, "state": state,
                                       "ckpt": Path(info["last_checkpoint"]).name, "step": info["last_step"]})]
        else:
            parts = [("resume_no_ckpt", {"path": out, "state": state})]
        return {resume_parts: parts, resume_md: render_msg(parts, lang_v),
                resume_btn: gr.update(visible=bool(info["last_checkpoint"]))}

    out_box = page.w(SCOPE, "output_dir")
    out_outputs = {resume_parts, resume_md, resume_btn}
    out_box.blur(check_output, inputs, out_outputs, show_progress="hidden")
    out_box.submit(check_output, inputs, out_outputs, show_progress="hidden")
    page.named["train.check_output"] = (check_output, inputs, out_outputs)

    def do_resume(data):
        lang_v = data[lang_c]
        out = prepare_train(page, page.raw_values(data, *scopes))["output_dir"]
        info = runs.inspect_output_dir(out) or {}
        ckpt = info.get("last_checkpoint")
        parts = [("resume_set", {"ckpt": ckpt})] if ckpt else []
        return {page.w(SCOPE, "resume_from_checkpoint"): ckpt or "", resume_parts: parts,
                resume_md: render_msg(parts, lang_v), resume_btn: gr.update(visible=False)}

    resume_btn.click(do_resume, inputs, out_outputs | {page.w(SCOPE, "resume_from_checkpoint")})

    # ---- preview command / save / load
    def preview_command(data):
        """The command, or every bad field marked with its message as Start marks them."""
        lang_v = data[lang_c]
        raw, named = run_panel.name_output(page, data, scopes, "train")
        try:
            typed, errors, _ = check_fields(prepare_train(page, raw), "train")
        except ConfigError as e:
            typed, errors = {}, {e.field or "_": str(e)}
        ups = page.field_updates(lang_v, errors, *scopes)
        if errors:
            parts = error_parts(errors)
            return run_panel.merge(ups, named, {command: "", panel.message_parts: parts,
                                                panel.message: render_msg(parts, lang_v)})
        c = choose(typed, device_light())
        parts = [("precision_note", {"kind": c["precision"], "why": c["why_zh"] if lang_v == "zh" else c["why"]})]
        return run_panel.merge(ups, named, {command: to_command(typed, "train"), panel.message_parts: parts,
                                            panel.message: render_msg(parts, lang_v)})

    preview.click(preview_command, inputs, page.components(*scopes) | {command, panel.message, panel.message_parts},
                  show_progress="hidden")

    def save_args(data):
        lang_v = data[lang_c]
        path = (data[cfg] or "").strip()
        named = {}
        try:
            if not path or not path.endswith((".yaml", ".yml")):
                raise ConfigError("config path: give a file name ending in .yaml.", "_")
            confine(path, "config path", WRITE, page.saves)
            raw, named = run_panel.name_output(page, data, scopes, "train")
            typed = typed_for_preview(prepare_train(page, raw), "train")
            ns = load_config(None, typed, "train", finalize=False)
            save_config(ns, path, "train")
        except (ConfigError, UserError, OSError) as e:
            parts = [f"✗ {e}"]
        else:
            parts = [("saved_to", {"path": path})]
        return {**named, panel.message_parts: parts, panel.message: render_msg(parts, lang_v)}

    save.click(save_args, inputs | {cfg}, {panel.message, panel.message_parts, out_box}, show_progress="hidden")

    def load_args(data):
        lang_v = data[lang_c]
        path = (data[cfg] or "").strip()
        try:
            ns = load_config(confine(path, "config path", saves=page.saves), {}, "train", finalize=False)
        except (ConfigError, UserError) as e:
            parts = [f"✗ {e}"]
            return {panel.message_parts: parts, panel.message: render_msg(parts, lang_v)}
        parts = [("loaded_from", {"path": path})]
        return {**form_updates(page, ns.values, lang_v), panel.message_parts: parts,
                panel.message: render_msg(parts, lang_v)}

    load_outputs = page.components(*scopes) | {page.c("top.model_name"), ds_msg, ds_msg_parts, panel.message,
                                               panel.message_parts}
    load.click(load_args, inputs | {cfg}, load_outputs, show_progress="hidden")

    def restore(lang_v):
        """A page (re)loaded while a training run goes: the form shows that run's values, as the panel shows its
        progress (the doctor's "Apply to the form" then changes the run's settings, not the defaults)."""
        run = runs.active_run(page.saves, "train")
        if run is None:
            return {}
        try:
            values = load_config(run.config, {}, "train", finalize=False).values
        except (ConfigError, UserError):  # the run's file is unreadable: the form stays as it is
            return {}
        return form_updates(page, {**values, "output_dir": short_output_dir(page, values)}, lang_v)

    page.named["train.restore"] = (restore, [lang_c], list(load_outputs - {panel.message, panel.message_parts}))

    # ---- start / abort / live view; a finished run's adapter appears in the top panel's picker
    adapter = page.w("top", "adapter_name_or_path")
    refresh = page.named["top.refresh_adapters"]
    run_panel.wire(page, panel, scopes, lambda raw, lg: prepare_train(page, raw),
                   on_end=([page.w("top", "model_name_or_path"), page.w("top", "finetuning_type"), adapter],
                           [adapter], lambda p, m, cur: [refresh(p, m, cur)]))
    return {"panel": panel, "stage": stage, "dataset": dataset, "command": command}


def form_updates(page: Page, values: dict, lang: str) -> dict:
    """Updates that put a config's values into the Train tab and the top panel, with the datasets of its stage and
    the adapters of its model offered (a loaded recipe, the run a reloaded page follows)."""
    ups = set_values(page, values, ("top", SCOPE))
    ds_upd, ds_p = dataset_choices(values.get("dataset_dir"), values.get("stage"), values.get("dataset"))
    ds_upd["value"] = values.get("dataset") or []
    ups[page.w(SCOPE, "dataset")] = ds_upd
    from .top import adapter_choices, name_for_path
    model, method = values.get("model_name_or_path"), values.get("finetuning_type")
    ups[page.w("top", "adapter_name_or_path")] = gr.update(choices=adapter_choices(page.saves, model, method),
                                                           value=values.get("adapter_name_or_path") or [])
    ups[page.c("top.model_name")] = gr.update(value=name_for_path(model))
    ups[page.c("train.dataset_msg_parts")] = ds_p
    ups[page.c("train.dataset_msg")] = render_msg(ds_p, lang)
    return ups


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
    ct = page.named.get("top.compute_type")
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


def _tokenizer(values: dict):
    key = (model_path(values), bool(values.get("trust_remote_code")))
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = load_tokenizer(values)
    return _TOKENIZERS[key]


def preview_dataset(values: dict, page_no: int, lang: str) -> tuple[list, list, list, int]:
    """(info parts, raw samples of the page, the page's samples as the model sees them with trained tokens
    marked, number of pages). The records are the ones training would use for these values (engine.data.records:
    max_samples, num_samples, skipped records, identity); the selected datasets are paged one after the other."""

    if not values.get("dataset"):
        raise UserError(t("preview_pick", lang))
    args = {**defaults(), **{k: v for k, v in values.items() if v is not None}}
    args["dataset_dir"] = confine(args.get("dataset_dir") or "data", "dataset_dir")
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

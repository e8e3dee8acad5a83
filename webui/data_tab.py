"""Data tab: bring a dataset in from the browser (engine.data.upload) and grow one with an OpenAI-compatible
endpoint (engine.data.augment).

Upload: the file is read where gradio put it, its format and column mapping are proposed, the records are
rendered as the model sees them (trained tokens marked, through the Train tab's preview) from a staging
dataset_info.json under saves/, and Save copies it under the dataset folder. Augment: a job runs in a thread
of this server (it is HTTP, not training); its progress and its results are in files, so a closed page loses
nothing and a stopped job continues when started again. The API key is handed to the job and never stored.
"""
from __future__ import annotations

import html
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine import args as schema
from engine.args import BY_NAME
from engine.data import augment, upload
from engine.errors import ConfigError, UserError
from engine.paths import WRITE, confine, saves_root

from . import widgets
from .locales import t
from .page import Handler, Page, check_fields, error_parts, render_msg
from .train_tab import dataset_choices, preview_dataset

SCOPE = "augment"
STAGING = ".tuneboard_uploads"  # under saves/: a staging dataset_info.json per upload, for the preview
STAGING_KEEP_S = 24 * 3600
_JOB: dict = {}  # the augmentation job of this server: thread, stop event, progress, error


# ---------------------------------------------------------------- upload
def _staging(saves, name: str, e: dict, src: str) -> Path:
    """A dataset folder under saves/ whose dataset_info.json points at the uploaded file (old ones removed)."""
    root = saves_root(saves) / STAGING
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.is_dir() and time.time() - old.stat().st_mtime > STAGING_KEEP_S:
            shutil.rmtree(old, ignore_errors=True)
    d = root / uuid.uuid4().hex[:12]
    d.mkdir()
    (d / upload.INFO_FILE).write_text(json.dumps({name: {**e, "file_name": str(Path(src).resolve())}}))
    return d


def _mapping(text: str) -> dict:
    try:
        m = json.loads(text or "{}")
    except ValueError as err:
        raise UserError(f"column mapping: not JSON ({err}); write it like {{\"prompt\": \"instruction\", "
                        "\"response\": \"output\"}.") from None
    if not isinstance(m, dict) or not all(isinstance(v, str) for v in m.values()):
        raise UserError("column mapping: an object of role: column name pairs.")
    return m


def inspect_upload(path: str, fmt: str, mapping_text: str, name: str, top: dict, saves, lang: str):
    """(message parts, rendered samples, raw samples) of an uploaded file read with this format and mapping."""
    rows = upload.read_upload(path)
    e = upload.entry(fmt, _mapping(mapping_text), Path(path).name)
    rep = upload.check(rows, e, name or "upload")
    parts = [("upload_ok", {"file": Path(path).name, "n": rep["total"], "kept": rep["kept"], "fmt": fmt,
                            "stage": rep["stage"], "cols": ", ".join(upload.columns_of(rows))})]
    if rep["skipped"]:
        parts.append(("upload_skipped", {"n": sum(rep["skipped"].values()), "first": rep["first_bad"],
                                         "reasons": "; ".join(f"{c} x {r}" for r, c in rep["skipped"].items())}))
    d = _staging(saves, name or "upload", e, path)
    values = {**top, "dataset": [name or "upload"], "dataset_dir": str(d), "stage": rep["stage"]}
    try:
        _, samples, marked, _ = preview_dataset(values, 1, lang)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return parts, marked, samples


@dataclass(eq=False)
class DataTab:
    """The upload panel's components and handlers, and the augment panel below it."""
    page: Page
    file: gr.File
    msg: gr.Markdown
    msg_parts: gr.State
    fmt: gr.Dropdown
    mapping: gr.Textbox
    name: gr.Textbox
    ddir: gr.Textbox
    overwrite: gr.Checkbox
    check_btn: gr.Button
    save_btn: gr.Button
    marked: gr.HighlightedText
    samples: gr.JSON
    augment: AugmentPanel | None = None

    def _shown(self, parts, lg, marked=None, samples=None) -> dict:
        return {self.msg_parts: parts, self.msg: render_msg(parts, lg), self.marked: marked, self.samples: samples}

    def checked(self, data, parts_before=()):
        lg = data[self.page.lang_box]
        path = data[self.file]
        if not path:
            return self._shown([("upload_none", {})], lg)
        try:
            parts, m, s = inspect_upload(path, data[self.fmt], data[self.mapping], (data[self.name] or "").strip(),
                                         self.page.raw_values(data, "top"), self.page.saves, lg)
        except UserError as e:
            return self._shown([*parts_before, f"✗ {e}"], lg)
        return self._shown([*parts_before, *parts], lg, m, s)

    def on_upload(self, data):
        lg = data[self.page.lang_box]
        path = data[self.file]
        if not path:
            return {self.msg_parts: [], self.msg: "", self.marked: None, self.samples: None}
        try:
            rows = upload.read_upload(path)
        except UserError as e:
            return self._shown([f"✗ {e}"], lg)
        guess = upload.propose(rows)
        data = {**data, self.fmt: guess["format"], self.mapping: json.dumps(guess["columns"], ensure_ascii=False),
                self.name: upload.suggest_name(Path(path).name)}
        out = self.checked(data, [("upload_proposed", {"fmt": guess["format"]})])
        return {**out, self.fmt: data[self.fmt], self.mapping: data[self.mapping], self.name: data[self.name]}

    def save(self, data):
        lg = data[self.page.lang_box]
        path = data[self.file]
        try:
            if not path:
                raise UserError(t("upload_none", lg))
            d = confine((data[self.ddir] or "").strip() or "data", "dataset_dir", WRITE, self.page.saves)
            rows = upload.read_upload(path)
            e = upload.entry(data[self.fmt], _mapping(data[self.mapping]), Path(path).name)
            upload.check(rows, e, data[self.name] or "upload")
            res = upload.save(d, data[self.name], path, e, overwrite=bool(data[self.overwrite]))
        except (UserError, OSError) as err:
            parts = [f"✗ {err}"]
        else:
            parts = [("upload_saved", {"name": res["name"], "file": res["file"], "dir": d})]
            if res["info_backup"] or res["file_backup"]:
                parts.append(("upload_backup", {"files": ", ".join(filter(None, [res["info_backup"],
                                                                               res["file_backup"]]))}))
        return parts, render_msg(parts, lg), gr.update(value=False)


def build(page: Page, train_datasets: Handler | None = None) -> DataTab:
    """train_datasets: the Train tab's dataset list, refreshed after a save so the new dataset appears there."""
    with gr.Accordion(t("upload_title", page.lang), open=True, elem_id="data-upload") as acc:
        page.tr(acc, lambda lg: dict(label=t("upload_title", lg)))
        tab = DataTab(page, **_upload_panel(page))
    lang_c = page.lang_box
    inputs = page.components("top") | {lang_c, tab.file, tab.fmt, tab.mapping, tab.name}
    outs = {tab.msg_parts, tab.msg, tab.marked, tab.samples}
    tab.file.upload(tab.on_upload, inputs, outs | {tab.fmt, tab.mapping, tab.name})
    tab.check_btn.click(tab.checked, inputs, outs)
    ev = tab.save_btn.click(tab.save, {lang_c, tab.file, tab.fmt, tab.mapping, tab.name, tab.ddir, tab.overwrite},
                            [tab.msg_parts, tab.msg, tab.overwrite])
    if train_datasets is not None:
        ev.then(*train_datasets, show_progress="hidden")
    tab.augment = build_augment(page)
    return tab


def _upload_panel(page: Page) -> dict:
    """The file, its format and column mapping, the name and folder it is saved under, and its rendered records."""
    lang = page.lang
    limit = upload.limit_text()
    file = page.add("data.file", gr.File(label=t("upload_file", lang, limit=limit), type="filepath",
                                          file_types=list(upload.UPLOAD_EXTS), elem_id="data-upload_file"))
    page.tr(file, lambda lg: dict(label=t("upload_file", lg, limit=limit)))
    msg, msg_parts = page.message("data.upload_msg")
    with gr.Row():
        fmt = page.add("data.format", gr.Dropdown(choices=list(upload.FORMATS), value=upload.FORMATS[0],
                                                  label=t("upload_format", lang), elem_id="data-upload_format",
                                                  scale=1), label="upload_format")
        mapping = page.add("data.mapping", gr.Textbox(label=t("upload_mapping", lang), scale=3,
                                                      elem_id="data-upload_mapping",
                                                      info=t("upload_mapping_info", lang)),
                           label="upload_mapping", info="upload_mapping_info")
    with gr.Row():
        name = page.add("data.name", gr.Textbox(label=t("upload_name", lang), elem_id="data-upload_name", scale=2),
                        label="upload_name")
        ddir = page.add("data.dir", gr.Textbox(value=BY_NAME["dataset_dir"].default, label=t("upload_dir", lang),
                                               elem_id="data-upload_dir", scale=2), label="upload_dir")
        overwrite = page.add("data.overwrite", gr.Checkbox(label=t("upload_overwrite", lang), value=False,
                                                           elem_id="data-upload_overwrite", scale=1),
                             label="upload_overwrite")
    with gr.Row():
        check_btn = page.add("data.check", gr.Button(t("upload_check", lang), elem_id="data-upload_check"),
                             value="upload_check")
        save_btn = page.add("data.save", gr.Button(t("upload_save", lang), variant="primary",
                                                   elem_id="data-upload_save"), value="upload_save")
    marked = page.add("data.rendered", gr.HighlightedText(
        label=t("preview_rendered", lang), combine_adjacent=False, show_legend=True, elem_id="data-upload_rendered",
        color_map={t("trained", "en"): "#16a34a", t("trained", "zh"): "#16a34a", "chosen": "#16a34a",
                   "rejected": "#dc2626", "desirable": "#16a34a", "undesirable": "#dc2626"}),
        label="preview_rendered")
    samples = page.add("data.samples", gr.JSON(label=t("preview_samples", lang), elem_id="data-upload_samples"),
                       label="preview_samples")
    return dict(file=file, msg=msg, msg_parts=msg_parts, fmt=fmt, mapping=mapping, name=name, ddir=ddir,
                overwrite=overwrite, check_btn=check_btn, save_btn=save_btn, marked=marked, samples=samples)


# ---------------------------------------------------------------- augment
def job_html(prog: augment.Progress | None, lang: str) -> str:
    if prog is None:
        return "<div class='tb-progress tb-idle' data-done='0' data-total='0'></div>"
    pct = 100.0 * prog.done / prog.total if prog.total else 0.0
    state = {"running": "running", "finished": "finished", "stopped": "aborted", "failed": "failed"}.get(
        prog.state, "running")
    text = f"{prog.output}: {prog.line()}"
    return (f"<div class='tb-progress tb-{state}' data-done='{prog.done}' data-total='{prog.total}' "
            f"data-state='{html.escape(prog.state)}' data-kept='{prog.counts['kept']}'>"
            f"<div class='tb-bar' style='width:{pct:.1f}%'></div>"
            f"<span class='tb-progress-text'>{html.escape(text)}</span></div>")


def start_job(job: augment.Job, key: str | None) -> None:
    """Run the job in a thread of this server; refuses a second one while it goes."""
    if _JOB.get("thread") is not None and _JOB["thread"].is_alive():
        raise UserError("an augmentation job is already running here; stop it or wait for it to end.")
    stop = threading.Event()
    state: dict = {"progress": None, "error": None, "stop": stop, "job": job}

    def target():  # writes into _JOB, which stays this job's until it ends (a second start is refused)
        try:
            augment.run(job, key=key, progress=lambda p: _JOB.update(progress=p), stop=stop)
        except Exception as e:  # shown on the page; the files keep what was done
            _JOB["error"] = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"

    state["thread"] = threading.Thread(target=target, name="augment-job", daemon=True)
    _JOB.clear()
    _JOB.update(state)
    _JOB["thread"].start()


@dataclass(eq=False)
class AugmentPanel:
    """Grow a dataset with an OpenAI-compatible endpoint: the form, Start / Stop and the job's progress."""
    page: Page
    ddir: gr.components.Component
    dataset: gr.components.Component
    key: gr.Textbox
    template: gr.Textbox
    start: gr.Button
    stop: gr.Button
    msg: gr.Markdown
    msg_parts: gr.State
    bar: gr.HTML

    def refresh(self, d, cur, lg):
        upd, parts = dataset_choices(d, None, [cur] if isinstance(cur, str) else cur)
        upd["value"] = (upd.get("value") or [None])[0]
        return upd

    def on_start(self, data):
        page = self.page
        lg = data[page.lang_box]
        raw = page.raw_values(data, SCOPE)
        _, errors, ns = check_fields(raw, schema.AUGMENT)
        ups = page.field_updates(lg, errors, SCOPE)
        if not errors and not raw.get("model"):
            errors = {"model": "model: give the model name the endpoint serves (its /v1/models lists them)."}
        if errors:
            parts = error_parts(errors)
            return {**ups, self.msg_parts: parts, self.msg: render_msg(parts, lg)}
        try:
            confine(ns.dataset_dir, "dataset_dir", WRITE, page.saves)  # the new dataset is written there
            job = augment.job_from(ns.values, template=data[self.template])
            start_job(job, (data[self.key] or "").strip() or os.environ.get(augment.KEY_ENV) or None)
        except (UserError, ConfigError) as e:
            parts = [f"✗ {e}"]
        else:
            parts = [("augment_started", {"dataset": job.dataset, "n": job.n})]
        return {**ups, self.msg_parts: parts, self.msg: render_msg(parts, lg)}

    def on_stop(self, lg):
        if _JOB.get("thread") is not None and _JOB["thread"].is_alive():
            _JOB["stop"].set()
            parts = [("augment_stopping", {})]
        else:
            parts = [("augment_none", {})]
        return parts, render_msg(parts, lg)

    def tick(self, lg, seen):
        prog, err = _JOB.get("progress"), _JOB.get("error")
        running = _JOB.get("thread") is not None and _JOB["thread"].is_alive()
        key_now = (prog.done if prog else None, prog.state if prog else None, err, running, lg)
        if key_now == seen:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if not running and seen is not None and seen[3]:  # it just ended: say how
            if err or prog is None:
                parts = [("augment_error", {"error": err or "?"})]
            else:
                parts = [(f"augment_{prog.state}", {"name": prog.output, "kept": prog.counts["kept"],
                                                     "dir": _JOB["job"].dataset_dir})]
            return job_html(prog, lg), parts, render_msg(parts, lg), key_now
        return job_html(prog, lg), gr.skip(), gr.skip(), key_now


def build_augment(page: Page) -> AugmentPanel:
    with gr.Accordion(t("augment_title", page.lang), open=False, elem_id="data-augment") as acc:
        page.tr(acc, lambda lg: dict(label=t("augment_title", lg)))
        aug = _augment_form(page)
    lang_c = page.lang_box
    inputs = page.components(SCOPE) | {lang_c, aug.key, aug.template}
    aug.ddir.blur(aug.refresh, [aug.ddir, aug.dataset, lang_c], aug.dataset, show_progress="hidden")
    aug.ddir.submit(aug.refresh, [aug.ddir, aug.dataset, lang_c], aug.dataset, show_progress="hidden")
    aug.start.click(aug.on_start, inputs, page.components(SCOPE) | {aug.msg_parts, aug.msg}, show_progress="minimal")
    aug.stop.click(aug.on_stop, lang_c, [aug.msg_parts, aug.msg], show_progress="hidden")
    seen = gr.State(None)
    timer = gr.Timer(1.0)
    timer.tick(aug.tick, [lang_c, seen], [aug.bar, aug.msg_parts, aug.msg, seen], show_progress="hidden",
               queue=False)
    return aug


def _augment_form(page: Page) -> AugmentPanel:
    lang = page.lang
    args = {a.name: a for a in widgets.scope_args(schema.AUGMENT)}
    ds_update, _ = dataset_choices(BY_NAME["dataset_dir"].default, None)
    page.add("augment.intro", gr.Markdown(t("augment_intro", lang)), value="augment_intro")
    with gr.Row():
        ddir = page.arg(SCOPE, args.pop("dataset_dir"), scale=1)
        dataset = page.arg(SCOPE, args.pop("dataset"), choices=ds_update["choices"], multiselect=False, scale=2)
        page.arg(SCOPE, args.pop("max_samples"), scale=1)
    with gr.Row():
        page.arg(SCOPE, args.pop("base_url"), scale=2)
        page.arg(SCOPE, args.pop("model"), scale=1)
        key = page.add("augment.key", gr.Textbox(label=t("augment_key", lang), type="password", scale=1,
                                                 info=t("augment_key_info", lang), elem_id="augment-api_key"),
                       label="augment_key", info="augment_key_info")
    template = page.add("augment.template", gr.Textbox(value=augment.DEFAULT_PROMPT, lines=6,
                                                       label=t("augment_template", lang),
                                                       info=t("augment_template_info", lang),
                                                       elem_id="augment-template"),
                        label="augment_template", info="augment_template_info")
    rest = list(args.values())
    for i in range(0, len(rest), 4):
        with gr.Row():
            for a in rest[i:i + 4]:
                page.arg(SCOPE, a)
    with gr.Row():
        start = page.add("augment.start", gr.Button(t("augment_start", lang), variant="primary",
                                                    elem_id="augment-start"), value="augment_start")
        stop = page.add("augment.stop", gr.Button(t("augment_stop", lang), variant="stop",
                                                  elem_id="augment-stop"), value="augment_stop")
    msg, msg_parts = page.message("augment.message")
    bar = gr.HTML(job_html(None, lang), elem_id="augment-progress")
    return AugmentPanel(page, ddir, dataset, key, template, start, stop, msg, msg_parts, bar)

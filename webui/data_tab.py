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
from pathlib import Path

import gradio as gr

from engine import args as schema
from engine.args import BY_NAME
from engine.data import augment, upload
from engine.errors import ConfigError, UserError
from engine.paths import WRITE, confine, saves_root

from . import widgets
from .locales import t
from .page import Page, check_fields, error_parts, render_msg
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


def build(page: Page) -> dict:
    lang = page.lang
    lang_c = page.c("top.lang")
    top_inputs = page.components("top")
    with gr.Accordion(t("upload_title", lang), open=True, elem_id="data-upload") as acc:
        page.tr(acc, lambda lg: dict(label=t("upload_title", lg)))
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

    def checked(data, parts_before=()):
        lg = data[lang_c]
        path = data[file]
        if not path:
            parts = [("upload_none", {})]
            return {msg_parts: parts, msg: render_msg(parts, lg), marked: None, samples: None}
        try:
            parts, m, s = inspect_upload(path, data[fmt], data[mapping], (data[name] or "").strip(),
                                         page.raw_values(data, "top"), page.saves, lg)
        except UserError as e:
            parts = [*parts_before, f"✗ {e}"]
            return {msg_parts: parts, msg: render_msg(parts, lg), marked: None, samples: None}
        parts = [*parts_before, *parts]
        return {msg_parts: parts, msg: render_msg(parts, lg), marked: m, samples: s}

    def on_upload(data):
        lg = data[lang_c]
        path = data[file]
        if not path:
            return {msg_parts: [], msg: "", marked: None, samples: None}
        try:
            rows = upload.read_upload(path)
        except UserError as e:
            parts = [f"✗ {e}"]
            return {msg_parts: parts, msg: render_msg(parts, lg), marked: None, samples: None}
        guess = upload.propose(rows)
        data = {**data, fmt: guess["format"], mapping: json.dumps(guess["columns"], ensure_ascii=False),
                name: upload.suggest_name(Path(path).name)}
        out = checked(data, [("upload_proposed", {"fmt": guess["format"]})])
        return {**out, fmt: data[fmt], mapping: data[mapping], name: data[name]}

    inputs = top_inputs | {lang_c, file, fmt, mapping, name}
    outs = {msg_parts, msg, marked, samples}
    file.upload(on_upload, inputs, outs | {fmt, mapping, name})
    check_btn.click(checked, inputs, outs)

    def save(data):
        lg = data[lang_c]
        path = data[file]
        try:
            if not path:
                raise UserError(t("upload_none", lg))
            d = confine((data[ddir] or "").strip() or "data", "dataset_dir", WRITE, page.saves)
            rows = upload.read_upload(path)
            e = upload.entry(data[fmt], _mapping(data[mapping]), Path(path).name)
            upload.check(rows, e, data[name] or "upload")
            res = upload.save(d, data[name], path, e, overwrite=bool(data[overwrite]))
        except (UserError, OSError) as err:
            parts = [f"✗ {err}"]
        else:
            parts = [("upload_saved", {"name": res["name"], "file": res["file"], "dir": d})]
            if res["info_backup"] or res["file_backup"]:
                parts.append(("upload_backup", {"files": ", ".join(filter(None, [res["info_backup"],
                                                                               res["file_backup"]]))}))
        return parts, render_msg(parts, lg), gr.update(value=False)

    ev = save_btn.click(save, {lang_c, file, fmt, mapping, name, ddir, overwrite}, [msg_parts, msg, overwrite])
    if "train.refresh_datasets" in page.named:  # the new dataset appears in the Train tab's list
        fn, tin, tout = page.named["train.refresh_datasets"]
        ev.then(fn, tin, tout, show_progress="hidden")

    aug = build_augment(page)
    return {"file": file, "format": fmt, "mapping": mapping, "name": name, "save": save_btn, "check": check_btn,
            **aug}


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


def build_augment(page: Page) -> dict:
    lang = page.lang
    lang_c = page.c("top.lang")
    args = {a.name: a for a in widgets.scope_args(schema.AUGMENT)}
    ds_update, _ = dataset_choices(BY_NAME["dataset_dir"].default, None)
    with gr.Accordion(t("augment_title", lang), open=False, elem_id="data-augment") as acc:
        page.tr(acc, lambda lg: dict(label=t("augment_title", lg)))
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

    scopes = (SCOPE,)
    inputs = page.components(SCOPE) | {lang_c, key, template}

    def refresh(d, cur, lg):
        upd, parts = dataset_choices(d, None, [cur] if isinstance(cur, str) else cur)
        upd["value"] = (upd.get("value") or [None])[0]
        return upd

    ddir.blur(refresh, [ddir, dataset, lang_c], dataset, show_progress="hidden")
    ddir.submit(refresh, [ddir, dataset, lang_c], dataset, show_progress="hidden")

    def on_start(data):
        lg = data[lang_c]
        raw = page.raw_values(data, *scopes)
        _, errors, ns = check_fields(raw, schema.AUGMENT)
        ups = page.field_updates(lg, errors, *scopes)
        if not errors and not raw.get("model"):
            errors = {"model": "model: give the model name the endpoint serves (its /v1/models lists them)."}
        if errors:
            parts = error_parts(errors)
            return {**ups, msg_parts: parts, msg: render_msg(parts, lg)}
        try:
            confine(ns.dataset_dir, "dataset_dir", WRITE, page.saves)  # the new dataset is written there
            job = augment.job_from(ns.values, template=data[template])
            start_job(job, (data[key] or "").strip() or os.environ.get(augment.KEY_ENV) or None)
        except (UserError, ConfigError) as e:
            parts = [f"✗ {e}"]
        else:
            parts = [("augment_started", {"dataset": job.dataset, "n": job.n})]
        return {**ups, msg_parts: parts, msg: render_msg(parts, lg)}

    start.click(on_start, inputs, page.components(SCOPE) | {msg_parts, msg}, show_progress="minimal")

    def on_stop(lg):
        if _JOB.get("thread") is not None and _JOB["thread"].is_alive():
            _JOB["stop"].set()
            parts = [("augment_stopping", {})]
        else:
            parts = [("augment_none", {})]
        return parts, render_msg(parts, lg)

    stop.click(on_stop, lang_c, [msg_parts, msg], show_progress="hidden")

    def tick(lg, seen):
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

    page.named["augment.tick"] = tick
    seen = gr.State(None)
    timer = gr.Timer(1.0)
    timer.tick(tick, [lang_c, seen], [bar, msg_parts, msg, seen], show_progress="hidden", queue=False)
    return {"augment_start": start, "augment_stop": stop, "augment_key": key, "augment_template": template,
            "augment_tick": tick, "augment_bar": bar}

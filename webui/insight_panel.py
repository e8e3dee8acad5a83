"""Judging a run in the web UI (engine.insight): the doctor, the pre-flight estimate and the dataset inspector at
the bottom of the Train tab; run comparison and the learning-rate sweep in a "Compare runs" tab.

Two calls hook this into the page (webui/app.py): `build_train(page)` inside the Train tab and
`build_runs_tab(page)` inside the tabs. Everything reads the same files as the CLI (`tuneboard doctor`), so the
panel shows exactly what `tuneboard doctor DIR --json` prints; a sweep is one tracked process (engine.runs),
so Abort and a page reload work as for a training run.
"""
from __future__ import annotations

import html
import sys
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine import runs
from engine.args import BY_NAME
from engine.config import coerce, format_value, save_config
from engine.data.recipes import recipe_for
from engine.errors import ConfigError, UserError
from engine.insight import runlog
from engine.insight.compare import compare, figure, table
from engine.insight.doctor import evidence_rows
from engine.insight.estimate import estimate, render as render_estimate
from engine.insight.facts import finite
from engine.insight.inspector import inspect_dataset, render as render_inspection
from engine.insight.sweep import plan, read_sweep
from engine.insight.verdict import diagnose
from engine.insight.words import t as insight_t
from engine.paths import READ, WRITE, confine, default_output_dir, run_name, saves_root
from engine.train import rundir
from engine.train.plots import draw_rewards, reward_series, smooth

from .locales import t
from .page import Page, bounded, check_fields
from .train_tab import prepare_train, set_values

TICK_S = 2.0
TRAINED_COLOR = "#16a34a"

VERDICT_ICON = {"healthy": "✓", "undertrained": "…", "overfitting": "⚠", "diverging": "✗",
                "not_learning": "–", "data_problem": "⚠", "capacity_limit": "▲", "failed": "✗"}  # glyphs every UI font has


# ---------------------------------------------------------------- rendering (pure: tests call these)
def change_text(change: dict) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in change.items())


def doctor_md(report: dict | None, lang: str) -> str:
    if not report:
        return t("no_run", lang)
    if report.get("error"):
        return f"✗ {html.escape(report['error'])}"
    v = report["verdict"]
    zh = lang == "zh"
    lines = [f"### {VERDICT_ICON.get(v, '')} {insight_t(f'verdict_{v}', lang)} <code>{v}</code>",
             report["summary_zh"] if zh else report["summary"], "",
             f"`{report['path']}`" + (f" · {t('live', lang)}" if report.get("running") else ""), "",
             f"**{t('h_change', lang)}**"]
    for a in report["advice"]:
        why = a["why_zh"] if zh else a["why"]
        lines.append(f"- {why}" + (f" → `{change_text(a['change'])}`" if a["change"] else ""))
    if not report["advice"]:
        lines.append(f"- {t('none', lang)}")
    lines.append(f"\n**{t('h_best', lang)}:** " + (f"`{report['best_checkpoint']}`" if report["best_checkpoint"]
                                                   else t("none", lang)))
    if report.get("notes"):
        lines.append(f"\n**{t('h_notes', lang)}:** " + " ".join(n["zh" if zh else "en"] for n in report["notes"]))
    if report.get("findings"):
        lines.append(f"\n**{t('h_also', lang)}:** " + ", ".join(insight_t(f"verdict_{x}", lang)
                                                               for x in report["findings"]))
    return "\n".join(lines)


def doctor_figure(report: dict | None, lang: str):
    """Train loss (raw + smoothed) and eval loss of the judged run, the best evaluation starred; a preference or
    reward run's reward accuracy and margin on axes of their own below."""
    if not report or report.get("error"):
        return None
    try:
        run = runlog.read_run(report["path"])
    except UserError:
        return None
    tr, ev = finite(run.train), finite(run.eval)
    if not tr and not ev:
        return None
    from matplotlib.figure import Figure
    rows = [{"step": s, k: v} for k, pts in run.metrics.items() for s, v in pts]  # the log's reward columns
    rewards = reward_series(rows)
    fig = Figure(figsize=(5.6, 3.2 + 2.2 * len(rewards)), dpi=100)
    grid = fig.add_gridspec(1 + len(rewards), 1, height_ratios=[3.2] + [2.2] * len(rewards))
    ax = fig.add_subplot(grid[0])
    draw_rewards([fig.add_subplot(grid[i + 1]) for i in range(len(rewards))], rewards)
    if tr:
        xs, ys = [p.step for p in tr], [p.loss for p in tr]
        ax.plot(xs, ys, color="#1f77b4", alpha=0.3, lw=1)
        ax.plot(xs, smooth(ys), color="#1f77b4", label="train")
    if ev:
        ax.plot([p.step for p in ev], [p.loss for p in ev], "o-", color="#d62728", markersize=3,
                label="eval")
        best = min(ev, key=lambda p: p.loss)
        ax.plot([best.step], [best.loss], marker="*", color="#f59e0b", markersize=15, ls="none",
                label=f"best eval @ step {best.step}")
    ax.set_xlabel("step")  # figure text stays English: matplotlib's default font has no CJK glyphs
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def evidence_md(report: dict | None, lang: str) -> str:
    """The few facts a person reads, in words; every number of `tuneboard doctor --json` folded below them."""
    if not report or not report.get("evidence"):
        return ""
    key, rest = evidence_rows(report, lang)
    top = "\n".join(f"| {html.escape(label)} | {html.escape(value)} |" for label, value in key)
    more = "\n".join(f"| <code>{html.escape(name)}</code>{'' if lang == 'en' else ' ' + html.escape(label)} | "
                     f"{html.escape(value)} |" for name, label, value in rest)
    head = f"| {t('evidence_col', lang)} | {t('value_col', lang)} |\n|---|---|\n"
    return (head + top + f"\n\n<details><summary>{html.escape(insight_t('ev_more', lang, n=len(rest)))}</summary>\n\n"
            + head + more + "\n\n</details>")


def advice_choices(report: dict | None, lang: str) -> list[tuple[str, int]]:
    if not report or report.get("error"):
        return []
    out = []
    for i, a in enumerate(report["advice"]):
        if a["change"]:
            out.append((f"{change_text(a['change'])} — {a['why_zh'] if lang == 'zh' else a['why']}", i))
    return out


# ---------------------------------------------------------------- which run
def run_choices(saves) -> list[tuple[str, str]]:
    root = saves_root(saves)
    out = []
    for p in runlog.find_runs(root):
        try:
            label = str(p.relative_to(root))
        except ValueError:
            label = str(p)
        out.append((label, str(p)))
    return out


def run_path(value: str, saves) -> str:
    """A run as picked or typed: a label of the list (its folder relative to saves/) is that run's folder."""
    v = str(value).strip()
    return dict(run_choices(saves)).get(v, v)


def current_run_dir(saves) -> str | None:
    """The training run the Train tab shows: the one going now, else the last one started from the UI."""
    r = runs.active_run(saves, "train") or runs.latest_run(saves, "train")
    return r.output if r is not None else None


def _confined(path: str, saves) -> str:
    return confine(path, "output_dir", READ, saves)


def diagnose_dir(path: str | None, saves) -> dict | None:
    target = (path or "").strip() or current_run_dir(saves)
    if not target:
        return None
    try:
        return diagnose(_confined(run_path(target, saves), saves))
    except (UserError, ConfigError) as e:
        return {"error": str(e), "path": target}


def _values(page: Page, data: dict) -> dict:
    """The Train tab's values as a run would get them (an empty output dir gets a throw-away name)."""
    raw = page.raw_values(data, "top", "train")
    raw["output_dir"] = raw.get("output_dir") or "estimate"
    values = prepare_train(page, raw)
    typed, errors, _ = check_fields(values, "train")
    if errors:
        raise ConfigError("; ".join(errors.values()), next(iter(errors)))
    return typed


# ---------------------------------------------------------------- Train tab: doctor, estimate, inspector
@dataclass(eq=False)
class DoctorPanel:
    """The doctor (a run's verdict, advice to apply to the form), the estimate and the dataset inspector."""
    page: Page
    run_box: gr.Dropdown
    refresh: gr.Button
    go: gr.Button
    verdict: gr.Markdown
    curve: gr.Plot
    advice: gr.CheckboxGroup
    apply: gr.Button
    applied: gr.Markdown
    evidence: gr.Markdown
    est_btn: gr.Button
    measure: gr.Number
    ins_btn: gr.Button
    ins_idx: gr.Number
    est_out: gr.Markdown
    ins_out: gr.Markdown
    ins_plot: gr.Plot
    ins_sample: gr.HighlightedText
    report: gr.State = field(default_factory=lambda: gr.State(None))
    seen: gr.State = field(default_factory=lambda: gr.State({}))
    est_state: gr.State = field(default_factory=lambda: gr.State(None))
    ins_state: gr.State = field(default_factory=lambda: gr.State(None))

    @property
    def shown(self) -> list:
        """What show() fills, in its order."""
        return [self.report, self.verdict, self.evidence, self.advice, self.applied, self.curve]

    def show(self, rep, lg):
        return rep, doctor_md(rep, lg), evidence_md(rep, lg), gr.update(
            choices=advice_choices(rep, lg), value=[v for _, v in advice_choices(rep, lg)]), "", doctor_figure(rep, lg)

    def tick(self, path, s, lg):
        """Follow the run shown above while it trains: a new verdict whenever its log grows or its state changes."""
        saves = self.page.saves
        if (path or "").strip():
            return [gr.skip()] * (len(self.shown) + 1)
        target = current_run_dir(saves)
        if not target:
            return [gr.skip()] * (len(self.shown) + 1)
        log, st = rundir.log_file(target), rundir.status_file(target)
        key = {"path": target, "log": log.stat().st_size if log.exists() else 0,
               "status": st.stat().st_mtime if st.exists() else 0, "lang": lg}
        if key == s:
            return [gr.skip()] * (len(self.shown) + 1)
        return list(self.show(diagnose_dir(target, saves), lg)) + [key]

    def do_apply(self, rep, picked, lg):
        """One click: the ticked changes become the Train tab's values."""
        if not rep or rep.get("error") or not picked:
            return {self.applied: t("applied_none", lg)}
        change = {}
        for i in picked:
            change.update(rep["advice"][int(i)]["change"])
        ups = set_values(self.page, change, ("top", "train"))
        ups[self.applied] = t("applied", lg, changes=change_text(change))
        return ups

    def fill_recipe(self, data):
        """A dataset that ships a recipe (engine.data.recipes: identity): picking it sets the arguments the form
        still has at the schema's defaults to the recipe, so the form shows, and Start trains, what teaches it;
        values the user set stay."""
        page = self.page
        ds_box = page.w("train", "dataset")
        raw = page.raw_values(data, "top", "train")
        try:
            datasets = coerce(BY_NAME["dataset"], raw.get("dataset"))
            r = recipe_for(datasets, raw.get("stage"), raw.get("finetuning_type")) or {}
            change = {k: v for k, v in r.items() if coerce(BY_NAME[k], raw.get(k)) == BY_NAME[k].default}
        except ConfigError:
            return {ds_box: gr.skip()}
        if not change:  # gradio takes an empty dict for one value and fails the event with a toast
            return {ds_box: gr.skip()}
        gr.Info(insight_t("recipe_filled", data[page.lang_box], dataset=datasets[0], changes=change_text(change)))
        return set_values(page, change, ("top", "train"))

    def do_estimate(self, data):
        lg = data[self.page.lang_box]
        try:
            n = int(bounded(data[self.measure], t("estimate_measure", lg), 0, 50))
            rep = estimate(values=_values(self.page, data), measure_steps=n)
        except (UserError, ConfigError) as e:
            return None, f"✗ {e}"
        return rep, estimate_md(rep, lg)

    def do_inspect(self, data):
        lg = data[self.page.lang_box]
        try:
            rep = inspect_dataset(values=_values(self.page, data),
                                  sample=int(bounded(data[self.ins_idx], t("inspect_index", lg), 0)))
        except (UserError, ConfigError) as e:
            return None, f"✗ {e}", gr.update(visible=False), gr.update(visible=False)
        return (rep, inspect_md(rep, lg), gr.update(value=length_figure(rep), visible=True),
                gr.update(value=sample_spans(rep, lg), visible=True,
                          color_map={t("trained_tokens", lg): TRAINED_COLOR}))

    def relabel(self, rep, est, ins, lg):
        return (doctor_md(rep, lg), evidence_md(rep, lg),
                gr.update(choices=advice_choices(rep, lg)), estimate_md(est, lg) if est else gr.skip(),
                inspect_md(ins, lg) if ins else gr.skip())


def build_train(page: Page) -> DoctorPanel:
    with gr.Accordion(t("doctor_title", page.lang), open=True, elem_id="doctor") as acc:
        page.tr(acc, lambda lg: dict(label=t("doctor_title", lg)))
        parts = {**_doctor_rows(page), **_estimate_rows(page)}
    doc = DoctorPanel(page, **parts)
    _wire_doctor(doc)
    return doc


def _doctor_rows(page: Page) -> dict:
    """Which run, its verdict and loss curve, the advice with "Apply", the evidence folded below."""
    lang = page.lang
    with gr.Row(equal_height=True):
        run_box = page.add("doctor.run", gr.Dropdown(choices=run_choices(page.saves), value=None,
                                                     allow_custom_value=True, label=t("doctor_run", lang),
                                                     info=t("doctor_run_info", lang), elem_id="doctor-run", scale=4),
                           label="doctor_run", info="doctor_run_info")
        refresh = page.add("doctor.refresh", gr.Button(t("btn_refresh_runs", lang), size="sm", scale=0,
                                                       min_width=110, elem_id="doctor-refresh"),
                           value="btn_refresh_runs")
        go = page.add("doctor.diagnose", gr.Button(t("btn_diagnose", lang), variant="primary", scale=0,
                                                   min_width=110, elem_id="doctor-diagnose"), value="btn_diagnose")
    with gr.Row():
        with gr.Column(scale=3):
            verdict = gr.Markdown(t("no_run", lang), elem_id="doctor-verdict")
        with gr.Column(scale=2):
            curve = page.add("doctor.plot", gr.Plot(label=t("doctor_plot", lang), elem_id="doctor-plot",
                                                    format="png"), label="doctor_plot")
    advice = page.add("doctor.advice", gr.CheckboxGroup(choices=[], value=[], label=t("doctor_advice", lang),
                                                        elem_id="doctor-advice"), label="doctor_advice")
    with gr.Row():
        apply = page.add("doctor.apply", gr.Button(t("btn_apply", lang), size="sm", elem_id="doctor-apply"),
                         value="btn_apply")
    applied = gr.Markdown(elem_id="doctor-applied")
    with gr.Accordion(t("evidence", lang), open=False, elem_id="doctor-evidence-acc") as ev_acc:
        evidence = gr.Markdown(elem_id="doctor-evidence")
    page.tr(ev_acc, lambda lg: dict(label=t("evidence", lg)))
    return dict(run_box=run_box, refresh=refresh, go=go, verdict=verdict, curve=curve, advice=advice, apply=apply,
                applied=applied, evidence=evidence)


def _estimate_rows(page: Page) -> dict:
    """The estimate (optionally measured for a few steps) and the dataset inspector, with what they show."""
    lang = page.lang
    with gr.Row(equal_height=True):
        est_btn = page.add("doctor.estimate", gr.Button(t("btn_estimate", lang), elem_id="estimate-run", scale=1),
                           value="btn_estimate")
        measure = page.add("doctor.measure", gr.Number(0, precision=0,
                                                       label=t("estimate_measure", lang), elem_id="estimate-measure",
                                                       scale=1), label="estimate_measure")
        ins_btn = page.add("doctor.inspect", gr.Button(t("btn_inspect", lang), elem_id="inspect-run", scale=1),
                           value="btn_inspect")
        ins_idx = page.add("doctor.inspect_index", gr.Number(0, precision=0, label=t("inspect_index", lang),
                                                             elem_id="inspect-index", scale=1), label="inspect_index")
    est_out = gr.Markdown(elem_id="estimate-out")
    ins_out = gr.Markdown(elem_id="inspect-out")
    with gr.Row():
        ins_plot = page.add("doctor.inspect_plot", gr.Plot(label=t("inspect_plot", lang), elem_id="inspect-plot",
                                                           format="png", visible=False), label="inspect_plot")
        ins_sample = page.add("doctor.inspect_sample", gr.HighlightedText(
            label=t("inspect_sample", lang), combine_adjacent=False, show_legend=True, elem_id="inspect-sample",
            visible=False, color_map={t("trained_tokens", lang): TRAINED_COLOR}),
            label="inspect_sample")
    return dict(est_btn=est_btn, measure=measure, ins_btn=ins_btn, ins_idx=ins_idx, est_out=est_out, ins_out=ins_out,
                ins_plot=ins_plot, ins_sample=ins_sample)


def _wire_doctor(doc: DoctorPanel) -> None:
    page, saves, lang_c = doc.page, doc.page.saves, doc.page.lang_box
    outs = doc.shown
    doc.go.click(lambda path, lg: doc.show(diagnose_dir(path, saves), lg), [doc.run_box, lang_c], outs)
    doc.run_box.input(lambda path, lg: doc.show(diagnose_dir(path, saves), lg), [doc.run_box, lang_c], outs)
    doc.refresh.click(lambda: gr.update(choices=run_choices(saves)), None, doc.run_box, show_progress="hidden")
    page.on_load.append((lambda: gr.update(choices=run_choices(saves)), None, [doc.run_box]))  # runs made since
    gr.Timer(TICK_S).tick(doc.tick, [doc.run_box, doc.seen, lang_c], outs + [doc.seen], show_progress="hidden",
                          queue=False)
    form = page.components("top", "train")
    doc.apply.click(doc.do_apply, [doc.report, doc.advice, lang_c], list(form) + [doc.applied],
                    show_progress="hidden")
    # (.input: the user's pick, not a recipe loaded into the form)
    page.w("train", "dataset").input(doc.fill_recipe, page.components("top", "train") | {lang_c}, form,
                                     show_progress="hidden")
    # estimate and inspector read the form as Start would
    inputs = page.components("top", "train") | {lang_c, doc.measure, doc.ins_idx}
    doc.est_btn.click(doc.do_estimate, inputs, [doc.est_state, doc.est_out])
    doc.ins_btn.click(doc.do_inspect, inputs, [doc.ins_state, doc.ins_out, doc.ins_plot, doc.ins_sample])
    # .input, not .change: the page's own language handler owns .change (one handler per event there)
    lang_c.input(doc.relabel, [doc.report, doc.est_state, doc.ins_state, lang_c],
                 [doc.verdict, doc.evidence, doc.advice, doc.est_out, doc.ins_out], show_progress="hidden",
                 queue=False)


def estimate_md(rep: dict | None, lang: str) -> str:
    if not rep:
        return ""
    # text and glyphs the page's fonts have: an emoji renders as a box where no emoji font is installed
    head = f"✓ {insight_t('est_fits', lang)}" if rep["fits"] else f"⚠ {insight_t('est_nofit', lang)}"
    return f"**{head}**\n```\n{render_estimate(rep, lang)}\n```"


def inspect_md(rep: dict | None, lang: str) -> str:
    if not rep:
        return ""
    text = render_inspection(rep, lang)
    body = text.split("\n")
    cut = next((i for i, ln in enumerate(body) if ln.startswith(f"{insight_t('ins_sample', lang)} #")), len(body))
    return "```\n" + "\n".join(body[:cut]) + "\n```"


def length_figure(rep: dict):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.0, 3.0), dpi=100)
    ax = fig.add_subplot(111)
    h = rep["histogram"]
    ax.bar([b["from"] for b in h], [b["count"] for b in h], width=[b["to"] - b["from"] for b in h], align="edge",
           color=["#ef4444" if b["over_cutoff"] else "#60a5fa" for b in h])
    ax.axvline(rep["cutoff_len"], color="#111827", ls="--", label=f"cutoff_len {rep['cutoff_len']}")
    ax.set_xlabel("tokens")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sample_spans(rep: dict, lang: str) -> list[tuple[str, str | None]]:
    label = t("trained_tokens", lang)
    return [(text, label if trained else None) for text, trained in rep["sample"]]


# ---------------------------------------------------------------- Compare runs tab
@dataclass(eq=False)
class RunsTab:
    """The "Compare runs" tab: runs side by side, and a learning-rate sweep whose best rate goes to the form."""
    page: Page
    tab: gr.Tab
    pick: gr.Dropdown
    x: gr.Radio
    refresh: gr.Button
    go: gr.Button
    summary: gr.Markdown
    plot: gr.Plot
    table: gr.Dataframe
    cmp_state: gr.State
    center: gr.Textbox
    k: gr.Number
    span: gr.Number
    steps: gr.Number
    every: gr.Number
    start: gr.Button
    abort: gr.Button
    use: gr.Button
    sw_msg: gr.Markdown
    sw_status: gr.Markdown
    sw_table: gr.Dataframe
    sw_plot: gr.Plot
    sw_seen: gr.State
    sw_timer: gr.Timer

    def do_compare(self, paths, axis, lg):
        saves = self.page.saves
        try:
            rep = compare([_confined(run_path(p, saves), saves) for p in (paths or [])], x=axis or "step")
        except (UserError, ConfigError) as e:
            return None, f"✗ {e}", None, None
        return rep, compare_md(rep, lg), compare_figure(rep, lg), compare_frame(rep, lg)

    def do_start(self, data):
        """A sweep: one tracked process; its runs go one after another."""
        page, saves = self.page, self.page.saves
        lg = data[page.lang_box]
        try:
            n_runs = int(bounded(data[self.k], t("sweep_k", lg), 1, 20, 5))
            decades = float(bounded(data[self.span], t("sweep_span", lg), 0.1, 6, 2.0))
            n_steps = int(bounded(data[self.steps], t("sweep_steps", lg), 1, None, 30))
            n_every = int(bounded(data[self.every], t("sweep_eval", lg), 1, None, 5))
            values = _values(page, data)
            center = data[self.center]
            c = float(center) if str(center or "").strip() else float(values["learning_rate"])
            lrs = plan(c, n_runs, decades)
            out = default_output_dir(values["model_name_or_path"], values["finetuning_type"], run_name("sweep"), saves)
            confine(out, "output_dir", WRITE, saves)
            Path(out).mkdir(parents=True, exist_ok=True)
            base = Path(out) / "base.yaml"
            save_config({k2: v for k2, v in values.items() if k2 != "output_dir"}, base)
            argv = [sys.executable, "-m", "engine", "doctor", "--sweep", str(base), "--k", str(len(lrs)), "--center",
                    repr(c), "--span", str(decades), "--steps", str(n_steps), "--eval-every", str(n_every),
                    "--out", out]
            runs.launch("sweep", argv, run_dir=out, output=out, saves=saves)
        except runs.RunBusy as e:
            return t("busy", lg, command=e.run.command, path=e.run.output), {}
        except (UserError, ConfigError, ValueError) as e:
            return f"✗ {e}", {}
        return t("sweep_started", lg, path=out, lrs=", ".join(f"{x_:g}" for x_ in lrs)), {}

    def latest_sweep(self):
        found = runs.all_runs(self.page.saves, "sweep")
        return found[0] if found else None

    def do_abort(self, lg):
        r = self.latest_sweep()
        if r is None or not r.alive():
            return t("nothing_running", lg)
        ok = r.abort()
        return t("sweep_aborted", lg) if ok else t("aborted_left", lg, pids=[p.pid for p in r.processes()])

    def sweep_view(self, s, lg):
        r = self.latest_sweep()
        state = read_sweep(r.output) if r is not None else None
        if state is None:  # no sweep yet: said (and the table headed) in the page's language
            key = {"run": None, "lang": lg}
            if key == s:
                return [gr.skip()] * 4 + [s]
            return [t("sweep_none", lg), sweep_frame({"runs": []}, lg), gr.skip(), gr.skip(), key]
        if state.get("state") == "running" and not r.alive():
            state["state"] = "aborted" if r.aborted else "failed"
        sizes = [(rundir.log_file(x["output_dir"]).stat().st_size
                  if rundir.log_file(x["output_dir"]).exists() else 0) for x in state["runs"]]
        key = {"run": r.id, "state": state["state"], "sizes": sizes, "lang": lg,
               "runs": [x["state"] for x in state["runs"]]}
        if key == s:
            return [gr.skip()] * 4 + [key]
        return [sweep_md(state, r.output, lg), sweep_frame(state, lg), sweep_figure(state, lg), gr.skip(), key]

    def do_use(self, lg):
        r = self.latest_sweep()
        state = read_sweep(r.output) if r else None
        best = (state or {}).get("best")
        if not best:
            return gr.skip(), t("sweep_none", lg)
        return gr.update(value=best["learning_rate"]), t("sweep_use_set", lg, lr=best["learning_rate"])


def build_runs_tab(page: Page) -> RunsTab:
    lang = page.lang
    with gr.Tab(t("tab_runs", lang), id="runs", elem_id="tab-runs") as tab:
        page.add("tab.runs", tab, label="tab_runs")
        parts = _compare_rows(page)
        with gr.Accordion(t("sweep_title", lang), open=True, elem_id="sweep") as sw_acc:
            page.tr(sw_acc, lambda lg: dict(label=t("sweep_title", lg)))
            parts.update(_sweep_rows(page))
        runs_tab = RunsTab(page, tab, **parts, sw_seen=gr.State({}), sw_timer=gr.Timer(TICK_S))
    _wire_runs_tab(runs_tab)
    return runs_tab


def _compare_rows(page: Page) -> dict:
    """Runs to compare, the x axis, their summary, curves and table."""
    lang = page.lang
    with gr.Row(equal_height=True):
        pick = page.add("compare.runs", gr.Dropdown(choices=run_choices(page.saves), value=[], multiselect=True,
                                                    allow_custom_value=True, label=t("compare_runs", lang),
                                                    info=t("compare_runs_info", lang), elem_id="compare-runs",
                                                    scale=4), label="compare_runs", info="compare_runs_info")
        x = page.add("compare.x", gr.Radio(x_choices(lang), value="step", label=t("compare_x", lang),
                                           elem_id="compare-x", scale=1), label="compare_x")
        page.tr(x, lambda lg: dict(choices=x_choices(lg)))
        refresh = page.add("compare.refresh", gr.Button(t("btn_refresh_runs", lang), size="sm", scale=0,
                                                        min_width=110, elem_id="compare-refresh"),
                           value="btn_refresh_runs")
        go = page.add("compare.go", gr.Button(t("btn_compare", lang), variant="primary", scale=0, min_width=110,
                                              elem_id="compare-go"), value="btn_compare")
    summary = gr.Markdown(elem_id="compare-summary")
    plot = page.add("compare.plot", gr.Plot(label=t("compare_plot", lang), elem_id="compare-plot", format="png"),
                    label="compare_plot")
    table = page.add("compare.table", gr.Dataframe(label=t("compare_table", lang), elem_id="compare-table",
                                                   interactive=False, wrap=True), label="compare_table")
    return dict(pick=pick, x=x, refresh=refresh, go=go, summary=summary, plot=plot, table=table,
                cmp_state=gr.State(None))


def _sweep_rows(page: Page) -> dict:
    """The sweep's settings, Start / Abort / "Use the best", and its status, table and curves."""
    lang = page.lang
    with gr.Row(equal_height=True):
        center = page.add("sweep.center", gr.Textbox("", placeholder="learning_rate", label=t("sweep_center", lang),
                                                     elem_id="sweep-center"), label="sweep_center")
        k = page.add("sweep.k", gr.Number(5, precision=0, label=t("sweep_k", lang),
                                          elem_id="sweep-k"), label="sweep_k")
        span = page.add("sweep.span", gr.Number(2.0, label=t("sweep_span", lang),
                                                elem_id="sweep-span"), label="sweep_span")
        steps = page.add("sweep.steps", gr.Number(30, precision=0, label=t("sweep_steps", lang),
                                                  elem_id="sweep-steps"), label="sweep_steps")
        every = page.add("sweep.eval", gr.Number(5, precision=0, label=t("sweep_eval", lang),
                                                 elem_id="sweep-eval"), label="sweep_eval")
    with gr.Row():
        start = page.add("sweep.start", gr.Button(t("btn_sweep", lang), variant="primary",
                                                  elem_id="sweep-start"), value="btn_sweep")
        abort = page.add("sweep.abort", gr.Button(t("btn_sweep_abort", lang), variant="stop",
                                                  elem_id="sweep-abort"), value="btn_sweep_abort")
        use = page.add("sweep.use", gr.Button(t("btn_sweep_use", lang), elem_id="sweep-use"),
                       value="btn_sweep_use")
    sw_msg = gr.Markdown(elem_id="sweep-msg")
    sw_status = gr.Markdown(t("sweep_none", lang), elem_id="sweep-status")
    sw_table = gr.Dataframe(headers=sweep_headers(lang), elem_id="sweep-table", interactive=False)
    sw_plot = page.add("sweep.plot", gr.Plot(label=t("compare_plot", lang), elem_id="sweep-plot",
                                             format="png"), label="compare_plot")
    return dict(center=center, k=k, span=span, steps=steps, every=every, start=start, abort=abort, use=use,
                sw_msg=sw_msg, sw_status=sw_status, sw_table=sw_table, sw_plot=sw_plot)


def _wire_runs_tab(rt: RunsTab) -> None:
    page, saves, lang_c = rt.page, rt.page.saves, rt.page.lang_box
    compared = [rt.cmp_state, rt.summary, rt.plot, rt.table]
    rt.go.click(rt.do_compare, [rt.pick, rt.x, lang_c], compared)
    rt.x.change(rt.do_compare, [rt.pick, rt.x, lang_c], compared, show_progress="hidden")
    rt.refresh.click(lambda: gr.update(choices=run_choices(saves)), None, rt.pick, show_progress="hidden")
    page.on_load.append((lambda: gr.update(choices=run_choices(saves)), None, [rt.pick]))
    lang_c.input(lambda rep, lg: (compare_md(rep, lg), compare_frame(rep, lg)) if rep else (gr.skip(), gr.skip()),
                 [rt.cmp_state, lang_c], [rt.summary, rt.table], show_progress="hidden", queue=False)
    inputs = page.components("top", "train") | {lang_c, rt.center, rt.k, rt.span, rt.steps, rt.every}
    rt.start.click(rt.do_start, inputs, [rt.sw_msg, rt.sw_seen])
    rt.abort.click(rt.do_abort, lang_c, rt.sw_msg)
    rt.sw_timer.tick(rt.sweep_view, [rt.sw_seen, lang_c], [rt.sw_status, rt.sw_table, rt.sw_plot, rt.sw_msg,
                                                           rt.sw_seen], show_progress="hidden", queue=False)
    rt.use.click(rt.do_use, lang_c, [page.w("train", "learning_rate"), rt.sw_msg])


def compare_md(rep: dict | None, lang: str) -> str:
    if not rep:
        return ""
    parts = []
    if rep["best"]:
        parts.append(t("best_run", lang, name=rep["best"], by=t(f"by_{rep['best_by']}", lang)))
    parts += [f"ℹ {n}" for n in (rep.get("notes_zh") if lang == "zh" else None) or rep["notes"]]
    return "\n\n".join(parts)


def compare_figure(rep: dict, lang: str):
    return figure(rep, lang) if rep and rep["curves"] else None


def compare_frame(rep: dict, lang: str):
    import pandas as pd

    headers, rows = table(rep, lang)
    return pd.DataFrame([[("" if v is None else v if not isinstance(v, float) else f"{v:.4g}") for v in r]
                         for r in rows], columns=headers)


def sweep_md(state: dict, path: str, lang: str) -> str:
    done = sum(r["state"] in ("finished", "failed", "aborted") for r in state["runs"])
    text = t("sweep_state", lang, path=path, state=state["state"], done=done, k=len(state["runs"]))
    best = state.get("best")
    if best:
        text += "\n\n" + t("sweep_best", lang, lr=f"{best['learning_rate']:g}", loss=f"{best['best_eval_loss']:.4f}")
        if best.get("edge") and len(state["runs"]) > 1:
            text += t("sweep_edge", lang)
    return text


SWEEP_COLS = ("learning_rate", "state", "best_eval_loss", "best_step", "final_train_loss")  # locale sweep_col_<c>


def sweep_headers(lang: str) -> list[str]:
    return [t(f"sweep_col_{c}", lang) for c in SWEEP_COLS]


def x_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"compare_x_{x}", lang), x) for x in ("step", "epoch", "tokens")]


def sweep_frame(state: dict, lang: str = "en"):
    import pandas as pd
    rows = []
    best = (state.get("best") or {}).get("learning_rate")
    for r in state["runs"]:
        be, ft = r.get("best_eval_loss"), r.get("final_train_loss")
        rows.append([("★ " if r["lr"] == best else "") + f"{r['lr']:g}", r["state"],
                     "" if be is None else f"{be:.4f}", r.get("best_step") or "", "" if ft is None else f"{ft:.4f}"])
    return pd.DataFrame(rows, columns=sweep_headers(lang))


def sweep_figure(state: dict, lang: str):
    dirs = [r["output_dir"] for r in state["runs"] if rundir.log_file(r["output_dir"]).exists()]
    if not dirs:
        return None
    try:
        return figure(compare(dirs), lang)
    except UserError:
        return None

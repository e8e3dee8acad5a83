"""The live view of a run shared by the Train, Evaluate and Export tabs: status line, progress bar, log tail,
loss curve and final results, refreshed by a timer from the run's files (engine.runs), plus Start / Abort.

The page keeps only the id of the run it shows; everything else is read back from disk on each tick, which
is what lets a reloaded page or a second tab re-attach to a running job.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import gradio as gr

from engine import runqueue, runs, usage
from engine.errors import ConfigError, UserError
from engine.export import folder_listing, next_step
from engine.paths import run_name
from engine.train import rundir

from . import monitor
from .locales import t
from .page import Page, check_fields, error_parts, render_msg

TICK_S = 1.0  # the page refreshes a running job at least this often
_STOPPERS: dict[str, threading.Thread] = {}  # run id -> the thread that waits for the run Abort asked to stop
_STOP_LOCK = threading.Lock()


@dataclass
class RunPanel:
    command: str
    scope: str
    status: gr.Markdown
    progress: gr.HTML
    log: gr.Textbox
    plot: gr.Plot | None
    result: gr.Markdown
    result_parts: gr.State
    start: gr.Button
    abort: gr.Button
    message: gr.Markdown
    message_parts: gr.State
    run_id: gr.State
    seen: gr.State
    usage: gr.HTML | None = None       # the run's CPU / memory / GPUs (engine.usage)
    curves: gr.Plot | None = None      # learning rate and grad norm, beside the loss
    queue: gr.Button | None = None     # "Queue it", offered when Start finds a run going (train only)
    reward_plot: gr.Plot | None = None  # reward runs (grpo): reward, KL, completion length; hidden until one logs one
    completions: gr.HTML | None = None  # ... and the completions it sampled at its last logging step


def build_panel(page: Page, command: str, scope: str, start_key: str, plot: bool) -> RunPanel:
    lang = page.lang
    with gr.Row():
        start = page.add(f"{scope}.start", gr.Button(t(start_key, lang), variant="primary", elem_id=f"{scope}-start"),
                         value=start_key)
        abort = page.add(f"{scope}.abort", gr.Button(t("btn_abort", lang), variant="stop", interactive=False,
                                                     elem_id=f"{scope}-abort"), value="btn_abort")
        queue = page.add(f"{scope}.queue", gr.Button(t("btn_queue", lang), visible=False, elem_id=f"{scope}-queue"),
                         value="btn_queue") if command == runqueue.COMMAND else None
    message, message_parts = page.message(f"{scope}.message")
    status = gr.Markdown(t("nothing_running", lang), elem_id=f"{scope}-status")
    progress = gr.HTML(monitor.progress_html(None, None, lang), elem_id=f"{scope}-progress")
    usage = gr.HTML(monitor.usage_html(None, lang), elem_id=f"{scope}-usage")
    with gr.Row():
        log = page.add(f"{scope}.log", gr.Textbox(label=t("log", lang), lines=14, max_lines=14, autoscroll=True,
                                                  interactive=False, elem_id=f"{scope}-log", scale=1),
                       label="log")
        fig = None
        if plot:
            fig = page.add(f"{scope}.plot", gr.Plot(label=t("loss_plot", lang), elem_id=f"{scope}-plot", scale=1,
                                                    format="png"), label="loss_plot")
            curves = page.add(f"{scope}.curves", gr.Plot(label=t("curves_plot", lang), elem_id=f"{scope}-curves",
                                                         scale=1, format="png"), label="curves_plot")
    reward_fig = completions = None
    if plot:
        reward_fig = page.add(f"{scope}.reward_plot", gr.Plot(label=t("reward_plot", lang), format="png",
                                                              elem_id=f"{scope}-reward-plot", visible=False),
                              label="reward_plot")
        completions = gr.HTML("", elem_id=f"{scope}-completions", visible=False)
    result, result_parts = page.message(f"{scope}.result")
    run_id = page.add(f"{scope}.run_id", gr.State(None))  # the run this panel shows
    return RunPanel(command, scope, status, progress, log, fig, result, result_parts, start, abort, message,
                    message_parts, run_id, gr.State({}), usage, curves if plot else None, queue,
                    reward_fig, completions)


def result_parts(run: runs.Run, status: dict) -> list:
    """Final metrics and where the result is, once the run has ended."""
    if status["state"] == "running":
        return []
    parts = []
    res = run.results()
    if res and run.command == "train":  # a preference / reward run: its last reward accuracy and margin too
        res = {**monitor.reward_results(run.log_records()), **res}
    if res:
        parts.append(("__metrics__", {"results": res}))
    if run.command == "train" and status["state"] in ("finished", "aborted"):
        path = run.adapter_path()
        if path:
            parts.append(("adapter_at", {"path": path}))
    if run.command == "eval" and status["state"] == "finished":
        parts.append(("predictions_at", {"path": f"{run.output}/{rundir.PREDICTIONS}"}))
    if run.command == "export" and status["state"] == "finished":
        parts.append(("export_done", {"path": run.output}))
        try:
            files = folder_listing(run.output)
        except OSError:  # moved or deleted since
            files = []
        if files:
            parts.append(("export_files", {"files": "\n".join(f"- `{f}`" for f in files)}))
        if next_step(run.output):
            parts.append(("export_next", {"line": next_step(run.output)}))
    return parts


def merge(ups: dict, named: dict, extra: dict) -> dict:
    """Field updates + the generated output-dir name (one update per component)."""
    out = dict(ups)
    for comp, v in named.items():
        kw = dict(out.get(comp) or {})
        kw.pop("__type__", None)
        out[comp] = gr.update(value=v, **kw)
    out.update(extra)
    return out


def name_output(page: Page, data: dict, scopes, prefix: str) -> tuple[dict, dict]:
    """(raw values, widget updates): an empty output-dir box gets a fresh <prefix>_<date-time> name, shown in the
    box so that the preview, the saved YAML and the started run all use the same folder."""
    raw = page.raw_values(data, *scopes)
    box = next((page.args[s]["output_dir"] for s in scopes if "output_dir" in page.args.get(s, {})), None)
    if box is None or raw.get("output_dir"):
        return raw, {}
    raw["output_dir"] = run_name(prefix)
    return raw, {box: raw["output_dir"]}


@dataclass(eq=False)
class RunControls:
    """What Start, Abort, "Queue it" and the timer of one panel do. `prepare(raw_values, lang)` returns the values
    to run with (or raises ConfigError). on_end = (inputs, outputs, fn): fn(*inputs) gives updates for outputs when
    a run ends or the page attaches to another run (the adapter list of the top panel)."""
    page: Page
    panel: RunPanel
    scopes: tuple[str, ...]
    prepare: Callable[[dict, str], dict]
    on_end: tuple | None = None
    explicit: tuple = ()

    def __post_init__(self):
        self.saves = self.page.saves
        self.lang_c = self.page.lang_box
        self.inputs = self.page.components(*self.scopes) | {self.lang_c}
        self.end_inputs, self.end_outputs, self.on_end_fn = self.on_end if self.on_end else ([], [], None)
        panel = self.panel
        plots = [c for c in (panel.plot, panel.reward_plot, panel.completions) if c is not None]
        self.tick_outputs = [panel.status, panel.progress, panel.log, panel.result, panel.result_parts, panel.start,
                             panel.abort, panel.run_id, panel.seen] + plots + list(self.end_outputs)
        # the monitor, the curves and "Queue it" (offered while a run goes: Start is disabled then), after the rest
        self.extra_outputs = [c for c in (panel.usage, panel.curves, panel.queue) if c is not None]
        self.tick_outputs += self.extra_outputs

    def _said(self, parts, lang) -> dict:
        return {self.panel.message_parts: parts, self.panel.message: render_msg(parts, lang)}

    def _checked(self, raw, lang) -> tuple[runs.Checked | None, dict]:
        """(the values checked, {field: message}) as Start and "Queue it" check the form: once, by runs.check,
        whose result spawn and the queue's recipe take as it is."""
        try:
            values = self.prepare(raw, lang)
        except ConfigError as e:
            return None, {e.field or "_": str(e)}
        _, errors, checked = check_fields(values, runs.CONFIG_COMMAND[self.panel.command],
                                          lambda typed: runs.check(self.panel.command, typed))
        return checked, errors

    def start(self, data):
        panel, page = self.panel, self.page
        lang = data[self.lang_c]
        busy = runs.active_run(self.saves)
        if busy is not None:  # said first: no point fixing a form that cannot start now
            parts = [("busy", {"command": busy.command, "path": busy.output})]
            if panel.queue is not None:  # ... but it can wait for its turn
                parts.append(("queue_offer", {}))
                return {**self._said(parts, lang), panel.queue: gr.update(visible=True)}
            return self._said(parts, lang)
        raw, named = name_output(page, data, self.scopes, panel.command)
        checked, errors = self._checked(raw, lang)
        ups = dict(page.field_updates(lang, errors, *self.scopes))
        if errors:
            return merge(ups, named, self._said(error_parts(errors), lang))
        try:
            run = runs.spawn(panel.command, checked, self.saves, explicit=self.explicit)
        except runs.RunBusy as e:
            parts = [("busy", {"command": e.run.command, "path": e.run.output})]
        except ConfigError as e:
            ups.update(page.field_updates(lang, {e.field or "_": str(e)}, *self.scopes))
            parts = error_parts({e.field or "_": str(e)})
        except UserError as e:
            parts = [f"✗ {e}"]
        else:
            parts = [("started", {"path": run.output})]
            ups.update({panel.run_id: run.id, panel.start: gr.update(interactive=False),
                        panel.abort: gr.update(interactive=True), panel.seen: {}, panel.result_parts: [],
                        panel.result: ""})
        return merge(ups, named, self._said(parts, lang))

    def aborting(self, run_id, lang):
        """Outside the queue, so it answers at once: the run is asked to stop (its status says `aborting` from now
        on, in every tab) and a server thread waits for it, killing what is left after the run's own deadline."""
        run = runs.active_run(self.saves, self.panel.command) or runs.get_run(run_id, self.saves)
        if run is None or not run.request_abort():
            parts = [("nothing_running", {})]
            return parts, render_msg(parts, lang), gr.update(interactive=False), None
        with _STOP_LOCK:  # one waiting thread per run, however many tabs press Abort
            if run.id not in _STOPPERS or not _STOPPERS[run.id].is_alive():
                # a server thread: it keeps going when the page is closed, so the run is stopped either way
                _STOPPERS[run.id] = threading.Thread(target=run.abort, name=f"abort-{run.id}", daemon=True)
                _STOPPERS[run.id].start()
        parts = [("aborting", {})]
        return parts, render_msg(parts, lang), gr.update(interactive=False), run.id

    def stopped(self, run_id, lang):
        """Once the run has stopped (a trainer: its checkpoint saved), or been killed: say which."""
        stopper = _STOPPERS.get(run_id) if run_id else None
        if stopper is None:
            return gr.skip(), gr.skip()
        stopper.join()
        run = runs.get_run(run_id, self.saves)
        left = run.processes() if run is not None else []
        parts = [("aborted_left", {"pids": [p.pid for p in left]})] if left else [("aborted_ok", {})]
        return parts, render_msg(parts, lang)

    def _idle(self, seen, lang) -> list:
        """No run to show: the panel at rest (once per language)."""
        skip = gr.skip()
        key = {"run": None, "lang": lang}
        if seen == key:
            return [skip] * (len(self.tick_outputs))
        out = [monitor.status_md(None, lang), monitor.progress_html(None, None, lang), "", "", [],
               gr.update(interactive=True), gr.update(interactive=False), None, key]
        if self.panel.plot is not None:
            out += [None, gr.update(value=None, visible=False), gr.update(value="", visible=False)]
        return out + [skip] * len(self.end_outputs) + _monitor_out(self.panel, None, [], lang, True, self.saves)

    def tick(self, run_id, seen, lang, *end_args):
        panel, saves = self.panel, self.saves
        run = runs.active_run(saves, panel.command) or runs.get_run(run_id, saves) \
            or (runs.latest_run(saves, panel.command) if not seen else None)
        skip = gr.skip()
        if run is None:
            return self._idle(seen, lang)
        st = run.status()
        stopping = st["state"] == "running" and run.aborted  # asked to stop, here or in another tab (phase: aborting)
        prog = run.progress()
        recs = run.log_records() if panel.plot is not None else []
        tail = run.tail(200)
        key = {"run": run.id, "lang": lang, "state": st["state"], "phase": st["phase"], "step": prog["step"],
               "n": len(recs), "log": len(tail), "elapsed": int(prog.get("elapsed") or 0)}
        if seen == key and st["state"] != "running":
            return [skip] * len(self.tick_outputs)
        if seen == key:  # nothing new in the files; the process's CPU and memory move anyway
            return [skip] * (len(self.tick_outputs) - len(self.extra_outputs)) + _monitor_out(
                panel, run, recs, lang, False, saves)
        same_run = seen.get("run") == run.id
        running = st["state"] == "running"
        parts = result_parts(run, st)
        out = [monitor.status_md(st, lang, run.output),
               monitor.progress_html(prog, st, lang),
               tail if not same_run or seen.get("log") != len(tail) else skip,
               render_msg(parts, lang) if not same_run or seen.get("state") != st["state"]
               or seen.get("lang") != lang else skip,
               parts,
               gr.update(interactive=not running), gr.update(interactive=running and not stopping), run.id, key]
        changed = False
        if panel.plot is not None:
            changed = not same_run or seen.get("n") != len(recs) or seen.get("lang") != lang
            out += self._plots(run, recs, lang) if changed else [skip, skip, skip]
        just_ended = same_run and seen.get("state") == "running" and not running
        if self.on_end_fn is not None and (just_ended or not same_run):
            out += list(self.on_end_fn(*end_args))
        else:
            out += [skip] * len(self.end_outputs)
        return out + _monitor_out(panel, run, recs, lang, changed, saves)

    def _plots(self, run, recs: list, lang: str) -> list:
        """The loss curve; a reward run (grpo) also has its reward curves and sampled completions."""
        loss = monitor.loss_figure(recs, lang)
        rfig = monitor.reward_figure(recs, lang)
        table = monitor.completions_html(rundir.read_completions(run.output), lang)
        return [loss, gr.update(value=rfig, visible=rfig is not None), gr.update(value=table, visible=bool(table))]

    def queue_it(self, data):
        """"Queue it": the form, checked as Start checks it, waits in the run queue (engine.runqueue) for its
        turn. An empty output dir is named when the run starts, so two queued forms never share a folder."""
        page = self.page
        lang = data[self.lang_c]
        raw = page.raw_values(data, *self.scopes)
        unnamed = not raw.get("output_dir")
        checked, errors = self._checked({**raw, "output_dir": raw.get("output_dir") or "queued"}, lang)
        ups = page.field_updates(lang, errors, *self.scopes)
        if errors:
            return {**ups, **self._said(error_parts(errors), lang)}
        recipe = runs.recipe(checked)
        if unnamed:
            recipe.pop("output_dir", None)
        try:
            item = runqueue.add(recipe, page.saves, source="web UI")
            runqueue.ensure_runner(page.saves)
        except UserError as e:
            parts = [f"✗ {e}"]
        else:
            waiting = sum(it["state"] == runqueue.QUEUED for it in runqueue.items(page.saves))
            parts = [("queued", {"id": item["id"], "n": waiting})]
        return {**ups, **self._said(parts, lang)}


def wire(page: Page, panel: RunPanel, scopes: tuple[str, ...], prepare: Callable[[dict, str], dict],
         on_end: tuple | None = None, explicit=()):
    """Start / Abort / timer (and "Queue it") for one tab: see RunControls."""
    ctl = RunControls(page, panel, scopes, prepare, on_end, explicit)
    field_outputs = page.components(*scopes)
    panel.start.click(ctl.start, ctl.inputs, field_outputs | {panel.message, panel.message_parts, panel.run_id,
                                                              panel.start, panel.abort, panel.seen, panel.result,
                                                              panel.result_parts}
                      | ({panel.queue} if panel.queue is not None else set()), show_progress="minimal")
    if panel.queue is not None:
        panel.queue.click(ctl.queue_it, ctl.inputs, page.components(*scopes) | {panel.message, panel.message_parts},
                          show_progress="minimal")

    asked = gr.State(None)  # the run this click asked to stop
    panel.abort.click(ctl.aborting, [panel.run_id, ctl.lang_c], [panel.message_parts, panel.message, panel.abort,
                                                                 asked], queue=False, show_progress="hidden").then(
        ctl.stopped, [asked, ctl.lang_c], [panel.message_parts, panel.message], show_progress="hidden")

    timer = gr.Timer(TICK_S)
    tick_inputs = [panel.run_id, panel.seen, ctl.lang_c] + list(ctl.end_inputs)
    # keep the newest log line in view (the box is re-filled on every change)
    scroll = f"() => {{ const t = document.querySelector('#{panel.scope}-log textarea'); " \
             f"if (t) t.scrollTop = t.scrollHeight; }}"
    timer.tick(ctl.tick, tick_inputs, ctl.tick_outputs, show_progress="hidden", concurrency_limit=None, queue=False,
               api_name="tick").then(
        None, None, None, js=scroll, queue=False, show_progress="hidden")
    return timer


def _monitor_out(panel: RunPanel, run, recs: list, lang: str, curves_changed: bool, saves) -> list:
    """The monitor line (a running run: sampled now; an ended one: the peaks it recorded) and the curves."""
    out = []
    if panel.usage is not None:
        if run is None:
            out.append(monitor.usage_html(None, lang))
        elif run.alive():
            out.append(monitor.usage_html(usage.sample(run), lang))
        else:
            peak = usage.read_peaks(run.output)
            out.append(monitor.usage_html({"peak": peak, "rss_mb": None, "processes": 0}, lang) if peak
                       else monitor.usage_html(None, lang))
    if panel.curves is not None:
        out.append(monitor.curves_figure(recs, lang) if curves_changed else gr.skip())
    if panel.queue is not None:
        alive = run is not None and run.alive()
        out.append(gr.update(visible=alive or runs.active_run(saves) is not None))
    return out

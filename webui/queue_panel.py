"""The run queue under the Train tab's run panel: every queued, running and ended item with its reason, and
the verbs to reorder and cancel. The queue lives on disk (engine.runqueue), shared with `tuneboard queue`, so
this panel only reads it back on a timer and forwards the buttons."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from engine import runqueue
from engine.errors import UserError

from .locales import t
from .page import Page, render_msg

REFRESH_S = 2.0
COLUMNS = ("id", "state", "what", "output", "reason")


def rows(saves) -> list[list[str]]:
    out = []
    for it in runqueue.items(saves):
        v = it["values"]
        what = f"{v.get('stage', 'sft')} · {','.join(v.get('dataset') or []) or '?'}"
        out.append([it["id"], it["state"], what, it.get("output") or v.get("output_dir") or "—",
                    it.get("reason") or ""])
    return out


@dataclass(eq=False)
class QueuePanel:
    table: gr.Dataframe
    pick: gr.Dropdown
    message: gr.Markdown
    message_parts: gr.State
    timer: gr.Timer


def build(page: Page) -> QueuePanel:
    lang = page.lang
    saves = page.saves
    with gr.Accordion(t("queue_title", lang), open=bool(runqueue.items(saves)), elem_id="train-queue_panel") as acc:
        page.tr(acc, lambda lg: dict(label=t("queue_title", lg)))
        table = page.add("queue.table", gr.Dataframe(
            value=rows(saves), headers=[t(f"queue_col_{c}", lang) for c in COLUMNS], interactive=False, wrap=True,
            elem_id="train-queue_table"))
        page.tr(table, lambda lg: dict(headers=[t(f"queue_col_{c}", lg) for c in COLUMNS]))
        with gr.Row():
            pick = page.add("queue.pick", gr.Dropdown(choices=_waiting(saves), label=t("queue_pick", lang),
                                                      elem_id="train-queue_pick", scale=2), label="queue_pick")
            up = page.add("queue.up", gr.Button(t("queue_up", lang), size="sm", elem_id="train-queue_up"),
                          value="queue_up")
            down = page.add("queue.down", gr.Button(t("queue_down", lang), size="sm", elem_id="train-queue_down"),
                            value="queue_down")
            cancel = page.add("queue.cancel", gr.Button(t("queue_cancel", lang), size="sm", variant="stop",
                                                        elem_id="train-queue_cancel"), value="queue_cancel")
            clear = page.add("queue.clear", gr.Button(t("queue_clear", lang), size="sm", elem_id="train-queue_clear"),
                             value="queue_clear")
        msg, msg_parts = page.message("queue.message")
    lang_c = page.lang_box

    def show(cur=None):
        waiting = _waiting(saves)
        keep = cur if cur in [v for _, v in waiting] else None
        return rows(saves), gr.update(choices=waiting, value=keep)

    def act(verb):
        def fn(item_id, lg):
            try:
                if not item_id:
                    raise UserError(t("queue_pick_first", lg))
                if verb == "cancel":
                    runqueue.cancel(item_id, saves)
                elif verb == "clear":
                    runqueue.clear_done(saves)
                else:
                    runqueue.move(item_id, verb, saves)
                parts = [(f"queue_done_{verb}", {"id": item_id})]
            except UserError as e:
                parts = [f"✗ {e}"]
            return (*show(item_id), parts, render_msg(parts, lg))
        return fn

    outs = [table, pick, msg_parts, msg]
    for btn, verb in ((up, "up"), (down, "down"), (cancel, "cancel")):
        btn.click(act(verb), [pick, lang_c], outs, show_progress="hidden")
    clear.click(lambda cur, lg: act("clear")(cur or "-", lg), [pick, lang_c], outs, show_progress="hidden")
    seen = gr.State(None)

    def tick(cur, last):
        now = rows(saves)
        if now == last:  # nothing changed on disk: leave the table (and a half-open dropdown) alone
            return gr.skip(), gr.skip(), gr.skip()
        return (*show(cur), now)

    timer = gr.Timer(REFRESH_S)
    timer.tick(tick, [pick, seen], [table, pick, seen], show_progress="hidden", queue=False, api_name="queue_tick")
    return QueuePanel(table, pick, msg, msg_parts, timer)


def _waiting(saves) -> list[tuple[str, str]]:
    return [(f"{it['id']} ({it['state']})", it["id"]) for it in runqueue.items(saves)
            if it["state"] in runqueue.WAITING]

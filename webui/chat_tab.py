"""Chat tab: load base model + adapter(s) in this process through engine.chat.ChatEngine (imported lazily),
unload, streamed chat with system prompt and generation settings, tokens per second. `tuneboard webchat`
serves this tab alone.

Tools: a JSON box of function specs. When the model answers with a call (engine.data.tools' format, parsed by the
same parser as the API), the call is shown as JSON and what the user sends next is the tool's result. The chatbot
only displays; the conversation the engine reads (with its function / observation turns) is kept in a State."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engine.args import Namespace
from engine.chat import GEN_KEYS, ChatEngine
from engine.data import tools as T
from engine.errors import ConfigError, UserError
from engine.utils import get_logger

from . import widgets
from .locales import t
from .page import Page, check_fields, error_parts, render_msg

SCOPE = "chat"
log = get_logger()
# a fast model (a GPU: 100+ tokens/s) re-sending the whole answer per token keeps the browser so busy re-rendering
# it that Stop cannot be clicked; the answer so far is shown at most this often instead (the last words always come)
STREAM_EVERY_S = 0.1
# ... and the page lays out the whole answer again at each update, so a long answer is sent less often: the page
# re-renders at most this many characters a second. At 10 updates a second, a browser slowed 4x (Chromium's CPU
# throttling) stopped answering clicks once an answer passed a few thousand characters; at this pace it stayed
# clickable at 8x (tests/browser/test_browser_form_chat.py streams such an answer).
RENDER_CHARS_PER_S = 10_000


class Pace:
    """Whether the answer so far goes to the page now: the first words at once, then after STREAM_EVERY_S or
    after len / RENDER_CHARS_PER_S seconds, whichever is longer."""

    def __init__(self, clock=time.monotonic):
        self.clock, self.last = clock, None

    def due(self, chars: int) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < max(STREAM_EVERY_S, chars / RENDER_CHARS_PER_S):
            return False
        self.last = now
        return True


class Session:
    """The one loaded model of this server (a local studio: every tab chats with the same model)."""

    def __init__(self):
        self.engine = None
        self.desc: dict | None = None
        self.error: str | None = None  # why the last load failed
        self.lock = threading.Lock()

    def load(self, args: Namespace) -> dict:
        with self.lock:
            self._unload()
            try:
                engine = ChatEngine(args)
            except Exception as e:
                self.error = str(e) or type(e).__name__
                raise
            self.error = None
            self.engine = engine
            adapters = args.adapter_name_or_path or []
            self.desc = {"model": str(args.model_name_or_path),
                         "adapter": (" + " + ", ".join(Path(a).name for a in adapters)) if adapters else "",
                         "template": engine.template_name or "auto",
                         "device": str(getattr(engine.model, "device", "cpu")),
                         "dtype": str(getattr(engine.model, "dtype", "")).replace("torch.", "")}
            return self.desc

    def _unload(self):
        if self.engine is not None:
            self.engine.unload()
        self.engine, self.desc = None, None

    def unload(self):
        with self.lock:
            self._unload()


SESSION = Session()


def loaded_parts(desc: dict | None) -> list:
    if not desc:
        return [("model_not_loaded", {})]
    return [("model_loaded", {k: desc[k] for k in ("model", "adapter", "template")}),
            f"`{desc['device']}` · `{desc['dtype']}`"]


@dataclass(eq=False)
class ChatTab:
    """The Chat tab's components and handlers. fixed: the model arguments of a webchat recipe (no top panel then)."""
    page: Page
    fixed: dict | None
    load: gr.Button
    unload: gr.Button
    info: gr.Markdown
    info_parts: gr.State
    tools_box: gr.Textbox
    convo: gr.State      # the conversation as the engine reads it (tool calls / results keep their roles)
    chatbot: gr.Chatbot
    box: gr.Textbox
    send: gr.Button
    stop: gr.Button
    clear: gr.Button
    stats: gr.Markdown
    stats_parts: gr.State
    # an answer is streaming: Send is off, Enter sends nothing, Stop is on
    busy: gr.State = field(default_factory=lambda: gr.State(False))

    @property
    def scopes(self) -> tuple:
        return (SCOPE,) if self.fixed is not None else ("top", SCOPE)

    @property
    def load_inputs(self) -> set:
        return self.page.components(*self.scopes) | {self.page.lang_box}

    @property
    def load_outputs(self) -> set:
        return {self.info, self.info_parts, self.chatbot, self.convo, self.stats, self.stats_parts}

    def _stats(self, parts, lang_v) -> dict:
        return {self.stats_parts: parts, self.stats: render_msg(parts, lang_v)}

    def values_of(self, data) -> dict:
        v = self.page.raw_values(data, *self.scopes)
        if self.fixed is not None:
            v = {**self.fixed, **{k: x for k, x in v.items()}}
        return v

    def do_load(self, data):
        lang_v = data[self.page.lang_box]
        values = self.values_of(data)
        _, errors, ns = check_fields(values, "infer")
        if errors:
            parts = error_parts(errors)
            yield {self.info_parts: parts, self.info: render_msg(parts, lang_v)}
            return
        parts = [("model_loading", {"model": values.get("model_name_or_path")})]
        # another model: a new conversation
        yield {self.info_parts: parts, self.info: render_msg(parts, lang_v), self.chatbot: [], self.convo: [],
               self.stats_parts: [], self.stats: ""}
        try:
            desc = SESSION.load(ns)
        except (UserError, ConfigError, OSError, ValueError) as e:
            parts = [("load_failed", {"error": str(e)})]
        else:
            parts = loaded_parts(desc)
        yield {self.info_parts: parts, self.info: render_msg(parts, lang_v)}

    def do_unload(self, lang_v):
        SESSION.unload()
        parts = [("model_unloaded", {})]
        return parts, render_msg(parts, lang_v)

    def user_turn(self, msg, history, conv, lang_v, streaming):
        if streaming or not (msg or "").strip():
            return {}
        history, conv = add_user_turn(msg, history, conv, lang_v)
        return {self.box: "", self.chatbot: history, self.convo: conv, **self.streaming_updates(True)}

    def streaming_updates(self, on: bool) -> dict:
        return {self.busy: on, self.send: gr.update(interactive=not on), self.stop: gr.update(interactive=on)}

    def _request(self, data, lang_v) -> tuple[dict, list, dict]:
        """(generation settings, tools, {field: message}) for the next answer, read from the form."""
        typed, errors, _ = check_fields(self.values_of(data), "infer")
        try:
            tools = T.parse_tools(data[self.tools_box], f"{t('chat_tools', lang_v)} box")
        except UserError as e:
            tools, errors = None, {**errors, "_": str(e)}
        return typed, tools, errors

    def bot_turn(self, data):
        lang_v = data[self.page.lang_box]
        history = list(data[self.chatbot] or [])
        conv = synced(history, data[self.convo])
        engine = SESSION.engine
        if not history or history[-1]["role"] != "user":
            yield {self.chatbot: gr.skip()}
            return
        if engine is None:
            yield {self.chatbot: history[:-1], self.convo: conv[:-1], **self._stats([("load_first", {})], lang_v)}
            return
        typed, tools, errors = self._request(data, lang_v)
        if errors:
            yield {self.chatbot: history[:-1], self.convo: conv[:-1], **self._stats(error_parts(errors), lang_v)}
            return
        gen = {k: typed[k] for k in GEN_KEYS if k in typed}
        history.append({"role": "assistant", "content": ""})
        answer = ""
        stream = None
        pace = Pace()
        try:
            stream = engine.stream(conv, system=typed.get("default_system") or None, tools=tools or None, **gen)
            for delta in stream:
                answer += delta
                history[-1]["content"] = answer
                if pace.due(len(answer)):
                    yield {self.chatbot: history}
        except (UserError, ValueError) as e:
            yield {self.chatbot: history[:-1], self.convo: conv[:-1], **self._stats([f"✗ {e}"], lang_v)}
            return
        finally:  # Stop / Clear close this generator: the model stops generating after its current token
            if stream is not None:
                stream.close()
                s = engine.last_stats  # the console says what each answer ran with and why it ended
                log.info("chat answer: %s after %s tokens (max_new_tokens %s, do_sample %s)", s.get("finish_reason"),
                         s.get("completion_tokens"), gen.get("max_new_tokens"), gen.get("do_sample"))
        s = engine.last_stats
        parts = [("chat_stats", {"tps": s.get("tokens_per_s"), "n": s.get("completion_tokens"),
                                 "ttft": s.get("ttft_s")})]
        history[-1], turn = answer_turn(answer, bool(tools), lang_v)
        conv = conv + [turn]
        if turn["role"] == T.FUNCTION:
            parts.append(("chat_tool_next", {}))
        yield {self.chatbot: history, self.convo: conv, **self._stats(parts, lang_v)}

    def stopped(self, lang_v):
        """The answer so far stays (the conversation is rebuilt from the chatbot on the next turn)."""
        return {**self.streaming_updates(False), **self._stats([("chat_stopped", {})], lang_v)}

    def cleared(self):
        return {self.chatbot: [], self.convo: [], self.stats_parts: [], self.stats: ""}

    def cleared_again(self):
        return {**self.cleared(), **self.streaming_updates(False)}

    def said_loaded(self, lg):
        return loaded_parts(SESSION.desc), render_msg(loaded_parts(SESSION.desc), lg)


def build(page: Page, fixed: dict | None = None) -> ChatTab:
    """fixed: the model arguments of a webchat recipe (no top panel then)."""
    lang = page.lang
    with gr.Row():
        load = page.add("chat.load", gr.Button(t("btn_load_model", lang), variant="primary", elem_id="chat-load"),
                        value="btn_load_model")
        unload = page.add("chat.unload", gr.Button(t("btn_unload_model", lang), elem_id="chat-unload"),
                          value="btn_unload_model")
    info, info_parts = page.message("chat.info", value=render_msg(loaded_parts(SESSION.desc), lang))
    args = widgets.scope_args("infer", groups={"model", "generation"})
    with gr.Row():
        with gr.Column(scale=3):
            parts = _conversation(page, [a for a in args if a.group != "generation"])  # + the system prompt
        with gr.Column(scale=1):
            for a in [a for a in args if a.group == "generation"]:
                page.arg(SCOPE, a)
    tab = ChatTab(page, fixed, load, unload, info, info_parts, **parts)
    _wire(tab)
    return tab


def _conversation(page: Page, main: list) -> dict:
    """The system prompt, the tools box, the chat and its input row, the answer's statistics."""
    lang = page.lang
    for a in main:
        if a.name == "default_system":  # the chat's system prompt box
            comp = page.arg(SCOPE, a, lines=2, label=t("system_prompt", lang))
            page.tr(comp, lambda lg: dict(label=t("system_prompt", lg)))
        else:
            page.arg(SCOPE, a)
    tools_box = page.add("chat.tools", gr.Textbox(lines=2, max_lines=12, label=t("chat_tools", lang),
                                                  placeholder=t("chat_tools_hint", lang), elem_id="chat-tools"),
                         label="chat_tools", placeholder="chat_tools_hint")
    convo = gr.State([])
    chatbot = page.add("chat.bot", gr.Chatbot(height=420, elem_id="chat-bot", buttons=["copy"],
                                              label=t("tab_chat", lang)), label="tab_chat")
    with gr.Row():
        box = page.add("chat.input", gr.Textbox(show_label=False, placeholder=t("chat_placeholder", lang),
                                                elem_id="chat-input", scale=5, lines=1),
                       placeholder="chat_placeholder")
        send = page.add("chat.send", gr.Button(t("btn_submit", lang), variant="primary", elem_id="chat-send",
                                               scale=1, min_width=80), value="btn_submit")
        stop = page.add("chat.stop", gr.Button(t("btn_stop", lang), variant="stop", elem_id="chat-stop",
                                               scale=1, min_width=80, interactive=False), value="btn_stop")
        clear = page.add("chat.clear", gr.Button(t("btn_clear", lang), elem_id="chat-clear", scale=1,
                                                 min_width=80), value="btn_clear")
    stats, stats_parts = page.message("chat.stats")
    return dict(tools_box=tools_box, convo=convo, chatbot=chatbot, box=box, send=send, stop=stop, clear=clear,
                stats=stats, stats_parts=stats_parts)


def _wire(tab: ChatTab) -> None:
    lang_c = tab.page.lang_box
    tab.load.click(tab.do_load, tab.load_inputs, tab.load_outputs)
    tab.unload.click(tab.do_unload, lang_c, [tab.info_parts, tab.info])

    bot_inputs = tab.load_inputs | {tab.chatbot, tab.convo, tab.tools_box}
    bot_outputs = {tab.chatbot, tab.convo, tab.stats, tab.stats_parts}
    turn_outputs = {tab.box, tab.chatbot, tab.convo, tab.busy, tab.send, tab.stop}
    streaming = {tab.busy, tab.send, tab.stop}
    answers = []
    for ev in (tab.box.submit, tab.send.click):
        answer = ev(tab.user_turn, [tab.box, tab.chatbot, tab.convo, lang_c, tab.busy], turn_outputs,
                    show_progress="hidden", queue=False).then(tab.bot_turn, bot_inputs, bot_outputs,
                                                              show_progress="hidden")
        answer.then(lambda: tab.streaming_updates(False), None, streaming, show_progress="hidden", queue=False)
        answers.append(answer)
    tab.stop.click(tab.stopped, lang_c, streaming | {tab.stats_parts, tab.stats}, show_progress="hidden",
                   cancels=answers)
    # cancelling ends the stream; cleared once more after it, so no update of the stream already on its way
    # to the page refills the chat. Send comes back only with the second clear: once it is on, Clear is over.
    clear_outputs = {tab.chatbot, tab.convo, tab.stats_parts, tab.stats}
    tab.clear.click(tab.cleared, None, clear_outputs, show_progress="hidden", cancels=answers).then(
        tab.cleared_again, None, clear_outputs | streaming, show_progress="hidden", queue=False)
    if tab.fixed is None:  # a reloaded studio page says which model the server holds (webchat follows its own load)
        tab.page.on_load.append((lambda lg: tab.said_loaded(lg), [lang_c], [tab.info_parts, tab.info]))


def add_user_turn(msg: str, history: list, conv: list, lang: str) -> tuple[list, list]:
    """The user's message: a tool result when the model's last turn was a tool call, else a user turn."""
    conv = synced(history, conv)
    if conv and conv[-1]["role"] == T.FUNCTION:
        shown = f"{t('chat_tool_result', lang)}:\n```\n{msg}\n```"
        return list(history) + [{"role": "user", "content": shown}], conv + [{"role": T.OBSERVATION, "content": msg}]
    return list(history) + [{"role": "user", "content": msg}], conv + [{"role": "user", "content": msg}]


def answer_turn(answer: str, tools: bool, lang: str) -> tuple[dict, dict]:
    """(the chatbot's message, the conversation's turn) for a finished answer; a tool call is shown as JSON."""
    text, calls = T.parse_tool_calls(answer) if tools else (answer, [])
    if not calls:
        return {"role": "assistant", "content": answer}, {"role": "assistant", "content": answer}
    shown = "\n\n".join(f"{t('chat_tool_call', lang)} `{c['name']}`:\n```json\n"
                         f"{json.dumps(c['arguments'], ensure_ascii=False, indent=2)}\n```" for c in calls)
    return {"role": "assistant", "content": (text + "\n\n" if text else "") + shown}, \
        {"role": T.FUNCTION, "content": T.calls_json(calls)}


def synced(history: list, conv: list | None) -> list:
    """The engine's conversation for this chatbot history: the State when it matches (same length, same roles
    side), else rebuilt from the history's plain text (e.g. after the chatbot was edited)."""
    conv = list(conv or [])
    user_side = ("user", T.OBSERVATION)
    if len(conv) == len(history) and all((c["role"] in user_side) == (h["role"] == "user")
                                         for c, h in zip(conv, history)):
        return conv
    return [{"role": m["role"], "content": _text(m["content"])} for m in history]


def _text(content) -> str:
    """gradio 6 may hand message content back as a list of parts: keep the text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)

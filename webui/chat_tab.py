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
from pathlib import Path

import gradio as gr

from engine.args import Namespace
from engine.chat import GEN_KEYS, ChatEngine
from engine.data import tools as T
from engine.errors import ConfigError, UserError

from . import widgets
from .locales import t
from .page import Page, check_fields, error_parts, render_msg

SCOPE = "chat"
# a fast model (a GPU: 100+ tokens/s) re-sending the whole answer per token keeps the browser so busy re-rendering
# it that Stop cannot be clicked; the answer so far is shown this often instead (the last words always come)
STREAM_EVERY_S = 0.1


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


def build(page: Page, fixed: dict | None = None) -> dict:
    """fixed: the model arguments of a webchat recipe (no top panel then)."""
    lang = page.lang
    scopes = (SCOPE,) if fixed is not None else ("top", SCOPE)
    with gr.Row():
        load = page.add("chat.load", gr.Button(t("btn_load_model", lang), variant="primary", elem_id="chat-load"),
                        value="btn_load_model")
        unload = page.add("chat.unload", gr.Button(t("btn_unload_model", lang), elem_id="chat-unload"),
                          value="btn_unload_model")
    info, info_parts = page.message("chat.info", value=render_msg(loaded_parts(SESSION.desc), lang))
    args = widgets.scope_args("infer", groups={"model", "generation"})
    main = [a for a in args if a.group != "generation"]  # the system prompt
    with gr.Row():
        with gr.Column(scale=3):
            for a in main:
                if a.name == "default_system":  # the chat's system prompt box
                    comp = page.arg(SCOPE, a, lines=2, label=t("system_prompt", lang))
                    page.tr(comp, lambda lg: dict(label=t("system_prompt", lg)))
                else:
                    page.arg(SCOPE, a)
            tools_box = page.add("chat.tools", gr.Textbox(lines=2, max_lines=12, label=t("chat_tools", lang),
                                                          placeholder=t("chat_tools_hint", lang),
                                                          elem_id="chat-tools"),
                                 label="chat_tools", placeholder="chat_tools_hint")
            convo = gr.State([])  # the conversation as the engine reads it (tool calls / results keep their roles)
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
        with gr.Column(scale=1):
            for a in [a for a in args if a.group == "generation"]:
                page.arg(SCOPE, a)

    lang_c = page.c("top.lang")
    inputs = page.components(*scopes) | {lang_c}

    def values_of(data) -> dict:
        v = page.raw_values(data, *scopes)
        if fixed is not None:
            v = {**fixed, **{k: x for k, x in v.items()}}
        return v

    def do_load(data):
        lang_v = data[lang_c]
        values = values_of(data)
        _, errors, ns = check_fields(values, "infer")
        if errors:
            parts = error_parts(errors)
            yield {info_parts: parts, info: render_msg(parts, lang_v)}
            return
        parts = [("model_loading", {"model": values.get("model_name_or_path")})]
        # another model: a new conversation
        yield {info_parts: parts, info: render_msg(parts, lang_v), chatbot: [], convo: [], stats_parts: [],
               stats: ""}
        try:
            desc = SESSION.load(ns)
        except (UserError, ConfigError, OSError, ValueError) as e:
            parts = [("load_failed", {"error": str(e)})]
        else:
            parts = loaded_parts(desc)
        yield {info_parts: parts, info: render_msg(parts, lang_v)}

    load_outputs = {info, info_parts, chatbot, convo, stats, stats_parts}
    load.click(do_load, inputs, load_outputs)

    def do_unload(lang_v):
        SESSION.unload()
        parts = [("model_unloaded", {})]
        return parts, render_msg(parts, lang_v)

    unload.click(do_unload, lang_c, [info_parts, info])

    busy = gr.State(False)  # an answer is streaming: Send is off, Enter sends nothing, Stop is on

    def user_turn(msg, history, conv, lang_v, streaming):
        if streaming or not (msg or "").strip():
            return {}
        history, conv = add_user_turn(msg, history, conv, lang_v)
        return {box: "", chatbot: history, convo: conv, **streaming_updates(True)}

    def streaming_updates(on: bool) -> dict:
        return {busy: on, send: gr.update(interactive=not on), stop: gr.update(interactive=on)}

    def bot_turn(data):
        lang_v = data[lang_c]
        history = list(data[chatbot] or [])
        conv = synced(history, data[convo])
        engine = SESSION.engine
        if not history or history[-1]["role"] != "user":
            yield {chatbot: gr.skip()}
            return
        if engine is None:
            parts = [("load_first", {})]
            yield {chatbot: history[:-1], convo: conv[:-1], stats_parts: parts, stats: render_msg(parts, lang_v)}
            return
        values = values_of(data)
        typed, errors, _ = check_fields(values, "infer")
        try:
            tools = T.parse_tools(data[tools_box], f"{t('chat_tools', lang_v)} box")
        except UserError as e:
            errors = {**errors, "_": str(e)}
        if errors:
            parts = error_parts(errors)
            yield {chatbot: history[:-1], convo: conv[:-1], stats_parts: parts, stats: render_msg(parts, lang_v)}
            return
        gen = {k: typed[k] for k in GEN_KEYS if k in typed}
        history.append({"role": "assistant", "content": ""})
        answer = ""
        stream = None
        shown = 0.0
        try:
            stream = engine.stream(conv, system=typed.get("default_system") or None, tools=tools or None, **gen)
            for delta in stream:
                answer += delta
                history[-1]["content"] = answer
                if time.monotonic() - shown >= STREAM_EVERY_S:
                    shown = time.monotonic()
                    yield {chatbot: history}
        except (UserError, ValueError) as e:
            parts = [f"✗ {e}"]
            yield {chatbot: history[:-1], convo: conv[:-1], stats_parts: parts, stats: render_msg(parts, lang_v)}
            return
        finally:  # Stop / Clear close this generator: the model stops generating after its current token
            if stream is not None:
                stream.close()
        s = engine.last_stats
        parts = [("chat_stats", {"tps": s.get("tokens_per_s"), "n": s.get("completion_tokens"),
                                 "ttft": s.get("ttft_s")})]
        history[-1], turn = answer_turn(answer, bool(tools), lang_v)
        conv = conv + [turn]
        if turn["role"] == T.FUNCTION:
            parts.append(("chat_tool_next", {}))
        yield {chatbot: history, convo: conv, stats_parts: parts, stats: render_msg(parts, lang_v)}

    bot_inputs = inputs | {chatbot, convo, tools_box}
    bot_outputs = {chatbot, convo, stats, stats_parts}
    turn_outputs = {box, chatbot, convo, busy, send, stop}
    answers = []
    for ev in (box.submit, send.click):
        answer = ev(user_turn, [box, chatbot, convo, lang_c, busy], turn_outputs, show_progress="hidden",
                    queue=False).then(bot_turn, bot_inputs, bot_outputs, show_progress="hidden")
        answer.then(lambda: streaming_updates(False), None, {busy, send, stop}, show_progress="hidden", queue=False)
        answers.append(answer)

    def stopped(lang_v):
        """The answer so far stays (the conversation is rebuilt from the chatbot on the next turn)."""
        parts = [("chat_stopped", {})]
        return {**streaming_updates(False), stats_parts: parts, stats: render_msg(parts, lang_v)}

    stop.click(stopped, lang_c, {busy, send, stop, stats_parts, stats}, show_progress="hidden", cancels=answers)

    def cleared():
        return {chatbot: [], convo: [], stats_parts: [], stats: ""}

    def cleared_again():
        return {**cleared(), **streaming_updates(False)}

    # cancelling ends the stream; cleared once more after it, so no update of the stream already on its way
    # to the page refills the chat. Send comes back only with the second clear: once it is on, Clear is over.
    clear_outputs = {chatbot, convo, stats_parts, stats}
    clear.click(cleared, None, clear_outputs, show_progress="hidden", cancels=answers).then(
        cleared_again, None, clear_outputs | {busy, send, stop}, show_progress="hidden", queue=False)
    if fixed is None:  # a reloaded studio page says which model the server holds (webchat follows its own load)
        page.on_load.append((lambda lg: (loaded_parts(SESSION.desc), render_msg(loaded_parts(SESSION.desc), lg)),
                             [lang_c], [info_parts, info]))
    return {"chatbot": chatbot, "load": load, "info": info, "load_fn": do_load, "load_inputs": inputs,
            "load_outputs": load_outputs}


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

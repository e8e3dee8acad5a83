"""Chat templates as data: how a conversation becomes text and token ids.

A Template is a handful of format strings. `{content}` is the message text; `{bos}` / `{eos}` are
the tokenizer's special tokens (bound by get_template). The user format ends with the assistant
header, and the assistant format ends with the stop word, so that

    prompt_ids   = [separator] [system] user-turn + assistant header
    response_ids = answer + stop word

and the training labels end exactly on the token generation stops at. The separator that follows a
stop word (ChatML's "\\n") goes to the *next* prompt: the response never has to predict anything
after its stop word.

`auto` uses the tokenizer's own chat_template (apply_chat_template) and finds the prompt/response
split by rendering the conversation one turn at a time.

Pieces are tokenised separately (prompt, then response) so the split is exact; for templates whose
pieces meet at special tokens or newlines this gives the same ids as tokenising the whole text
(tested for ChatML against the bundled tokenizer's own template).

Each named template renders what the family's own chat_template (jinja) renders: tests/test_reference_templates.py
checks the strings against the official jinja files (fetched by `make reference-templates`, never committed).

Reasoning templates (`thought` set: qwen3, qwen3_nothink, deepseekr1, glm4) follow their jinja: the thinking in
earlier answers is dropped (GLM keeps an empty block), and only the last answer is written with its thought
block ("<think>\n...\n</think>\n\n", empty when the data has none). Training renders the whole conversation
that way, so the ids are the ones the model's own template gives; with mask_history only that last answer is
trained. `thinking=False` (qwen3_nothink, or enable_thinking: false) ends the last prompt with an empty block
instead (not trained) and drops the data's reasoning.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Any

from ..models.loader import adapter_template, model_path
from ..models.registry import default_template
from ..utils import get_logger
from ..errors import UserError
from . import tools as T
from .template_export import go_template, jinja, matches_tokenizer

log = get_logger()

Messages = list  # list[{"role": "user"|"assistant"|"function"|"observation", "content": str}]


def _fill(fmt: str, content: str, bos: str, eos: str) -> str:
    # Placeholders are replaced in the format before the content goes in, so user text such as
    # "{eos}" or "{content}" is never interpreted.
    fmt = fmt.replace("{bos}", bos).replace("{eos}", eos)
    return content.join(fmt.split("{content}")) if "{content}" in fmt else fmt


@dataclass
class Template:
    name: str
    format_user: str                      # user turn + assistant header, e.g. "...user\n{content}...assistant\n"
    format_assistant: str                 # answer + stop word, e.g. "{content}<|im_end|>"
    format_system: str = "{content}"      # the system turn (or the text prepended to the first user turn)
    separator: str = ""                   # text between a stop word and the next user turn
    stop_words: tuple = ()                # generation stops at these and at eos
    default_system: str = ""              # used when a conversation has no system prompt
    add_bos: bool | None = None           # prepend bos to a conversation; None = do what the tokenizer does
    system_in_user: bool = False          # no system turn: the system text is prepended to the first user message
    description: str = ""
    bos_token: str | None = None          # bound from the tokenizer by get_template
    eos_token: str | None = None
    prefix: str = ""                      # text that opens every conversation, after bos (GLM's "[gMASK]<sop>")
    system_always: bool = False           # the system turn is written even when empty (Llama 3.1's date header)
    system_last: bool = False             # with system_in_user: into the last user message, not the first (Mistral)
    trim: tuple = ()                      # roles whose text loses surrounding whitespace, as the jinja's `| trim`
    thought: tuple = ()                   # reasoning templates: the words around the thinking, ("<think>\n", ...)
    thinking: bool = True                 # False: the last prompt ends with an empty thought, reasoning is dropped
    thought_in_prompt: bool = False       # the opening thought word ends the generation prompt (DeepSeek-R1)
    history_thought: bool = False         # earlier answers keep an empty thought block (GLM) instead of none
    stop_opens_turn: bool = False         # the stop word is the next user turn's header (GLM's <|user|>): an answer
    #                                       ends with it and the next prompt does not repeat it

    # ---- text
    def _bos(self) -> str:
        return self.bos_token or ""

    def _eos(self) -> str:
        return self.eos_token or (self.stop_words[0] if self.stop_words else "")

    def _system_text(self, system: str | None) -> str:
        sys_ = system if system else self.default_system
        if sys_ and "system" in self.trim:
            sys_ = sys_.strip()
        return _fill(self.format_system, sys_, self._bos(), self._eos()) if sys_ or self.system_always else ""

    def _answer(self, content: str, last: bool) -> str:
        """An answer as it goes into {content}: the last one with its thought block (reasoning templates), earlier
        ones with the thinking dropped (what the families' jinja does with past turns)."""
        strip = "assistant" in self.trim
        if not self.thought:
            return content.strip() if strip else content
        open_, close = self.thought
        reasoning, answer = None, content
        if close.strip() in content:  # "<think>\n...</think>\n\nanswer", the usual way reasoning data is written
            head, answer = content.split(close.strip())[0], content.split(close.strip())[-1]
            reasoning = head.rstrip("\n").split(open_.strip())[-1].lstrip("\n")
        if strip:
            answer = answer.strip()
        if last and self.thinking:
            r = (reasoning or "").strip() if strip else (reasoning or "").strip("\n")
            text = open_ + r + close + answer.lstrip("\n")
            return text[len(open_):] if self.thought_in_prompt else text
        if last or reasoning is not None:
            answer = answer.lstrip("\n")
        return open_ + close + answer if self.history_thought else answer

    def _generation_suffix(self) -> str:
        """What the last prompt ends with after the assistant header (reasoning templates)."""
        if not self.thought:
            return ""
        if not self.thinking:
            return "".join(self.thought)
        return self.thought[0] if self.thought_in_prompt else ""

    def _turn_texts(self, messages: Messages, system: str | None, tools=None, answered: bool = False
                    ) -> list[tuple[str, str | None]]:
        """[(prompt_text, response_text | None)] one per user turn; the last response may be None (answered=True
        drops a trailing unanswered user turn, so the last answer is the last turn). Tool lists, calls and results
        are rendered in engine.data.tools' documented format first."""
        messages, system = T.flatten(messages, system, tools, self.default_system)
        messages, system = _split_system(messages, system)
        _check_roles(messages)
        if answered and len(messages) % 2:
            messages = messages[:-1]
        bos, eos = self._bos(), self._eos()
        sys_text = self._system_text(system)
        last = (len(messages) - 1) // 2 * 2  # index of the last user message
        stop = self.stop_words[0] if self.stop_words else ""
        out = []
        for i in range(0, len(messages), 2):
            user = messages[i]["content"]
            if "user" in self.trim:
                user = user.strip()
            prefix = self.separator if i else self.prefix
            if sys_text and self.system_in_user and i == (last if self.system_last else 0):
                user = sys_text + user
            elif sys_text and not self.system_in_user and i == 0:
                prefix += sys_text
            body = _fill(self.format_user, user, bos, eos)
            if self.stop_opens_turn and i and stop and body.startswith(stop):
                body = body[len(stop):]  # the previous answer ended with it
            prompt = prefix + body + (self._generation_suffix() if i == last else "")
            resp = None
            if i + 1 < len(messages):
                resp = _fill(self.format_assistant, self._answer(messages[i + 1]["content"], i == last), bos, eos)
            out.append((prompt, resp))
        return out

    def render(self, messages: Messages, system: str | None = None, tools=None) -> str:
        """The conversation as text (previews). Ends with the assistant header when the last turn is the user's."""
        head = self._bos() if self._uses_bos_text() else ""
        return head + "".join(p + (r or "") for p, r in self._turn_texts(messages, system, tools))

    def render_response(self, content: str) -> str:
        """The last answer as the template writes it after the prompt render() gives (ends with the stop word)."""
        return _fill(self.format_assistant, self._answer(content, True), self._bos(), self._eos())

    def _uses_bos_text(self) -> bool:
        return bool(self.add_bos) and bool(self.bos_token)

    # ---- ids
    def bos_ids(self, tokenizer) -> list[int]:
        add = self.add_bos if self.add_bos is not None else _tokenizer_adds_bos(tokenizer)
        return [tokenizer.bos_token_id] if add and tokenizer.bos_token_id is not None else []

    def encode_multiturn(self, tokenizer, messages: Messages, system: str | None = None, tools=None
                         ) -> list[tuple[list[int], list[int]]]:
        """One (prompt_ids, response_ids) pair per assistant turn (an answer or a tool call); response_ids end with
        the stop word. A trailing user message (no answer) is ignored."""
        pairs = []
        for i, (p, r) in enumerate(self._turn_texts(messages, system, tools, answered=True)):
            if r is None:
                break
            ids = (self.bos_ids(tokenizer) if i == 0 else []) + _encode(tokenizer, p)
            pairs.append((ids, _encode(tokenizer, r)))
        return pairs

    def encode_prompt(self, tokenizer, messages: Messages, system: str | None = None, tools=None) -> list[int]:
        """Ids to feed generate(): the whole conversation, ending with the assistant header."""
        _check_prompt_end(messages)
        ids = self.bos_ids(tokenizer)
        for p, r in self._turn_texts(messages, system, tools):
            ids += _encode(tokenizer, p) + (_encode(tokenizer, r) if r is not None else [])
        return ids

    def stop_token_ids(self, tokenizer) -> list[int]:
        """Token ids generation should stop at: the stop words that are single tokens, and eos."""
        out = []
        for w in self.stop_words:
            tid = _single_token_id(tokenizer, w)
            if tid is not None:
                out.append(tid)
        if tokenizer.eos_token_id is not None:
            out.append(tokenizer.eos_token_id)
        return list(dict.fromkeys(out))

    def fix_tokenizer(self, tokenizer) -> None:
        """Make the tokenizer usable for training with this template: a pad token, right padding,
        and a warning when the template's stop word is not one token of this vocabulary."""
        if tokenizer.eos_token is None and self.stop_words:
            tokenizer.eos_token = self.stop_words[0]
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            log.info("tokenizer has no pad token; using %r", tokenizer.pad_token)
        tokenizer.padding_side = "right"
        for w in self.stop_words:
            if _single_token_id(tokenizer, w) is None:
                log.warning("template %r: stop word %r is not a single token of this tokenizer; the model may not "
                            "stop generating. Pick the template that matches the model (or `auto`).", self.name, w)

    # ---- the template in other programs' languages (engine.data.template_export)
    def to_jinja(self, tokenizer) -> str:
        """A Jinja chat_template (transformers, llama.cpp) that renders what encode_prompt encodes."""
        return jinja(self, tokenizer)

    def to_go_template(self) -> str:
        """Ollama's Modelfile TEMPLATE (a Go template) that renders what render() gives, without bos."""
        return go_template(self)

    def matches_tokenizer(self, tokenizer) -> bool:
        """Does the tokenizer's own chat_template already build this template's prompts, tool turns included?"""
        return matches_tokenizer(self, tokenizer)

    def to_dict(self) -> dict:
        """Fields that decide the token ids (part of the preprocessing cache key)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "description"}


class AutoTemplate(Template):
    """The tokenizer's own chat_template. The prompt/response split is found by rendering the
    conversation up to each assistant turn with and without the generation prompt."""

    def __init__(self, tokenizer, default_system: str = ""):
        super().__init__(name="auto", format_user="{content}", format_assistant="{content}",
                         default_system=default_system, description="the tokenizer's own chat_template",
                         bos_token=tokenizer.bos_token, eos_token=tokenizer.eos_token)
        self._tok = tokenizer
        self.stop_words = tuple(self._detect_stop_words())
        # the tokenizer's own template renders tool lists / calls / results when it reads a `tools` variable
        self.native_tools = bool(re.search(r"\btools\b", str(tokenizer.chat_template or "")))
        self._tools: list | None = None

    def _apply(self, msgs: Messages, gen: bool) -> str:
        try:
            if self._tools:
                return self._tok.apply_chat_template(msgs, tools=self._tools, tokenize=False,
                                                     add_generation_prompt=gen)
            return self._tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        except Exception as e:  # jinja errors: roles the template refuses, missing system support...
            raise UserError(f"template auto: the tokenizer's chat template failed ({type(e).__name__}: {e}); "
                            "choose an explicit template instead.") from None

    def _msgs(self, messages: Messages, system: str | None, tools=None) -> Messages:
        """Messages for apply_chat_template. Tool turns: in the tokenizer's own format when its template supports
        tools (assistant `tool_calls`, role `tool`, tools=...), else flattened into the documented text format."""
        self._tools = None
        if self.native_tools and (tools or T.has_tool_turns(messages)):
            return self._native_msgs(messages, system, tools)
        messages, system = T.flatten(messages, system, tools, self.default_system)
        messages, system = _split_system(messages, system)
        _check_roles(messages)
        sys_ = system or self.default_system
        return ([{"role": "system", "content": sys_}] if sys_ else []) + [
            {"role": m["role"], "content": m["content"]} for m in messages]

    def _native_msgs(self, messages: Messages, system: str | None, tools) -> Messages:
        messages, system = _split_system(messages, system)
        specs = T.parse_tools(tools) if not isinstance(tools, list) else tools
        self._tools = [{"type": "function", "function": t} for t in specs] or None
        out: Messages = []
        for m in messages:
            role, content = m.get("role"), m.get("content", "")
            if role == T.FUNCTION:
                out.append({"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": c} for c in T.parse_calls(content)]})
            elif role == T.OBSERVATION:
                if out and out[-1]["role"] == "tool":  # several results answer one turn of calls
                    out[-1]["content"] += "\n" + content
                else:
                    out.append({"role": "tool", "content": content})
            else:
                out.append({"role": role, "content": content})
        _check_roles([{"role": "user" if m["role"] == "tool" else m["role"]} for m in out])
        sys_ = system or self.default_system
        return ([{"role": "system", "content": sys_}] if sys_ else []) + out

    def _segments(self, messages: Messages, system: str | None, tools=None) -> list[tuple[str, str | None]]:
        msgs = self._msgs(messages, system, tools)
        off = 1 if msgs and msgs[0]["role"] == "system" else 0
        out, done = [], ""
        for k in range(off, len(msgs), 2):
            prompt_full = self._apply(msgs[:k + 1], gen=True)
            if not prompt_full.startswith(done):
                raise UserError("template auto: the tokenizer's chat template renders earlier turns differently "
                                "once later turns are added, so prompt and answer cannot be split; choose an "
                                f"explicit template (known: {', '.join(sorted(TEMPLATES))}).")
            prompt = prompt_full[len(done):]
            if k + 1 >= len(msgs):
                out.append((prompt, None))
                break
            full = self._apply(msgs[:k + 2], gen=False)
            if not full.startswith(prompt_full):
                raise UserError("template auto: the rendered answer does not follow the generation prompt; "
                                "choose an explicit template.")
            resp = full[len(prompt_full):]
            # Cut the response right after its stop word; what follows ("\n") opens the next prompt.
            cut = _last_stop(resp, self.stop_words)
            if cut is not None:
                out.append((prompt, resp[:cut]))
                done = full[:len(full) - len(resp) + cut]
            else:
                out.append((prompt, resp))
                done = full
        return out

    def _detect_stop_words(self) -> list[str]:
        words = [self._tok.eos_token] if self._tok.eos_token else []
        try:
            probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
            p = self._tok.apply_chat_template(probe[:1], tokenize=False, add_generation_prompt=True)
            f = self._tok.apply_chat_template(probe, tokenize=False)
        except Exception:
            return words
        tail = f[len(p):] if f.startswith(p) else ""
        specials = sorted((t for t in self._tok.all_special_tokens + list(getattr(self._tok, "added_tokens_encoder", {}))
                           if t and t in tail), key=lambda t: tail.rfind(t))
        for t in specials:  # special tokens in the rendered answer, e.g. <|im_end|>, <|eot_id|>, <end_of_turn>
            if t not in words and t != self._tok.bos_token:
                words.insert(0, t)
        return words

    def render_response(self, content: str) -> str:
        return content + (self.stop_words[0] if self.stop_words else "")

    def render(self, messages: Messages, system: str | None = None, tools=None) -> str:
        msgs = self._msgs(messages, system, tools)
        return self._apply(msgs, gen=bool(msgs) and msgs[-1]["role"] in ("user", "tool"))

    def encode_multiturn(self, tokenizer, messages, system=None, tools=None):
        pairs = []
        for p, r in self._segments(messages, system, tools):
            if r is None:
                break
            resp = _encode(tokenizer, r)
            if not r.endswith(tuple(w for w in self.stop_words if w)) and tokenizer.eos_token_id is not None:
                resp.append(tokenizer.eos_token_id)  # template adds no stop token: teach the model to stop on eos
            pairs.append((_encode(tokenizer, p), resp))
        return pairs

    def encode_prompt(self, tokenizer, messages, system=None, tools=None):
        _check_prompt_end(messages)
        return _encode(tokenizer, self.render(messages, system, tools))

    def to_dict(self) -> dict:
        return {"name": "auto", "chat_template": str(self._tok.chat_template), "default_system": self.default_system,
                "stop_words": list(self.stop_words)}


def _last_stop(text: str, words) -> int | None:
    best = None
    for w in words:
        if w:
            i = text.rfind(w)
            if i >= 0 and (best is None or i + len(w) > best):
                best = i + len(w)
    return best


def _split_system(messages: Messages, system: str | None) -> tuple[Messages, str | None]:
    """A leading {"role": "system"} message is accepted as the system prompt."""
    if messages and messages[0].get("role") == "system":
        return messages[1:], system if system else messages[0].get("content", "")
    return messages, system


def _check_prompt_end(messages: Messages) -> None:
    if not messages or messages[-1]["role"] not in ("user", T.OBSERVATION):
        raise UserError("encode_prompt: the conversation must end with a user message (or a tool result).")


def _check_roles(messages: Messages) -> None:
    for i, m in enumerate(messages):
        want = "user" if i % 2 == 0 else "assistant"
        if m.get("role") != want:
            raise UserError(f"message {i + 1} has role {m.get('role')!r}; conversations alternate user/assistant "
                            "starting with user.")


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _single_token_id(tokenizer, word: str) -> int | None:
    ids = tokenizer.encode(word, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def _tokenizer_adds_bos(tokenizer) -> bool:
    if getattr(tokenizer, "bos_token_id", None) is None:
        return False
    ids = tokenizer.encode("a")
    return bool(ids) and ids[0] == tokenizer.bos_token_id


_CHATML = dict(format_user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
               format_assistant="{content}<|im_end|>", format_system="<|im_start|>system\n{content}<|im_end|>\n",
               separator="\n", stop_words=("<|im_end|>",), add_bos=False)
_THINK = ("<think>\n", "\n</think>\n\n")
_LLAMA3 = dict(format_user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
                           "<|start_header_id|>assistant<|end_header_id|>\n\n",
               format_assistant="{content}<|eot_id|>", stop_words=("<|eot_id|>",), add_bos=True,
               trim=("system", "user", "assistant"))
_GEMMA = dict(format_user="<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n",
              format_assistant="{content}<end_of_turn>", format_system="{content}\n\n", system_in_user=True,
              separator="\n", stop_words=("<end_of_turn>",), add_bos=True, trim=("user", "assistant"))
_DEEPSEEK = dict(format_user="<｜User｜>{content}<｜Assistant｜>", format_assistant="{content}<｜end▁of▁sentence｜>",
                 stop_words=("<｜end▁of▁sentence｜>",), add_bos=True)

# Each family's format is checked against its official chat_template in tests/test_reference_templates.py; the
# descriptions say which (or that none was available).
TEMPLATES: dict[str, Template] = {t.name: t for t in [
    Template("default", format_user="Human: {content}\nAssistant:", format_assistant=" {content}{eos}",
             format_system="System: {content}\n", separator="\n",
             description="plain Human:/Assistant: turns, ends with the tokenizer's eos"),
    Template("alpaca", format_user="### Instruction:\n{content}\n\n### Response:\n", format_assistant="{content}{eos}",
             format_system="{content}\n\n", separator="\n\n",
             default_system="Below is an instruction that describes a task. "
                            "Write a response that appropriately completes the request.",
             description="Stanford Alpaca prompt"),
    Template("chatml", **_CHATML, description="<|im_start|>role ... <|im_end|> (SmolLM2, Qwen, many others)"),
    Template("qwen", **_CHATML, default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
             description="Qwen2.5: ChatML with its default system prompt"),
    Template("qwen2", **_CHATML, default_system="You are a helpful assistant.",
             description="Qwen2 / Qwen1.5: ChatML with their default system prompt"),
    Template("qwen3", **_CHATML, thought=_THINK,
             description="Qwen3 (thinking): the last answer is written with its <think> block, earlier ones without"),
    Template("qwen3_nothink", **_CHATML, thought=_THINK, thinking=False,
             description="Qwen3 with enable_thinking=False: the prompt ends with an empty <think> block"),
    # Meta's 3.1 / 3.3 templates write this date when none is given (3.2's writes today's): pinned, so the same
    # data gives the same ids on any day.
    Template("llama3", **_LLAMA3, system_always=True,
             format_system="<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                           "Today Date: 26 Jul 2024\n\n{content}<|eot_id|>",
             description="Llama 3.1 / 3.2 / 3.3 instruct (system turn with the knowledge / today dates)"),
    Template("llama2", format_user="{bos}[INST] {content} [/INST]", format_assistant=" {content} {eos}",
             format_system="<<SYS>>\n{content}\n<</SYS>>\n\n", system_in_user=True, add_bos=False,
             description="Llama 2 chat: [INST] ... [/INST], system inside the first turn"),
    # No reference jinja for v0.3 (the registry's Mistral-7B-Instruct-v0.3) here: written from its tokenizer's
    # published template; the test checks it against Nemo's, which differs in the spaces around [INST] / [/INST]
    # and does not trim the answer.
    Template("mistral", format_user="[INST] {content}[/INST]", format_assistant=" {content}{eos}",
             format_system="{content}\n\n", system_in_user=True, system_last=True, add_bos=True,
             trim=("assistant",), description="Mistral 7B v0.3 / Mixtral instruct: the system prompt goes into "
                                              "the last user message"),
    Template("mistral_nemo", format_user="[INST]{content}[/INST]", format_assistant="{content}{eos}",
             format_system="{content}\n\n", system_in_user=True, system_last=True, add_bos=True,
             description="Mistral Nemo instruct: [INST] without spaces, the system prompt in the last user message"),
    Template("gemma", **_GEMMA,
             description="Gemma / Gemma 2 (their own template refuses a system prompt; it is folded into the first "
                         "user message the Gemma 3 way)"),
    # No reference jinja for Gemma 3 here: Gemma 2's format with the system prompt folded into the first user turn.
    Template("gemma3", **_GEMMA, description="Gemma 3: the system prompt opens the first user message"),
    Template("phi", format_user="<|user|>\n{content}<|end|>\n<|assistant|>\n", format_assistant="{content}<|end|>",
             format_system="<|system|>\n{content}<|end|>\n", separator="\n", stop_words=("<|end|>",),
             add_bos=False, description="Phi-3 / Phi-3.5 instruct"),
    Template("deepseek3", **_DEEPSEEK, description="DeepSeek-V3: <｜User｜> / <｜Assistant｜>, system text first"),
    Template("deepseekr1", **_DEEPSEEK, thought=_THINK, thought_in_prompt=True,
             description="DeepSeek-R1 and its distills: the prompt ends with <think>, earlier answers lose theirs"),
    Template("glm4", format_user="<|user|>\n{content}<|assistant|>", format_assistant="{content}<|user|>",
             format_system="<|system|>\n{content}", prefix="[gMASK]<sop>", stop_words=("<|user|>", "<|observation|>"),
             add_bos=False, trim=("assistant",), thought=("\n<think>", "</think>\n"), history_thought=True,
             stop_opens_turn=True, description="GLM-4.5 / 4.6 ([gMASK]<sop>, an empty <think></think> before "
                                               "earlier answers)"),
    # No reference jinja for Yi here: the model card's ChatML format.
    Template("yi", **_CHATML, description="Yi / Yi-1.5 chat (ChatML)"),
]}
KNOWN = sorted([*TEMPLATES, "auto"])


def template_names() -> list[str]:
    return list(KNOWN)


def get_template(name: str | None, tokenizer, default_system: str | None = None,
                 enable_thinking: bool | None = None) -> Template:
    """The template `name` bound to `tokenizer` (its bos/eos). None -> `auto` when the tokenizer has a
    chat template, else `default`. `default_system` replaces the template's default system prompt;
    enable_thinking=False turns a reasoning template's thinking off (LLaMA-Factory's switch: qwen3 becomes
    qwen3_nothink)."""
    if name is None or str(name).strip() == "":
        name = "auto" if getattr(tokenizer, "chat_template", None) else "default"
    name = str(name).strip().lower()
    if name == "auto":
        if not getattr(tokenizer, "chat_template", None):
            raise UserError("template auto: this tokenizer has no chat_template; choose one of "
                            f"{', '.join(t for t in KNOWN if t != 'auto')}.")
        return AutoTemplate(tokenizer, default_system or "")
    if name not in TEMPLATES:
        close = difflib.get_close_matches(name, KNOWN, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"template: unknown template {name!r}; known templates: {', '.join(KNOWN)}.{hint}")
    t = TEMPLATES[name]
    changes: dict[str, Any] = {"bos_token": tokenizer.bos_token, "eos_token": tokenizer.eos_token}
    if t.add_bos is None:
        changes["add_bos"] = _tokenizer_adds_bos(tokenizer)
    if default_system:
        changes["default_system"] = default_system
    if enable_thinking is False and t.thought and t.thinking:
        if t.history_thought:  # GLM's switch also rewrites every user message ("/nothink"): not modelled here
            log.warning("template %s: enable_thinking=false is not supported; thinking stays on.", t.name)
        else:
            changes["thinking"] = False
    return dataclasses.replace(t, **changes)


def template_name(args) -> str | None:
    """The template a run of `args` uses, by name: args.template; else the one the last adapter was trained with;
    else the registry's (or the model folder's) default for the model; else None (get_template then picks `auto`
    when the tokenizer has its own chat template, `default` when not)."""
    name = args.template or adapter_template(args) or default_template(args.model_name_or_path)
    if name:
        return str(name)
    try:  # a hub id's downloaded folder: guessed from its config.json / tokenizer
        return default_template(model_path(args))
    except UserError:
        return None


def resolve_template(args, tokenizer) -> Template:
    """THE way to get a run's template: named by template_name(args), bound to `tokenizer` with args.default_system,
    and the tokenizer made ready for it (pad token, eos, right padding; a warning when a stop word is not one
    token). Training, the estimate, the inspector, the UI preview, chat / eval / api and export all call this."""
    template = get_template(template_name(args), tokenizer, default_system=args.default_system,
                            enable_thinking=args.enable_thinking)
    template.fix_tokenizer(tokenizer)
    return template

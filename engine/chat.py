"""The one chat engine: `tuneboard chat`, the web Chat tab, webchat, the API and evaluation all use it.

One generation runs at a time (a lock), so servers can queue concurrent requests. `stream` runs
`model.generate` in a worker thread and hands token ids back through a bounded queue; when the
consumer stops iterating (a closed HTTP connection closes the generator) a flag checked by a
stopping criterion ends generation after the current step.
"""
from __future__ import annotations

import gc
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from .utils import UserError, get_logger

log = get_logger()

GEN_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty")
EXTRA_GEN_KEYS = ("seed", "stop")
ROLES = ("system", "user", "assistant", "function", "observation")  # function / observation: tool calls and results
_ROLE_ALIASES = {"tool": "observation"}  # OpenAI's name for a tool result
_END = object()
_QUEUE_SIZE = 64  # tokens the generate thread may run ahead of a slow consumer


@dataclass
class Response:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "tool_calls"
    ttft_s: float
    tokens_per_s: float
    tool_calls: list = field(default_factory=list)  # [{"name", "arguments": dict}] when tools were offered


def _as_dict(args: Any) -> dict:
    from .args import values_of
    return values_of(args)


class _QueueStreamer:
    """generate() streamer: skips the prompt, counts tokens, times the first one, queues ids for stream()."""

    def __init__(self, stop: threading.Event, to_queue: bool):
        self.stop = stop
        self.q: queue.Queue | None = queue.Queue(maxsize=_QUEUE_SIZE) if to_queue else None
        self.prompt_seen = False
        self.count = 0
        self.t_first: float | None = None

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        if self.t_first is None:
            self.t_first = time.perf_counter()
        self.count += 1
        if self.q is not None:
            self._put(value.reshape(-1)[0].item())

    def end(self):
        if self.q is not None:
            self._put(_END)

    def _put(self, item):
        while not self.stop.is_set():  # block while the consumer is behind, give up once it has left
            try:
                self.q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue


def _stopping_criteria(stop_event: threading.Event, stop_strings: list[str], tokenizer, prompt_len: int):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    window = max((len(s) for s in stop_strings), default=0) + 4  # tokens are >= 1 char each

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            n = input_ids.shape[0]
            if stop_event.is_set():
                return torch.ones(n, dtype=torch.bool, device=input_ids.device)
            done = torch.zeros(n, dtype=torch.bool, device=input_ids.device)
            if stop_strings:
                tails = input_ids[:, max(prompt_len, input_ids.shape[1] - window):].tolist()
                for i, tail in enumerate(tails):
                    text = tokenizer.decode(tail, skip_special_tokens=True)
                    done[i] = any(s in text for s in stop_strings)
            return done

    return StoppingCriteriaList([_Stop()])


def _holdback(text: str, stop_strings: list[str]) -> int:
    """How many trailing characters might be the start of a stop string (kept back from the stream)."""
    best = 0
    for s in stop_strings:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


def _cut_at_stop(text: str, stop_strings: list[str]) -> tuple[str, bool]:
    idx = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return (text[:min(idx)], True) if idx else (text, False)


def _friendly(e: BaseException) -> BaseException:
    """Out-of-memory during generation is something the user can act on; other errors pass through."""
    if type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower():
        return UserError("out of memory while generating; lower max_new_tokens or the batch size, shorten the "
                         "conversation, or use a smaller model.")
    return e


class ChatEngine:
    """A loaded model + template that answers conversations: stream / chat / batch."""

    def __init__(self, args: Any):
        from .data.templates import resolve_template
        from .models.loader import load_model, load_tokenizer, model_path

        self.args = _as_dict(args)
        self.model_path = model_path(self.args)
        self.tokenizer = load_tokenizer(self.args)
        self.template = resolve_template(self.args, self.tokenizer)  # the one training used for the same args
        self.template_name = self.template.name
        self.model = load_model(self.args, trainable=False)  # after the cheap checks above
        self._stop_ids = self._find_stop_ids()
        # stop words that are not one token of this vocabulary still end generation, as text
        self._stop_strings = [w for w in self.template.stop_words
                              if w and len(self.tokenizer.encode(w, add_special_tokens=False)) > 1]
        self._lock = threading.Lock()
        self._stats = {"finish_reason": None, "ttft_s": 0.0, "tokens_per_s": 0.0, "prompt_tokens": 0,
                       "completion_tokens": 0}

    # ---- prompt (engine.data.templates decides the format; this class only generates)
    def _find_stop_ids(self) -> list[int]:
        ids = list(self.template.stop_token_ids(self.tokenizer))
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return list(dict.fromkeys(int(i) for i in ids))

    def _check_messages(self, messages, system):
        if not isinstance(messages, (list, tuple)) or not messages:
            raise UserError("messages: give a non-empty list of {\"role\", \"content\"} turns.")
        out = []
        for i, m in enumerate(messages):
            if isinstance(m, dict) and m.get("role") == "assistant" and m.get("tool_calls"):
                from .data.tools import calls_json, parse_calls
                m = {"role": "function", "content": calls_json(parse_calls(m["tool_calls"], f"messages[{i}].tool_calls"))}
            if isinstance(m, dict) and m.get("role") in _ROLE_ALIASES:
                m = {**m, "role": _ROLE_ALIASES[m["role"]]}
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise UserError(f"messages[{i}]: each turn needs a role and a content.")
            if m["role"] not in ROLES:
                raise UserError(f"messages[{i}].role: {m['role']!r} is not one of {', '.join(ROLES)}.")
            content = m["content"]
            if isinstance(content, list):  # OpenAI-style content parts: keep the text ones
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str):
                raise UserError(f"messages[{i}].content: expected text.")
            out.append({"role": m["role"], "content": content})
        if out[0]["role"] == "system":
            system = out[0]["content"] if system is None else system
            out = out[1:]
        if any(m["role"] == "system" for m in out):
            raise UserError("messages: a system message may only come first.")
        if not out or out[-1]["role"] not in ("user", "observation"):
            raise UserError("messages: the last turn must be the user's (or a tool result).")
        return out, system

    def encode(self, messages, system=None, tools=None) -> list[int]:
        """Token ids of the prompt: the conversation (+ the tool list) + the assistant header to generate after."""
        from .data.tools import parse_tools
        msgs, system = self._check_messages(messages, system)
        return list(self.template.encode_prompt(self.tokenizer, msgs, system, tools=parse_tools(tools) or None))

    # ---- generation settings
    def _settings(self, gen: dict, prompt_len: int):
        """(GenerationConfig, stop strings, seed) from the engine's args overridden by this request."""
        from transformers import GenerationConfig

        from .args import BY_NAME
        from .config import check_value, coerce
        if self.model is None:
            raise UserError("the model was unloaded; load it again to chat.")
        unknown = set(gen) - set(GEN_KEYS) - set(EXTRA_GEN_KEYS)
        if unknown:
            raise UserError(f"{sorted(unknown)[0]}: not a generation setting "
                            f"(use {', '.join(GEN_KEYS + EXTRA_GEN_KEYS)}).")
        p = {k: self.args.get(k, BY_NAME[k].default) for k in GEN_KEYS}
        for k in GEN_KEYS:
            if gen.get(k) is not None:
                v = coerce(BY_NAME[k], gen[k], "request")
                check_value(BY_NAME[k], v)
                p[k] = v
        stop = gen.get("stop")
        stop = [stop] if isinstance(stop, str) else [s for s in (stop or []) if isinstance(s, str) and s]
        stop = list(dict.fromkeys(stop + self._stop_strings))
        seed = gen.get("seed")
        ctx = getattr(self.model.config, "max_position_embeddings", None)
        max_new = int(p["max_new_tokens"])
        if ctx:
            if prompt_len >= ctx:
                raise UserError(f"the conversation is {prompt_len} tokens, longer than the model's context of "
                                f"{ctx}; clear the history or shorten the message.")
            max_new = min(max_new, ctx - prompt_len)
        greedy = not p["do_sample"] or float(p["temperature"]) <= 0.0
        kw = dict(max_new_tokens=max_new, do_sample=not greedy, eos_token_id=self._stop_ids,
                  pad_token_id=self.tokenizer.pad_token_id, repetition_penalty=float(p["repetition_penalty"]))
        if not greedy:
            kw.update(temperature=float(p["temperature"]), top_p=float(p["top_p"]) or 1.0,
                      top_k=int(p["top_k"]) or None)
        else:  # silence "sampling flags set but do_sample=False" warnings
            kw.update(temperature=None, top_p=None, top_k=None)
        return GenerationConfig(**kw), stop, seed

    def _cut(self, ids: list[int]) -> tuple[list[int], bool]:
        """Generated ids up to (not including) the first stop token; True when one was found."""
        for i, t in enumerate(ids):
            if t in self._stop_ids:
                return ids[:i], True
        return ids, False

    # ---- public API
    def stream(self, messages, system=None, tools=None, **gen) -> Iterator[str]:
        """Text deltas of the answer (tool calls come as their <tool_call> text: engine.data.tools.parse_tool_calls
        reads them). Bad input raises here, before the first delta."""
        prompt = self.encode(messages, system, tools)
        cfg, stop, seed = self._settings(gen, len(prompt))
        return self._stream(prompt, cfg, stop, seed)

    def _stream(self, prompt, cfg, stop_strings, seed) -> Iterator[str]:
        import torch
        with self._lock:
            stop_event = threading.Event()
            streamer = _QueueStreamer(stop_event, to_queue=True)
            criteria = _stopping_criteria(stop_event, stop_strings, self.tokenizer, len(prompt))
            errors: list[BaseException] = []
            input_ids = torch.tensor([prompt], device=self.model.device)

            def work():
                try:
                    if seed is not None:
                        torch.manual_seed(int(seed))
                    with torch.inference_mode():
                        self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                            generation_config=cfg, streamer=streamer, stopping_criteria=criteria)
                except BaseException as e:  # handed to the consumer thread
                    errors.append(e)
                finally:
                    streamer.end()

            t0 = time.perf_counter()
            worker = threading.Thread(target=work, name="tuneboard-generate", daemon=True)
            worker.start()
            ids: list[int] = []
            text, sent = "", 0
            prefix_off = read_off = 0
            finish, string_hit = "length", False
            try:
                while True:
                    try:
                        tok = streamer.q.get(timeout=0.1)
                    except queue.Empty:
                        if not worker.is_alive() and streamer.q.empty():
                            break
                        continue
                    if tok is _END:
                        break
                    if tok in self._stop_ids:
                        finish = "stop"
                        break
                    ids.append(tok)
                    # incremental detokenisation over a small window (a character may span tokens)
                    before = self.tokenizer.decode(ids[prefix_off:read_off], skip_special_tokens=True)
                    after = self.tokenizer.decode(ids[prefix_off:], skip_special_tokens=True)
                    if len(after) <= len(before) or after.endswith("\ufffd"):
                        continue
                    text += after[len(before):]
                    prefix_off, read_off = read_off, len(ids)
                    safe = len(text)
                    if stop_strings:
                        text, string_hit = _cut_at_stop(text, stop_strings)
                        safe = len(text) if string_hit else len(text) - _holdback(text, stop_strings)
                    if safe > sent:
                        yield text[sent:safe]
                        sent = safe
                    if string_hit:
                        finish = "stop"
                        break
                if errors:
                    raise _friendly(errors[0])
                if not string_hit:
                    # the full decode is authoritative: flush what the window or the hold-back kept
                    final = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if stop_strings:
                        final, string_hit = _cut_at_stop(final, stop_strings)
                        finish = "stop" if string_hit else finish
                    if len(final) > sent:
                        yield final[sent:]
            finally:
                stop_event.set()
                worker.join()
                self._record(len(prompt), streamer, time.perf_counter() - t0, t0, finish)

    def _record(self, prompt_tokens: int, streamer: _QueueStreamer, elapsed: float, t0: float,
                finish: str) -> None:
        n = streamer.count
        self._stats = {
            "finish_reason": finish,
            "ttft_s": round((streamer.t_first - t0) if streamer.t_first else elapsed, 4),
            "tokens_per_s": round(n / elapsed, 2) if elapsed > 0 and n else 0.0,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n,
        }

    def chat(self, messages, system=None, tools=None, **gen) -> Response:
        """The whole answer at once (generate without a thread; same settings as stream). With `tools` (a list of
        function specs) the calls the model made are parsed into Response.tool_calls and cut from its text."""
        return self.batch([messages], system, tools=tools, **gen)[0]

    def batch(self, conversations: list[list[dict]], system=None, tools=None, **gen) -> list[Response]:
        """Answers to several conversations in one left-padded generate call."""
        import torch

        from .data.tools import parse_tool_calls, parse_tools
        if not conversations:
            return []
        tools = parse_tools(tools) or None
        prompts = [self.encode(c, system, tools) for c in conversations]
        longest = max(len(p) for p in prompts)
        cfg, stop_strings, seed = self._settings(gen, longest)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._stop_ids[0]
        ids = torch.full((len(prompts), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), longest), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, longest - len(p):] = torch.tensor(p)
            mask[i, longest - len(p):] = 1
        with self._lock:
            stop_event = threading.Event()
            streamer = _QueueStreamer(stop_event, to_queue=False)
            criteria = _stopping_criteria(stop_event, stop_strings, self.tokenizer, longest)
            if seed is not None:
                torch.manual_seed(int(seed))
            t0 = time.perf_counter()
            try:
                with torch.inference_mode():
                    out = self.model.generate(input_ids=ids.to(self.model.device),
                                              attention_mask=mask.to(self.model.device), generation_config=cfg,
                                              streamer=streamer, stopping_criteria=criteria)
            except Exception as e:
                raise _friendly(e) from None
            elapsed = time.perf_counter() - t0
        ttft = (streamer.t_first - t0) if streamer.t_first else elapsed
        results, total = [], 0
        for i, p in enumerate(prompts):
            gen_ids = out[i, longest:].tolist()
            kept, token_stop = self._cut(gen_ids)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            string_stop = False
            if stop_strings:
                text, string_stop = _cut_at_stop(text, stop_strings)
                while string_stop and not token_stop and kept and kept[-1] == pad:  # rows finished early are padded
                    kept.pop()
            stopped = token_stop or string_stop
            n = len(kept) + (1 if token_stop else 0)
            total += n
            calls: list = []
            if tools:
                text, calls = parse_tool_calls(text)
            results.append(Response(text=text, prompt_tokens=len(p), completion_tokens=n,
                                    finish_reason="tool_calls" if calls else "stop" if stopped else "length",
                                    ttft_s=round(ttft, 4), tokens_per_s=round(n / elapsed, 2) if elapsed > 0 else 0.0,
                                    tool_calls=calls))
        self._stats = {"finish_reason": results[-1].finish_reason, "ttft_s": round(ttft, 4), "tokens_per_s": round(total / elapsed, 2) if elapsed > 0 else 0.0,
                       "prompt_tokens": sum(len(p) for p in prompts), "completion_tokens": total}
        return results

    @property
    def last_stats(self) -> dict:
        return dict(self._stats)

    def unload(self) -> None:
        """Free the model's memory (the engine is unusable afterwards)."""
        with self._lock:
            self.model = None
            gc.collect()
            try:
                import torch
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass


def run_cli(opts) -> int:
    """`tuneboard chat [recipe.yaml] [key=value ...]`: a terminal chat, streamed (opts: parsed by engine.cli)."""
    from .config import load_config
    args = load_config(opts.recipe, opts.overrides, command="infer")
    engine = ChatEngine(args)
    print(f"Chatting with {engine.model_path}"
          + (f" + {', '.join(args.adapter_name_or_path)}" if args.adapter_name_or_path else "")
          + f" (template {engine.template_name or 'tokenizer default'}). "
            "Type `clear` to forget the history, `exit` to quit.", flush=True)
    history: list[dict] = []
    while True:
        try:
            query = input("\nUser: ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        q = query.strip()
        if not q:
            continue
        if q.lower() in ("exit", "quit"):
            return 0
        if q.lower() == "clear":
            history = []
            print("History cleared.")
            continue
        history.append({"role": "user", "content": query})
        try:
            stream = engine.stream(history)
        except UserError as e:
            history.pop()
            print(f"error: {e}", file=sys.stderr)
            continue
        print("Assistant: ", end="", flush=True)
        answer = ""
        try:
            for delta in stream:
                print(delta, end="", flush=True)
                answer += delta
        except KeyboardInterrupt:
            print(" [stopped]", end="")
        finally:
            stream.close()
        s = engine.last_stats
        print(f"\n[{s['completion_tokens']} tokens, {s['tokens_per_s']:.1f} tokens/s, "
              f"first token {s['ttft_s']:.2f} s]", file=sys.stderr, flush=True)
        history.append({"role": "assistant", "content": answer})

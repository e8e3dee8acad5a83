"""The one chat engine: `tuneboard chat`, the web Chat tab, webchat, the API and evaluation all use it.

Answers are decoded by engine.batching.Decoder: `stream` and `chat` run one row, `batch` runs many together
(left-padded, each row leaving as it ends), and the API keeps one decoder whose rows come and go with requests.
Generation is serialised by a lock (a stream holds it while it is being read; the API takes it per step).
Closing a stream's generator stops it at once: nothing runs ahead of the reader. A model whose cache rows cannot
be merged (sliding-window attention: Gemma 2/3) is decoded by transformers' generate instead, one request at a time.
"""
from __future__ import annotations

import copy
import gc
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from .args import BY_NAME, Namespace
from .batching import Decoder, Row, TextStream, cut_at_stop
from .config import check_value, coerce, load_config
from .data.templates import resolve_template
from .data.tools import calls_json, parse_calls, parse_tool_calls, parse_tools
from .errors import UserError
from .models.loader import load_model, load_tokenizer, model_path
from .utils import get_logger

log = get_logger()

GEN_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "repetition_penalty")
EXTRA_GEN_KEYS = ("seed", "stop")
ROLES = ("system", "user", "assistant", "function", "observation")  # function / observation: tool calls and results
_ROLE_ALIASES = {"tool": "observation"}  # OpenAI's name for a tool result
_END = object()
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # what a torch generator takes as a signed 64-bit seed
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


@dataclass
class Prompt:
    """A checked request: the prompt's token ids and its generation settings."""
    ids: list[int]
    config: Any  # transformers.GenerationConfig
    stop: list[str]
    seed: int | None


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


def friendly_error(e: BaseException) -> BaseException:
    """Out-of-memory during generation is something the user can act on; other errors pass through."""
    if type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower():
        return UserError("out of memory while generating; lower max_new_tokens or the batch size, shorten the "
                         "conversation, or use a smaller model.")
    return e


class ChatEngine:
    """A loaded model + template that answers conversations: stream / chat / batch."""

    def __init__(self, args: Namespace):
        self.args = args
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
        self._batches: bool | None = None  # whether engine.batching can decode this model (known once loaded)
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
        msgs, system = self._check_messages(messages, system)
        return list(self.template.encode_prompt(self.tokenizer, msgs, system, tools=parse_tools(tools) or None))

    # ---- generation settings
    def _settings(self, gen: dict, prompt_len: int):
        """(GenerationConfig, stop strings, seed) from the engine's args overridden by this request."""
        from transformers import GenerationConfig

        if self.model is None:
            raise UserError("the model was unloaded; load it again to chat.")
        unknown = set(gen) - set(GEN_KEYS) - set(EXTRA_GEN_KEYS)
        if unknown:
            raise UserError(f"{sorted(unknown)[0]}: not a generation setting "
                            f"(use {', '.join(GEN_KEYS + EXTRA_GEN_KEYS)}).")
        p = {k: getattr(self.args, k) for k in GEN_KEYS}
        for k in GEN_KEYS:
            if gen.get(k) is not None:
                v = coerce(BY_NAME[k], gen[k], "request")
                check_value(BY_NAME[k], v)
                p[k] = v
        stop = gen.get("stop")
        stop = [stop] if isinstance(stop, str) else [s for s in (stop or []) if isinstance(s, str) and s]
        stop = list(dict.fromkeys(stop + self._stop_strings))
        seed = gen.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or not SEED_MIN <= seed <= SEED_MAX):
            raise UserError(f"seed: {seed!r} is not an integer from {SEED_MIN} to {SEED_MAX}.")
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
                      top_k=int(p["top_k"]))  # 0 = no top-k (None would be transformers' default of 50)
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
    def prepare(self, messages, system=None, tools=None, **gen) -> Prompt:
        """The prompt's token ids and its settings, checked (bad input raises UserError here). Safe to call off
        the generation thread: the API counts tokens in a thread of its own."""
        ids = self.encode(messages, system, tools)
        cfg, stop, seed = self._settings(gen, len(ids))
        return Prompt(ids, cfg, stop, seed)

    @property
    def lock(self) -> threading.Lock:
        """Held while the model generates (a whole stream, or one step of the API's batch)."""
        return self._lock

    @property
    def batches(self) -> bool:
        """Whether answers can be decoded together (engine.batching.Decoder); else one at a time."""
        if self._batches is None and self.model is not None:
            self._batches = Decoder.supports(self.model)
        return bool(self._batches)

    def decoder(self) -> Decoder:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._stop_ids[0]
        return Decoder(self.model, pad)

    def row(self, prompt: Prompt) -> Row:
        return Row(prompt.ids, prompt.config, prompt.stop, prompt.seed, self.tokenizer, self._stop_ids,
                   self.model.device)

    def stream(self, messages, system=None, tools=None, **gen) -> Iterator[str]:
        """Text deltas of the answer (tool calls come as their <tool_call> text: engine.data.tools.parse_tool_calls
        reads them). Bad input raises here, before the first delta."""
        return self.stream_prompt(self.prepare(messages, system, tools, **gen))

    def stream_prompt(self, prompt: Prompt) -> Iterator[str]:
        if not self.batches:
            return self._hf_stream(prompt.ids, prompt.config, prompt.stop, prompt.seed)
        return self._stream(prompt)

    def _stream(self, prompt: Prompt) -> Iterator[str]:
        with self._lock:
            if self.model is None:
                raise UserError("the model was unloaded; load it again to chat.")
            row, dec = self.row(prompt), self.decoder()
            try:
                dec.add([row])
                while True:
                    delta = row.take()
                    if delta:
                        yield delta
                    if row.finish is not None:
                        break
                    dec.step()
            except Exception as e:
                raise friendly_error(e) from None
            finally:
                row.end("cancelled")  # no-op when it ended by itself
                self._stats = row.stats()

    def chat(self, messages, system=None, tools=None, **gen) -> Response:
        """The whole answer at once (same settings as stream). With `tools` (a list of function specs) the calls the
        model made are parsed into Response.tool_calls and cut from its text."""
        return self.batch([messages], system, tools=tools, **gen)[0]

    def batch(self, conversations: list[list[dict]], system=None, tools=None, **gen) -> list[Response]:
        """Answers to several conversations, decoded together (each is tokenised once)."""
        if not conversations:
            return []
        tools = parse_tools(tools) or None
        prompts = [self.prepare(c, system, tools, **gen) for c in conversations]
        if not self.batches:
            outs = self._hf_batch(prompts)
        else:
            with self._lock:
                if self.model is None:
                    raise UserError("the model was unloaded; load it again to chat.")
                rows = [self.row(p) for p in prompts]
                t0 = time.perf_counter()
                try:
                    self.decoder().run(rows)
                except Exception as e:
                    raise friendly_error(e) from None
                elapsed = time.perf_counter() - t0
            outs = [(r.text.text, r.stats()) for r in rows]
            total = sum(r.count for r in rows)
            self._stats = {**rows[-1].stats(), "prompt_tokens": sum(len(p.ids) for p in prompts),
                           "completion_tokens": total,
                           "tokens_per_s": round(total / elapsed, 2) if elapsed > 0 else 0.0}
        results = []
        for text, st in outs:
            calls: list = []
            if tools:
                text, calls = parse_tool_calls(text)
            results.append(Response(text=text, prompt_tokens=st["prompt_tokens"],
                                    completion_tokens=st["completion_tokens"],
                                    finish_reason="tool_calls" if calls else st["finish_reason"],
                                    ttft_s=st["ttft_s"], tokens_per_s=st["tokens_per_s"], tool_calls=calls))
        return results

    # ---- transformers' generate, for models the Decoder cannot batch
    def _hf_stream(self, prompt, cfg, stop_strings, seed) -> Iterator[str]:
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
            text = TextStream(self.tokenizer, stop_strings)
            finish = "length"
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
                    delta = text.push(tok)
                    if delta:
                        yield delta
                    if text.hit:
                        finish = "stop"
                        break
                if errors:
                    raise friendly_error(errors[0])
                rest = text.finish()
                finish = "stop" if text.hit else finish
                if rest:
                    yield rest
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

    def _hf_batch(self, prompts: list[Prompt]) -> list[tuple[str, dict]]:
        """(text, stats) per prompt from one left-padded generate call (the first prompt's settings for all)."""
        import torch
        longest = max(len(p.ids) for p in prompts)
        cfg, stop_strings, seed = prompts[0].config, prompts[0].stop, prompts[0].seed
        cfg = copy.deepcopy(cfg)
        cfg.max_new_tokens = min(p.config.max_new_tokens for p in prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._stop_ids[0]
        ids = torch.full((len(prompts), longest), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), longest), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, longest - len(p.ids):] = torch.tensor(p.ids)
            mask[i, longest - len(p.ids):] = 1
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
                raise friendly_error(e) from None
            elapsed = time.perf_counter() - t0
        ttft = (streamer.t_first - t0) if streamer.t_first else elapsed
        results, total = [], 0
        for i, p in enumerate(prompts):
            gen_ids = out[i, longest:].tolist()
            kept, token_stop = self._cut(gen_ids)
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            string_stop = False
            if stop_strings:
                text, string_stop = cut_at_stop(text, stop_strings)
                while string_stop and not token_stop and kept and kept[-1] == pad:  # rows finished early are padded
                    kept.pop()
            n = len(kept) + (1 if token_stop else 0)
            total += n
            results.append((text, {"prompt_tokens": len(p.ids), "completion_tokens": n,
                                   "finish_reason": "stop" if token_stop or string_stop else "length",
                                   "ttft_s": round(ttft, 4),
                                   "tokens_per_s": round(n / elapsed, 2) if elapsed > 0 else 0.0}))
        self._stats = {"finish_reason": results[-1][1]["finish_reason"], "ttft_s": round(ttft, 4),
                       "tokens_per_s": round(total / elapsed, 2) if elapsed > 0 else 0.0,
                       "prompt_tokens": sum(len(p.ids) for p in prompts), "completion_tokens": total}
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

"""Continuous batching: every answer being written advances by one token per model step, all of them together.

A `Decoder` holds the running rows (one per answer) and their shared KV cache. `add` prefills new prompts
(left-padded, in groups of similar length) and merges them into the cache; `step` feeds every row its last token
and picks the next. A row leaves as soon as it ends (a stop token or string, its max_new_tokens, or its consumer
left) and its cache goes with it, so a short answer never waits for a long one and a request that arrives
mid-answer joins at the next step instead of waiting for the batch to drain.

Left padding, the attention mask and per-row position ids make each row compute what it would compute alone, so
a greedy answer is the same batched or not (up to the float rounding of different matrix shapes), and a seeded
row samples from its own torch.Generator: its answer does not depend on its neighbours either.

Rows are merged by padding every layer's key/value tensors on the left, which needs a plain full-attention cache
on every layer; `Decoder.supports(model)` says whether a model has one (sliding-window models such as Gemma 2/3
do not, and ChatEngine keeps transformers' generate for them).
"""
from __future__ import annotations

import inspect
import time
from typing import Any

PREFILL_TOKENS = 4096   # prompt tokens (padding included) prefilled in one forward pass
PREFILL_PADDING = 1.5   # a prefill group's padded size stays under this many times its real tokens


def cut_at_stop(text: str, stop_strings: list[str]) -> tuple[str, bool]:
    idx = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return (text[:min(idx)], True) if idx else (text, False)


def holdback(text: str, stop_strings: list[str]) -> int:
    """How many trailing characters might be the start of a stop string (kept back from the stream)."""
    best = 0
    for s in stop_strings:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class TextStream:
    """Token ids -> text deltas: incremental detokenisation over a small window (a character may span tokens),
    cut at the first stop string, holding back a tail that may begin one. `finish` flushes what is left from a
    full decode, which is authoritative."""

    def __init__(self, tokenizer, stop_strings: list[str]):
        self.tokenizer, self.stop = tokenizer, stop_strings
        self.ids: list[int] = []
        self.text, self.sent, self.hit = "", 0, False
        self._prefix = self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self.text += after[len(before):]
        self._prefix, self._read = self._read, len(self.ids)
        safe = len(self.text)
        if self.stop:
            self.text, self.hit = cut_at_stop(self.text, self.stop)
            safe = len(self.text) if self.hit else len(self.text) - holdback(self.text, self.stop)
        if safe <= self.sent:
            return ""
        out, self.sent = self.text[self.sent:safe], safe
        return out

    def finish(self) -> str:
        if self.hit:
            return ""
        final = self._decode(self.ids)
        if self.stop:
            final, self.hit = cut_at_stop(final, self.stop)
        self.text = final
        out = final[self.sent:]
        self.sent = max(self.sent, len(final))
        return out


def _processors(cfg) -> list:
    """transformers' logits processors for one row's settings, in generate's order (penalty, then warpers)."""
    from transformers import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)
    out: list = []
    if cfg.repetition_penalty is not None and float(cfg.repetition_penalty) != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(float(cfg.repetition_penalty)))
    if cfg.do_sample:
        if cfg.temperature is not None and float(cfg.temperature) != 1.0:
            out.append(TemperatureLogitsWarper(float(cfg.temperature)))
        if cfg.top_k:
            out.append(TopKLogitsWarper(int(cfg.top_k)))
        if cfg.top_p is not None and float(cfg.top_p) < 1.0:
            out.append(TopPLogitsWarper(float(cfg.top_p)))
    return out


class Row:
    """One answer: its prompt, settings, the tokens picked so far and the text not yet taken by its consumer.
    finish: None while running, then "stop" | "length" | "cancelled"."""

    def __init__(self, prompt: list[int], cfg, stop_strings: list[str], seed: int | None, tokenizer,
                 stop_ids: list[int], device):
        import torch
        self.prompt = list(prompt)
        self.max_new = int(cfg.max_new_tokens)
        self.greedy = not cfg.do_sample
        self.processors = _processors(cfg)
        self.stop_ids = set(stop_ids)
        self.generator = None
        if seed is not None and not self.greedy:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(int(seed))
        self.text = TextStream(tokenizer, stop_strings)
        self.pos = len(self.prompt)  # position id of the next token fed to the model
        self.last: int | None = None  # picked, not yet fed
        self.count = 0  # tokens picked, a final stop token included
        self.finish: str | None = None
        self.pending: list[str] = []
        self.t0 = time.perf_counter()
        self.t_first: float | None = None
        self.t_end: float | None = None

    def choose(self, scores) -> int:
        """The next token from this row's (1, vocab) float scores."""
        import torch
        if self.processors:
            seq = torch.tensor([self.prompt + self.text.ids], device=scores.device)
            for p in self.processors:
                scores = p(seq, scores)
        if self.greedy:
            return int(scores.argmax(-1))
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def accept(self, token: int) -> None:
        if self.t_first is None:
            self.t_first = time.perf_counter()
        self.count += 1
        if token in self.stop_ids:
            self.end("stop")
            return
        self.last = token
        delta = self.text.push(token)
        if delta:
            self.pending.append(delta)
        if self.text.hit:
            self.end("stop")
        elif self.count >= self.max_new:
            self.end("length")

    def end(self, finish: str) -> None:
        """Ends the row: flushes the text held back (unless it was cancelled) and records why it ended."""
        if self.finish is not None:
            return
        if finish != "cancelled":
            rest = self.text.finish()
            if rest:
                self.pending.append(rest)
            if self.text.hit:
                finish = "stop"
        self.finish = finish
        self.t_end = time.perf_counter()

    def take(self) -> str:
        out = "".join(self.pending)
        self.pending.clear()
        return out

    def stats(self) -> dict:
        end = self.t_end or time.perf_counter()
        elapsed = end - self.t0
        return {"finish_reason": self.finish, "prompt_tokens": len(self.prompt), "completion_tokens": self.count,
                "ttft_s": round((self.t_first or end) - self.t0, 4),
                "tokens_per_s": round(self.count / elapsed, 2) if elapsed > 0 and self.count else 0.0}


class Decoder:
    """The running rows of one model and their KV cache (see the module doc). Not thread-safe: its owner
    serialises calls (ChatEngine's lock)."""

    def __init__(self, model, pad_id: int, prefill_tokens: int = PREFILL_TOKENS):
        self.model, self.pad_id, self.prefill_tokens = model, int(pad_id), prefill_tokens
        self.device = model.device
        self.rows: list[Row] = []
        self.cache = None
        self.mask = None  # (rows, cached positions): 1 where a row has a real token
        params = inspect.signature(model.forward).parameters
        self._keep = "logits_to_keep" in params

    @staticmethod
    def supports(model) -> bool:
        """A decoder-only model whose every layer caches plain keys and values (rows can be merged)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer
        if getattr(model.config, "is_encoder_decoder", False):
            return False
        if "cache" not in inspect.signature(model.forward).parameters:
            return False
        try:
            cache = DynamicCache(config=model.config)
        except Exception:  # an architecture DynamicCache does not know
            return False
        return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)

    def __len__(self) -> int:
        return len(self.rows)

    # ---- model calls
    def _forward(self, ids, mask, pos, cache):
        import torch
        kw = {"logits_to_keep": 1} if self._keep else {}
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True, **kw)
        return out.logits[:, -1, :].float()

    def _pick(self, rows: list[Row], logits) -> None:
        plain = logits.argmax(-1).tolist()  # plain greedy rows need nothing more
        for i, r in enumerate(rows):
            r.accept(r.choose(logits[i:i + 1]) if (r.processors or not r.greedy) else plain[i])

    # ---- rows in and out
    def add(self, rows: list[Row]) -> None:
        """Prefill `rows` (grouped by length), pick their first tokens and merge them into the batch."""
        import torch
        from transformers import DynamicCache
        for group in self._groups(sorted(rows, key=lambda r: len(r.prompt))):
            n = max(len(r.prompt) for r in group)
            ids = torch.full((len(group), n), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(group), n), dtype=torch.long)
            pos = torch.ones((len(group), n), dtype=torch.long)  # padding's positions are never attended
            for i, r in enumerate(group):
                k = len(r.prompt)
                ids[i, n - k:] = torch.tensor(r.prompt)
                mask[i, n - k:] = 1
                pos[i, n - k:] = torch.arange(k)
            cache = DynamicCache(config=self.model.config)
            mask = mask.to(self.device)
            logits = self._forward(ids.to(self.device), mask, pos.to(self.device), cache)
            self._pick(group, logits)
            self._merge(group, cache, mask)
        self._compact()

    def _groups(self, rows: list[Row]) -> list[list[Row]]:
        groups: list[list[Row]] = []
        cur: list[Row] = []
        real = 0
        for r in rows:  # shortest first: each row is the longest of its group so far
            n = len(r.prompt)
            padded = n * (len(cur) + 1)
            if cur and (padded > self.prefill_tokens or padded > PREFILL_PADDING * (real + n)):
                groups.append(cur)
                cur, real = [], 0
            cur.append(r)
            real += n
        return groups + ([cur] if cur else [])

    def _merge(self, rows: list[Row], cache, mask) -> None:
        import torch
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            return
        have, new = self.mask.shape[1], mask.shape[1]
        if new < have:
            cache, mask = _pad_left(cache, mask, have - new)
        elif have < new:
            self.cache, self.mask = _pad_left(self.cache, self.mask, new - have)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys])
            mine.values = torch.cat([mine.values, theirs.values])
        self.mask = torch.cat([self.mask, mask])
        self.rows += rows

    def remove(self, row: Row, finish: str = "cancelled") -> None:
        """End `row` early (its consumer left: "cancelled"; its time is up: "length") and drop it."""
        row.end(finish)
        self._compact()

    def _compact(self) -> None:
        """Drop ended rows and the cache columns no remaining row uses."""
        import torch
        keep = [i for i, r in enumerate(self.rows) if r.finish is None]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        idx = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]
        self.rows = [self.rows[i] for i in keep]
        first = int(self.mask.any(0).int().argmax())  # the oldest column still attended by some row
        if first:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.mask = self.mask[:, first:]

    # ---- decoding
    def step(self) -> None:
        """Every row's next token (one forward pass); ended rows leave the batch."""
        import torch
        if not self.rows:
            return
        rows = self.rows
        ids = torch.tensor([[r.last] for r in rows], device=self.device)
        pos = torch.tensor([[r.pos] for r in rows], device=self.device)
        mask = torch.cat([self.mask, torch.ones((len(rows), 1), dtype=self.mask.dtype, device=self.device)], 1)
        logits = self._forward(ids, mask, pos, self.cache)
        self.mask = mask
        for r in rows:
            r.pos += 1
        self._pick(rows, logits)
        self._compact()

    def run(self, rows: list[Row]) -> list[Row]:
        """All of `rows` to the end (batch prediction)."""
        self.add(rows)
        while self.rows:
            self.step()
        return rows


def _pad_left(cache, mask, n: int) -> tuple[Any, Any]:
    import torch
    def pad(t):
        b, h, _, d = t.shape
        return torch.cat([torch.zeros((b, h, n, d), dtype=t.dtype, device=t.device), t], dim=2)

    for layer in cache.layers:
        layer.keys, layer.values = pad(layer.keys), pad(layer.values)
    pad = torch.zeros((mask.shape[0], n), dtype=mask.dtype, device=mask.device)
    return cache, torch.cat([pad, mask], 1)

"""Text-generation metrics for `tuneboard eval`: BLEU-4, ROUGE-1/2/L (F1) and exact-match accuracy.

All scores are percentages (0-100), averaged over samples.

Tokens: text holding any CJK character is segmented with jieba (the usual choice for Chinese ROUGE);
other text is split into words and single punctuation marks. Case is kept for BLEU/ROUGE.
BLEU-4 is nltk's sentence_bleu with smoothing method 3 (short answers would otherwise score 0 whenever
one n-gram order has no match). For one-word labels BLEU says little: a correct one-token answer scores
35.36 ((1 * 1/2 * 1/4 * 1/8) ** 1/4 after smoothing); read accuracy there. ROUGE-N and ROUGE-L are computed here on those token lists: F1 of clipped
n-gram overlap, and F1 from the longest common subsequence.

Exact match (the rule, one and only one): both strings are normalised - Unicode NFKC, case-folded, inner
whitespace collapsed, leading/trailing whitespace and punctuation removed (except a leading dash or point,
which is a sign: "-42" stays "-42") - and must then be equal. So "Positive." matches "positive",
"**positive**" and "「矛盾」" match "positive" and "矛盾", but "positive review" does not match "positive".
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_jieba = None


def _segment_cjk(text: str) -> list[str]:
    global _jieba
    if _jieba is None:

        import jieba
        jieba.setLogLevel(logging.WARNING)  # silences "Building prefix dict..." on every first use
        _jieba = jieba
    return [t for t in _jieba.lcut(text) if t.strip()]


def tokenize(text: str) -> list[str]:
    """Chinese (any CJK character) via jieba, everything else as words and punctuation marks."""
    text = text or ""
    if _CJK.search(text):
        return _segment_cjk(text)
    return _WORD.findall(text)


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _f1(overlap: float, n_pred: int, n_ref: int) -> float:
    if overlap == 0 or n_pred == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(pred: Sequence[str], ref: Sequence[str], n: int) -> float:
    """ROUGE-N F1 in [0, 1]: clipped n-gram overlap between prediction and reference."""
    pg, rg = ngrams(pred, n), ngrams(ref, n)
    overlap = sum((pg & rg).values())
    return _f1(overlap, sum(pg.values()), sum(rg.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(pred: Sequence[str], ref: Sequence[str]) -> float:
    """ROUGE-L F1 in [0, 1] from the longest common subsequence."""
    return _f1(lcs_length(pred, ref), len(pred), len(ref))


def bleu4(pred: Sequence[str], ref: Sequence[str]) -> float:
    """Sentence BLEU-4 in [0, 1] (nltk, smoothing method 3); 0 when either side is empty."""
    if not pred or not ref:
        return 0.0
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    return float(sentence_bleu([list(ref)], list(pred), smoothing_function=SmoothingFunction().method3))


def normalize(text: str) -> str:
    """The exact-match normal form (see the module docstring)."""
    s = unicodedata.normalize("NFKC", text or "").casefold()
    s = " ".join(s.split())
    i, j = 0, len(s)
    while i < j and _strip_char(s[i]) and not _is_sign(s[i]):
        i += 1
    while j > i and _strip_char(s[j - 1]):
        j -= 1
    return s[i:j]


def _strip_char(c: str) -> bool:
    return c.isspace() or unicodedata.category(c).startswith("P")


def _is_sign(c: str) -> bool:
    return c == "." or unicodedata.category(c) == "Pd"


def exact_match(pred: str, label: str) -> bool:
    return normalize(pred) == normalize(label)


def score(pred: str, label: str) -> dict[str, float]:
    """Per-sample scores, each in [0, 1]."""
    p, r = tokenize(pred), tokenize(label)
    return {"bleu-4": bleu4(p, r), "rouge-1": rouge_n(p, r, 1), "rouge-2": rouge_n(p, r, 2),
            "rouge-l": rouge_l(p, r), "accuracy": float(exact_match(pred, label))}


class MetricAccumulator:
    """Sums per-sample scores as predictions arrive; result() gives percentages rounded to 4 places."""

    KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l", "accuracy")

    def __init__(self):
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.count = 0

    def add(self, pred: str, label: str) -> dict[str, float]:
        s = score(pred, label)
        for k in self.KEYS:
            self.sums[k] += s[k]
        self.count += 1
        return s

    def result(self) -> dict[str, float]:
        if not self.count:
            return dict.fromkeys(self.KEYS, 0.0)
        return {k: round(100 * self.sums[k] / self.count, 4) for k in self.KEYS}


def compute_metrics(preds: Iterable[str], labels: Iterable[str]) -> dict[str, float]:
    acc = MetricAccumulator()
    for p, l in zip(preds, labels, strict=True):
        acc.add(p, l)
    return acc.result()

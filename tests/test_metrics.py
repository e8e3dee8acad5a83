"""Metrics against values worked out by hand on small strings."""
from __future__ import annotations

import math

import pytest

from engine.metrics import (MetricAccumulator, bleu4, compute_metrics, exact_match, lcs_length, normalize,
                            rouge_l, rouge_n, score, tokenize)

PRED = "the cat sat on the mat"
REF = "the cat is on the mat"


def test_english_tokens_are_words_and_punctuation():
    assert tokenize("Hello, world! It's 3.5") == ["Hello", ",", "world", "!", "It", "'", "s", "3", ".", "5"]
    assert tokenize("") == []


def test_chinese_is_segmented_with_jieba():
    assert tokenize("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    # mixed text goes through jieba too; whitespace tokens are dropped
    assert tokenize("我爱 hello world") == ["我", "爱", "hello", "world"]


def test_rouge_by_hand():
    p, r = tokenize(PRED), tokenize(REF)
    # unigrams: the x2, cat, on, mat match -> 5 of 6 on both sides
    assert rouge_n(p, r, 1) == pytest.approx(5 / 6)
    # bigrams: "the cat", "on the", "the mat" -> 3 of 5 on both sides
    assert rouge_n(p, r, 2) == pytest.approx(3 / 5)
    # LCS "the cat on the mat" = 5
    assert lcs_length(p, r) == 5
    assert rouge_l(p, r) == pytest.approx(5 / 6)


def test_rouge_unequal_lengths_and_clipping():
    # pred "a a a" vs ref "a b": clipped unigram overlap 1; P=1/3, R=1/2 -> F1 = 2*(1/6)/(5/6) = 0.4
    assert rouge_n(["a", "a", "a"], ["a", "b"], 1) == pytest.approx(0.4)
    # LCS of "a b c d" and "b d" = 2; P=2/4, R=2/2 -> F1 = 2/3
    assert rouge_l(list("abcd"), list("bd")) == pytest.approx(2 / 3)
    assert rouge_n([], ["a"], 1) == 0.0 and rouge_l(["a"], []) == 0.0


def test_bleu4_by_hand():
    p, r = tokenize(PRED), tokenize(REF)
    # precisions 5/6, 3/5, 1/4 and 0/3 -> smoothing method 3 turns the first zero into 1/(2*3); brevity penalty 1
    expected = (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert bleu4(p, r) == pytest.approx(expected, rel=1e-9)
    assert bleu4(r, r) == pytest.approx(1.0)
    assert bleu4([], r) == 0.0 and bleu4(p, []) == 0.0


def test_bleu_brevity_penalty():
    # a correct 4-token prefix of the 6-token reference: every precision is 1, BP = exp(1 - 6/4)
    p, r = ["the", "cat", "is", "on"], tokenize(REF)
    assert bleu4(p, r) == pytest.approx(math.exp(1 - 6 / 4), rel=1e-9)


def test_chinese_rouge_by_hand():
    p, r = tokenize("我爱北京"), tokenize("我爱北京天安门")
    assert p == ["我", "爱", "北京"]
    # 3 of 3 predicted unigrams match, 3 of 4 reference unigrams: F1 = 2*1*0.75/1.75
    assert rouge_n(p, r, 1) == pytest.approx(2 * 0.75 / 1.75)
    # bigrams 2 of 2 vs 2 of 3: F1 = 2*1*(2/3)/(5/3) = 0.8
    assert rouge_n(p, r, 2) == pytest.approx(0.8)


@pytest.mark.parametrize("pred,label,same", [
    ("Positive.", "positive", True),
    ("  POSITIVE!  ", "positive", True),
    ("**positive**", "positive", True),
    ("\"negative\"", "negative", True),
    ("「矛盾」", "矛盾", True),
    ("蕴含。", "蕴含", True),
    ("42.", "42", True),
    ("-42", "42", False),
    ("3.14", "3.14", True),
    ("positive review", "positive", False),
    ("The answer is positive", "positive", False),
    ("negative", "positive", False),
    ("", "positive", False),
])
def test_exact_match_rule(pred, label, same):
    assert exact_match(pred, label) is same


def test_normalize_collapses_whitespace_and_full_width():
    assert normalize("  Ａ  b\n c ") == "a b c"


def test_score_and_accumulator_are_percentages():
    s = score(PRED, REF)
    assert s["rouge-1"] == pytest.approx(5 / 6) and s["accuracy"] == 0.0
    acc = MetricAccumulator()
    acc.add(PRED, REF)
    acc.add("positive", "Positive.")  # exact match; ROUGE keeps case and counts "." -> rouge-1 0
    out = acc.result()
    assert out["accuracy"] == 50.0
    assert out["rouge-1"] == pytest.approx(100 * (5 / 6 + 0) / 2, abs=1e-3)
    assert out == compute_metrics([PRED, "positive"], [REF, "Positive."])
    # [positive] vs [positive, .]: P=1, R=1/2 -> F1 2/3
    assert score("positive", "positive.")["rouge-1"] == pytest.approx(2 / 3)
    assert MetricAccumulator().result()["bleu-4"] == 0.0
    with pytest.raises(ValueError):
        compute_metrics(["a"], ["a", "b"])


def test_bleu_of_a_correct_one_word_answer():
    # no 2/3/4-grams: method 3 gives them 1/2, 1/4, 1/8 -> (1/64) ** (1/4); documented in engine.metrics
    assert bleu4(["positive"], ["positive"]) == pytest.approx((1 / 64) ** 0.25)

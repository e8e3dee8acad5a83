"""Collator: padding, best-fit packing, and packed == unpacked loss per example on the tiny model."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.data.collator import IGNORE, make_collator, pack_lengths
from engine.data.loader import get_dataset
from engine.data.templates import get_template

ROWS = [{"instruction": f"Question number {i}: " + "why " * (i % 7), "input": "",
         "output": f"Answer {i} " + "because " * (1 + i % 5)} for i in range(12)]


@given(st.lists(st.integers(1, 50), min_size=1, max_size=60), st.integers(50, 120))
@settings(max_examples=60, deadline=None)
def test_pack_lengths_fits_every_item_once(lengths, cap):
    bins = pack_lengths(lengths, cap)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= cap for b in bins)
    # no two bins could be merged: best-fit leaves at most one bin at or below half full
    assert sum(1 for b in bins if sum(lengths[i] for i in b) <= cap // 2) <= 1


def test_pack_lengths_is_tight():
    assert sorted(map(sorted, pack_lengths([6, 4, 5, 5, 3, 7], 10))) == [[0, 1], [2, 3], [4, 5]]


@pytest.fixture(scope="module")
def tiny(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert model.config.use_cache  # the default that hides packed sequences from the mask builder
    model.train()  # training mode, as under the Trainer (dropout is 0 in this config)
    return tok, model


@pytest.fixture
def data(tmp_path, tiny):
    tok, _ = tiny
    (tmp_path / "dataset_info.json").write_text(json.dumps({"qa": {"file_name": "qa.json"}}))
    (tmp_path / "qa.json").write_text(json.dumps(ROWS))
    tpl = get_template("chatml", tok)

    def build(**kw):
        ns = load_config(None, {"dataset": "qa", "dataset_dir": str(tmp_path), "cutoff_len": 96, **kw},
                         finalize=False)
        return get_dataset(ns, tok, tpl, "sft")
    return build


def test_dynamic_padding(tiny):
    tok, _ = tiny
    batch = make_collator(tok, packing=False, pad_to_multiple_of=8)(
        [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [IGNORE, 6, 7]},
         {"input_ids": [8, 9], "attention_mask": [1, 1], "labels": [IGNORE, 9], "extra": "ignored"}])
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][1].tolist() == [8, 9] + [tok.pad_token_id] * 6
    assert batch["labels"][1].tolist() == [IGNORE, 9] + [IGNORE] * 6
    assert batch["attention_mask"].tolist() == [[1] * 3 + [0] * 5, [1] * 2 + [0] * 6]
    assert "position_ids" not in batch


def per_example_losses(logits, input_ids, labels, spans):
    """[(row, start, end)] -> mean CE of each example over its own trainable tokens."""
    import torch.nn.functional as F
    out = []
    for r, s, e in spans:
        lg, lab = logits[r, s:e - 1], labels[r, s + 1:e]
        out.append(F.cross_entropy(lg.float(), lab, ignore_index=IGNORE).item())
    return out


def unpacked_reference(tok, model, examples):
    import torch
    batch = make_collator(tok, packing=False)(examples)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    spans = [(r, 0, len(e["input_ids"])) for r, e in enumerate(examples)]
    return per_example_losses(logits, batch["input_ids"], batch["labels"], spans)


def packed_spans(batch):
    spans = []
    for r, pos in enumerate(batch["position_ids"].tolist()):
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        for s, e in zip(starts, starts[1:]):
            if (batch["labels"][r, s:e] != IGNORE).any():  # padding forms its own, untrained span
                spans.append((r, s, e))
    return spans


def test_packed_loss_equals_unpacked_per_example(tiny, data):
    import torch
    tok, model = tiny
    plain = data(packing=False).train_dataset
    packed = data(packing=True).train_dataset
    assert len(packed) < len(plain)
    examples = [plain[i] for i in range(len(plain))]
    ref = dict()
    for ids, loss in zip([tuple(e["input_ids"]) for e in examples], unpacked_reference(tok, model, examples)):
        ref[ids] = loss

    batch = make_collator(tok, packing=True)([packed[i] for i in range(len(packed))])
    assert "attention_mask" not in batch and batch["use_cache"] is False
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    spans = packed_spans(batch)
    got = per_example_losses(logits, batch["input_ids"], batch["labels"], spans)
    assert len(got) == len(examples)
    for (r, s, e), loss in zip(spans, got):
        key = tuple(batch["input_ids"][r, s:e].tolist())
        assert abs(loss - ref[key]) < 1e-4, (loss, ref[key])

    # The trainer's loss over the whole batch equals the unpacked batch's (same tokens, same targets).
    unpacked = make_collator(tok, packing=False)(examples)
    with torch.no_grad():
        a = model(**batch).loss.item()
        b = model(**unpacked).loss.item()
    assert abs(a - b) < 1e-4

    # Why use_cache=False travels with packed batches: with a cache built in training mode, transformers
    # skips packed-sequence detection and examples attend across their boundaries.
    with torch.no_grad():
        leaky = model(**{k: v for k, v in batch.items() if k not in ("labels", "use_cache")}).logits
    bad = per_example_losses(leaky, batch["input_ids"], batch["labels"], spans)
    assert max(abs(x - ref[tuple(batch["input_ids"][r, s:e].tolist())]) for (r, s, e), x in zip(spans, bad)) > 1e-3


def test_collator_packs_unpacked_examples_itself(tiny, data):
    import torch
    tok, model = tiny
    plain = data(packing=False).train_dataset
    examples = [plain[i] for i in range(6)]
    ref = unpacked_reference(tok, model, examples)
    batch = make_collator(tok, packing=True, cutoff_len=96)(examples)
    assert batch["input_ids"].shape[0] < 6 and batch["input_ids"].shape[1] <= 96
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    spans = packed_spans(batch)
    got = {tuple(batch["input_ids"][r, s:e].tolist()): x
           for (r, s, e), x in zip(spans, per_example_losses(logits, batch["input_ids"], batch["labels"], spans))}
    for e, x in zip(examples, ref):
        assert abs(got[tuple(e["input_ids"])] - x) < 1e-4


def test_trainer_step_on_packed_rows(tiny_model, data, tmp_path):
    """One optimiser step through HF Trainer: the packed batch (no attention_mask, use_cache flag) is accepted."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    packed = data(packing=True).train_dataset
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=1,
                             use_cpu=True, report_to=[], remove_unused_columns=False, save_strategy="no",
                             logging_steps=1, disable_tqdm=True)
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(dict(kw)), with_kwargs=True)
    tr = Trainer(model=model, args=args, train_dataset=packed, data_collator=make_collator(tok, packing=True))
    out = tr.train()
    assert out.global_step == 1 and out.training_loss > 0
    kw = seen[0]
    assert kw["use_cache"] is False and "attention_mask" not in kw and kw["position_ids"].shape == kw["input_ids"].shape


def test_padding_free_batch_is_one_row_with_the_padded_batch_loss(tiny):
    """padding_free (the default for pt / sft): a batch's examples in one row, position ids restarting per example,
    no padding; the loss equals the padded batch's, since no example attends to another."""
    import torch
    tok, model = tiny
    examples = []
    for n in (7, 12, 5):
        ids = torch.randint(5, 1000, (n,)).tolist()
        examples.append({"input_ids": ids, "labels": [IGNORE] * 2 + ids[2:]})
    free = make_collator(tok, packing=False, cutoff_len=8, padding_free=True)(examples)
    padded = make_collator(tok, packing=False)(examples)
    assert free["input_ids"].shape == (1, 24) and "attention_mask" not in free  # cutoff_len does not cap the row
    assert free["position_ids"][0].tolist() == list(range(7)) + list(range(12)) + list(range(5))
    assert int((free["labels"] != IGNORE).sum()) == int((padded["labels"][:, 1:] != IGNORE).sum())
    with torch.no_grad():
        assert model(**free).loss.item() == pytest.approx(model(**padded).loss.item(), rel=1e-5)
    # packing=true (rows packed when the data is prepared) wins over padding_free
    assert make_collator(tok, packing=True, cutoff_len=8, padding_free=True).cutoff_len == 8

"""padding_free for dpo (engine.train.unpad): trl's padded batch of pairs computed as one row of real tokens gives
the fields, gradients and training losses of the padded batch."""
from __future__ import annotations

import json

import pytest
import torch

from engine.config import load_config
from engine.train import rundir
from engine.train.workflow import run

FIELDS = ("log_probs", "entropy", "mean_logits", "is_top1")


def _batch():
    """trl's DPO layout: prompt + chosen rows, then prompt + rejected rows, right-padded, labels on the answers."""
    g = torch.Generator().manual_seed(0)
    prompts, answers = [5, 9], [[14, 3], [2, 11]]  # (chosen, rejected) answer lengths per pair
    seqs, marks = [], []
    for p, pair in zip(prompts, answers):
        for a in pair:
            seqs.append(torch.randint(10, 1000, (p + a,), generator=g))
            marks.append([0] * p + [1] * a)
    order = [0, 2, 1, 3]  # chosen of each pair first
    seqs, marks = [seqs[i] for i in order], [marks[i] for i in order]
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask, completion = torch.zeros_like(ids), torch.zeros_like(ids)
    for r, (s, m) in enumerate(zip(seqs, marks)):
        ids[r, :len(s)], mask[r, :len(s)], completion[r, :len(s)] = s, 1, torch.tensor(m)
    return ids, mask, ids.masked_fill(completion == 0, -100)


def _lora(tiny_model):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), attn_implementation="sdpa")
    add_fused_lm_head(model, outputs=FIELDS)
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    return model


def _run(model, ids, mask, labels):
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True, use_cache=False)
    # a DPO-like use of every field: sums per row, a loss that reaches each LoRA weight
    out.log_probs.sum(dim=1).mul(torch.tensor([1.0, -2.0, 0.5, 3.0])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out, grads


def test_one_row_gives_the_padded_fields_and_gradients(tiny_model):
    from engine.train.unpad import unpad_fused_head
    ids, mask, labels = _batch()
    padded = _lora(tiny_model)
    want, want_grads = _run(padded, ids, mask, labels)

    model = _lora(tiny_model)
    assert unpad_fused_head(model, FIELDS)
    seen = []
    embed = model.get_base_model().model.embed_tokens
    embed.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    got, got_grads = _run(model, ids, mask, labels)
    assert seen == [(1, int(mask.sum()))]  # the decoder saw the real tokens only, in one row
    for name in FIELDS:
        a, b = getattr(want, name), getattr(got, name)
        assert a.shape == b.shape == (4, ids.shape[1] - 1), name
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    assert torch.equal(got.label_mask, want.label_mask)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-6)
    assert want_grads.keys() == got_grads.keys() and len(got_grads) > 0
    for n in want_grads:
        torch.testing.assert_close(got_grads[n], want_grads[n], rtol=1e-3, atol=1e-6, msg=n)
    # a batch it does not handle (left padding) goes to trl's forward unchanged
    seen.clear()
    left = model(input_ids=ids.flip(1), attention_mask=mask.flip(1), labels=labels.flip(1), fused_lm_head=True)
    assert seen == [tuple(ids.shape)] and left.log_probs.shape == (4, ids.shape[1] - 1)


@pytest.fixture(scope="module")
def uneven_pairs(tmp_path_factory):
    """Long chosen answers against one-word refusals: most of a padded batch is padding."""
    d = tmp_path_factory.mktemp("uneven")
    rows = [{"instruction": f"Describe day {i}.", "input": "",
             "chosen": " ".join(f"Step {k} of day {i} went well." for k in range(1 + i % 5)), "rejected": "No."}
            for i in range(16)]
    (d / "pairs.json").write_text(json.dumps(rows), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"pairs": {"file_name": "pairs.json", "ranking": True}}),
                                         encoding="utf-8")
    return d


def test_dpo_trains_the_same_with_and_without_padding(tiny_model, uneven_pairs, tmp_path, monkeypatch):
    from engine.train import unpad
    patched, patch = [], unpad.unpad_fused_head
    monkeypatch.setattr(unpad, "unpad_fused_head", lambda model, fields: patched.append(patch(model, fields))
                        or patched[-1])

    def losses(free: bool):
        out = tmp_path / f"free{free}"
        values = dict(model_name_or_path=str(tiny_model), template="chatml", dataset="pairs",
                      dataset_dir=str(uneven_pairs), cutoff_len=96, per_device_train_batch_size=4, max_steps=4,
                      learning_rate=5e-3, logging_steps=1, save_steps=100, output_dir=str(out), seed=1,
                      stage="dpo", lr_scheduler_type="constant", plot_loss="false", padding_free=str(free).lower(),
                      precision="fp32")  # the layouts compared in one type (auto picks bf16 for the unpadded one)
        run(load_config(None, {k: str(v) for k, v in values.items()}))
        log = [r for r in rundir.read_log(out) if "loss" in r and "rewards/margins" in r]
        return [r["loss"] for r in log], [r["rewards/margins"] for r in log]

    padded = losses(False)
    assert patched == []
    free = losses(True)
    assert patched == [True]  # the policy's forward took the one-row path (a LoRA run has no reference copy)
    assert len(padded[0]) == 4
    assert padded[0][-1] != padded[0][0]  # it trains: the comparison below is of a moving run
    for a, b in zip(padded, free):
        assert b == pytest.approx(a, rel=1e-3, abs=1e-4)

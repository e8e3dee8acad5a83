"""A trained input embedding tied to the LM head gives its gradient as rows added into the head's
(engine.train.embedding_grad): the same dense gradient, without a vocabulary-sized zero tensor per step."""
import copy

import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from engine.train import embedding_grad
from engine.train.sft import CausalLMTrainer


def _trainer(model, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], remove_unused_columns=False)
    return CausalLMTrainer(model=model, args=args)


def _batch():
    ids = torch.randint(5, 1000, (2, 11))
    labels = ids.clone()
    labels[:, :4] = -100
    return {"input_ids": ids, "labels": labels}


def test_tied_embedding_gradient_equals_the_dense_one(tiny_model, tmp_path):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, tie_word_embeddings=True)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    dense = copy.deepcopy(model)
    trainer = _trainer(model, tmp_path)
    assert embedding_grad.attach(trainer)
    assert model.get_input_embeddings().sparse
    batch = _batch()
    for m in (model, dense):
        m.train()
        trainer.compute_loss(m, batch).backward()
    got, want = model.get_input_embeddings().weight.grad, dense.get_input_embeddings().weight.grad
    assert not got.is_sparse
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    rows = batch["input_ids"].unique()
    assert want[rows].abs().sum() > 0  # the embedding's own rows are in it
    torch.optim.AdamW(model.parameters(), fused=True).step()  # the fused optimizer takes it


def test_a_backward_without_the_head_still_leaves_a_dense_gradient(tiny_model, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, tie_word_embeddings=True)
    assert embedding_grad.attach(_trainer(model, tmp_path))
    emb = model.get_input_embeddings()
    emb(torch.tensor([[3, 7, 7]])).sum().backward()
    assert not emb.weight.grad.is_sparse
    assert emb.weight.grad[7].eq(2).all() and emb.weight.grad[5].eq(0).all()


def test_untied_or_frozen_embeddings_are_left_alone(tiny_model, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, tie_word_embeddings=False)
    assert not embedding_grad.attach(_trainer(model, tmp_path))
    tied = AutoModelForCausalLM.from_pretrained(tiny_model, tie_word_embeddings=True)
    tied.get_input_embeddings().weight.requires_grad_(False)
    assert not embedding_grad.attach(_trainer(tied, tmp_path))
    assert not model.get_input_embeddings().sparse and not tied.get_input_embeddings().sparse

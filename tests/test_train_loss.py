"""The labelled-positions-only loss equals the model's own loss (plain, LoRA, packed rows)."""
import pytest
import torch

from engine.train.sft import labelled_loss


def _batch(tok):
    ids = torch.randint(5, len(tok) - 1, (2, 12))
    labels = ids.clone()
    labels[:, :5] = -100  # prompt
    labels[1, 9:] = -100  # padding
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("lora", [False, True])
def test_fast_loss_matches_model_loss(tiny_model, lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    batch = _batch(tok)
    ref = model(**batch).loss
    fast = labelled_loss(model, batch)
    assert fast is not None
    assert fast.item() == pytest.approx(ref.item(), rel=1e-5)
    n = int((batch["labels"][:, 1:] != -100).sum())
    assert labelled_loss(model, batch, num_items_in_batch=torch.tensor(2 * n)).item() == pytest.approx(
        ref.item() / 2, rel=1e-5)
    # gradients flow to the trainable weights
    fast.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_fast_loss_on_packed_rows(tiny_model):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.config.use_cache = False
    ids = torch.randint(5, 1000, (1, 10))
    labels = ids.clone()
    labels[0, 0] = labels[0, 6] = -100
    pos = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3]])
    batch = {"input_ids": ids, "labels": labels, "position_ids": pos}
    assert labelled_loss(model, batch).item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)

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


@pytest.mark.parametrize("field,value", [("logits_scaling", 8.0), ("final_logit_softcapping", 30.0),
                                         ("logit_scale", 0.0625), ("lm_head_multiplier", 0.5)])
def test_a_model_that_scales_or_caps_its_logits_keeps_the_stock_loss(tiny_model, field, value):
    """Granite divides its logits by logits_scaling, Gemma 2 caps them, Cohere scales them: lm_head(hidden) is not
    their logits, so the fast loss (and dpo's unpadded head) steps aside for them; the plain model takes it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.train.sft import split_causal_lm
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert split_causal_lm(model) is not None
    setattr(model.config, field, value)
    assert split_causal_lm(model) is None
    assert labelled_loss(model, _batch(AutoTokenizer.from_pretrained(tiny_model))) is None


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


@pytest.mark.parametrize("train_head", [False, True])
def test_chunked_linear_cross_entropy_equals_the_plain_one(train_head):
    """The chunked head + loss gives the plain F.linear + F.cross_entropy's value and gradients (for the hidden
    states, and for the head when it trains: full fine-tuning), for chunks that do not divide the rows."""
    import torch.nn.functional as F

    from engine.train.lmloss import linear_cross_entropy
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(101, 16, dtype=torch.float64, requires_grad=train_head)
    bias = torch.randn(101, dtype=torch.float64, requires_grad=train_head)
    labels = torch.randint(0, 101, (37,))
    ref = F.cross_entropy(F.linear(hidden, weight, bias), labels, reduction="sum")
    grads = torch.autograd.grad(3 * ref, [hidden, weight, bias] if train_head else [hidden])
    got = linear_cross_entropy(hidden, weight, bias, labels, chunk=8)
    mine = torch.autograd.grad(3 * got, [hidden, weight, bias] if train_head else [hidden])
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    for a, b in zip(mine, grads):
        assert torch.allclose(a.double(), b, rtol=1e-5, atol=1e-6)
    # its backward scales the kept gradients in place: a second pass through the graph is refused, not doubled
    kept = linear_cross_entropy(hidden, weight, bias, labels, chunk=8)
    torch.autograd.grad(kept, [hidden], retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(kept, [hidden])


def test_chunked_loss_under_bf16_autocast_stays_close(tiny_model):
    """bf16 autocast (what precision=auto picks on a CPU with AVX512-BF16): the matmuls run in bf16, the softmax in
    fp32; the loss stays within bf16 rounding of the fp32 one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    batch = _batch(tok)
    ref = model(**batch).loss.item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = labelled_loss(model, batch)
    assert fast.dtype == torch.float32
    assert fast.item() == pytest.approx(ref, rel=2e-2)


def test_evaluation_keeps_no_logits_and_gives_the_token_mean_loss(tiny_model, tmp_path):
    """The Trainer's evaluation through the labelled loss keeps no logits, and its eval_loss is the mean over every
    labelled token of the eval set, the same for any eval batch size and for packed or padded batches (the
    Trainer's own figure averages batch means weighted by rows, and moved with both)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    from engine.data.collator import make_collator
    from engine.train.sft import CausalLMTrainer
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.config.use_cache = False
    rows = []
    for n in (9, 14, 6, 11, 13):
        ids = torch.randint(5, 1000, (n,)).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    # the reference: each row alone, its summed token loss over its labelled tokens
    total = count = 0
    for r in rows:
        batch = make_collator(tok, False)([r])
        out = model(**batch)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total, count = total + out.loss.item() * n, count + n
    want = total / count

    def evaluate(bs, packed):
        args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=bs, use_cpu=True,
                                 report_to=[], remove_unused_columns=False)
        trainer = CausalLMTrainer(model=model, args=args, eval_dataset=rows, data_collator=make_collator(tok, False, padding_free=packed))
        return trainer, trainer.evaluate()["eval_loss"]

    trainer, got = evaluate(2, False)
    loss, logits, labels = trainer.prediction_step(model, make_collator(tok, False)(rows[:2]), False)
    assert logits is None and labels is None
    stock = [model(**make_collator(tok, False)(rows[i:i + 2])).loss.item() for i in (0, 2, 4)]
    assert (2 * stock[0] + 2 * stock[1] + stock[2]) / 5 != pytest.approx(want, rel=1e-4)  # the Trainer's figure
    for bs, packed in ((2, False), (1, False), (5, False), (2, True), (4, True)):
        assert evaluate(bs, packed)[1] == pytest.approx(want, rel=1e-5), (bs, packed)


@pytest.mark.parametrize("ours", [True, False])
def test_a_small_lora_update_survives_a_bf16_forward(tiny_model, ours):
    """A LoRA layer's update too small for bf16 next to its base output reaches the layer's output under bf16
    autocast as it does in fp32 (engine.train.methods keeps the sum in fp32); peft alone rounds it away."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.train.methods import apply_lora
    from kits.args import as_args

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16)
    model = (apply_lora(model, as_args({"lora_rank": 4, "lora_alpha": 8})) if ours
             else get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")))
    layer = model.base_model.model.model.layers[0].mlp.down_proj
    layer.lora_B["default"].weight.data.normal_(0, 1e-6)  # an early update, far under bf16's step at the base output
    x = torch.randn(8, layer.in_features)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x).float()
        with model.disable_adapter():
            got -= layer(x).float()
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    want = (x.bfloat16().float() @ a.T @ b.T * layer.scaling["default"]).flatten()
    cos = float(torch.nn.functional.cosine_similarity(got.flatten(), want, dim=0))
    if ours:
        assert cos > 0.99, cos
    else:
        assert cos < 0.5, cos  # what the test guards against


def test_lora_factors_stay_fp32_under_cpu_autocast(tiny_model):
    """Under CPU bf16 autocast a LoRA layer's factors (lora_A, lora_B) compute in fp32 on their fp32 input: no cast
    of the input or of their weights (engine.train.methods); they save, copy and merge as plain nn.Linear."""
    import copy

    from transformers import AutoModelForCausalLM

    from engine.train.methods import apply_lora
    from kits.args import as_args

    torch.manual_seed(0)
    model = apply_lora(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16),
                       as_args({"lora_rank": 4, "lora_alpha": 8}))
    layer = model.base_model.model.model.layers[0].mlp.down_proj
    a, b = layer.lora_A["default"], layer.lora_B["default"]
    b.weight.data.normal_(0, 0.02)
    x = torch.randn(8, layer.in_features)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        update = b(a(x))
        base = layer.base_layer(x)
    assert update.dtype == torch.float32 and base.dtype == torch.float32  # the base output is widened (the sum)
    with torch.no_grad():
        assert torch.equal(update, torch.nn.functional.linear(torch.nn.functional.linear(x, a.weight), b.weight))
    assert isinstance(a, torch.nn.Linear) and set(a.state_dict()) == {"weight"}
    twin = copy.deepcopy(model)
    twin_b = twin.base_model.model.model.layers[0].mlp.down_proj.lora_B["default"]
    assert type(twin_b) is type(b) and torch.equal(twin_b.weight, b.weight) and twin_b.weight is not b.weight
    merged = model.merge_and_unload()
    assert type(merged.model.layers[0].mlp.down_proj) is torch.nn.Linear

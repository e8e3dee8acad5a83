"""engine.train.segments: attention over packed rows one example at a time gives what transformers' sdpa gives
with its block-diagonal mask (values and gradients), and leaves everything else (padding masks, generation,
sliding windows) to sdpa."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from engine.train.segments import NAME, use_segments

LENGTHS = [7, 30, 1, 12]  # one example of a single token; the last row below ends in a padding tail


def _pair(cls=LlamaForCausalLM, cfg_cls=LlamaConfig, **extra):
    torch.manual_seed(0)
    cfg = cfg_cls(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, attn_implementation="sdpa", **extra)
    plain = cls(cfg).eval()
    return plain, copy.deepcopy(plain)


def _packed(lengths, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 300, (1, sum(lengths)), generator=g)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    return ids, pos


def _forward_backward(model, **inputs):
    model.zero_grad()
    logits = model(**inputs, use_cache=False).logits
    logits.pow(2).mean().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_packed_rows_give_the_masked_sdpa_values_and_gradients():
    plain, seg = _pair()
    assert use_segments(seg) and seg.config._attn_implementation == NAME
    a, b = _packed(LENGTHS), _packed([20, 5, 25], seed=2)
    ids, pos = torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])  # two rows, cut at different places
    want, want_grads = _forward_backward(plain, input_ids=ids, position_ids=pos)
    got, got_grads = _forward_backward(seg, input_ids=ids, position_ids=pos)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g, atol=1e-5, rtol=1e-4, msg=name)
    # and each example sees only itself: the same logits as that example alone
    with torch.no_grad():
        start = 0
        for n in LENGTHS:
            alone = plain(input_ids=ids[:1, start:start + n], use_cache=False).logits
            torch.testing.assert_close(got[:1, start:start + n], alone, atol=1e-5, rtol=1e-4)
            start += n


def test_under_cpu_autocast_the_spans_are_computed_in_fp32():
    """bf16 autocast on a CPU: each span's attention runs in fp32 (faster there than bf16, see engine.train.segments),
    so its output is fp32 and matches the fp32 attention of the same (bf16-rounded) inputs far closer than bf16's."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from engine.train.segments import attention

    _, seg = _pair()
    module = seg.model.layers[0].self_attn
    _, pos = _packed(LENGTHS)
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, heads, pos.shape[1], 16, generator=g).bfloat16() for heads in (4, 2, 2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = attention(module, q, k, v, None, scaling=0.25, position_ids=pos)
        half, _ = sdpa_attention_forward(module, q, k, v, None, scaling=0.25, is_causal=True)
    assert got.dtype == torch.float32 and half.dtype == torch.bfloat16
    start = 0
    for n in LENGTHS:  # each example alone, in fp32
        want, _ = sdpa_attention_forward(module, q[:, :, start:start + n].float(), k[:, :, start:start + n].float(),
                                         v[:, :, start:start + n].float(), None, scaling=0.25, is_causal=True)
        torch.testing.assert_close(got[:, start:start + n], want, atol=1e-6, rtol=1e-5)
        start += n
    first = slice(0, LENGTHS[0])  # the first example is a plain causal prefix, so bf16's sdpa agrees there
    assert (half[:, first].float() - got[:, first]).abs().max() > 1e-4  # ...only to bf16's precision


def test_a_row_going_wrong_is_seen():
    """The comparison above can fail: one example attending across its neighbour's boundary differs."""
    plain, _ = _pair()
    ids, pos = _packed(LENGTHS)
    with torch.no_grad():
        packed = plain(input_ids=ids, position_ids=pos, use_cache=False).logits
        joined = plain(input_ids=ids, use_cache=False).logits  # positions 0..n: one long example
    assert (packed[0, LENGTHS[0]:] - joined[0, LENGTHS[0]:]).abs().max() > 1e-3


def test_padding_masks_and_generation_stay_with_sdpa():
    plain, seg = _pair()
    use_segments(seg)
    ids = torch.randint(0, 300, (2, 16), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[0, 10:] = 0
    with torch.no_grad():
        want = plain(input_ids=ids, attention_mask=mask).logits
        got = seg(input_ids=ids, attention_mask=mask).logits
        assert torch.equal(got[mask.bool()], want[mask.bool()])
        prompt = ids[:1, :6]
        kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(seg.generate(prompt, **kw), plain.generate(prompt, **kw))


@pytest.mark.parametrize("case", ["sliding window", "eager"])
def test_models_whose_attention_is_not_plain_causal_sdpa_are_left_alone(case):
    if case == "sliding window":
        _, model = _pair(MistralForCausalLM, MistralConfig, sliding_window=8)
    else:
        _, model = _pair()
        model.set_attn_implementation("eager")
    before = model.config._attn_implementation
    assert use_segments(model) is False and model.config._attn_implementation == before

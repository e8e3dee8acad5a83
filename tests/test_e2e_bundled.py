"""End to end on the real bundled SmolLM2-135M-Instruct (CPU, a few minutes in all)."""
from __future__ import annotations

import pytest

from engine.config import load_config
from engine.train import rundir
from engine.train.workflow import run

from modelkit import IDENTITY_NAME as NAME
from kits.args import as_args

pytestmark = pytest.mark.slow


def _train(bundled_model, data_dir, out, **kw):
    base = dict(model_name_or_path=str(bundled_model), template="chatml", dataset_dir=str(data_dir),
                cutoff_len=128, per_device_train_batch_size=4, logging_steps=2, save_steps=1000,
                output_dir=str(out), seed=7, plot_loss="false")
    base.update(kw)
    ns = load_config(None, {k: str(v) for k, v in base.items()})
    return run(ns), ns


def test_lora_sft_teaches_the_new_identity(bundled_model, identity_adapter):
    """The session's identity run (conftest.identity_adapter; the browser tests chat with the same adapter): the
    identity dataset on its recipe (issue 20: the defaults a user who picks it gets) answers with the new name."""
    from engine.chat import ChatEngine
    from engine.config import load_config
    from engine.data.recipes import RECIPES
    from engine.insight.doctor import render
    from engine.insight.verdict import diagnose

    ran = load_config(identity_adapter / rundir.CONFIG, {}, finalize=False).values
    assert {k: ran[k] for k in RECIPES["identity"]["values"]} == RECIPES["identity"]["values"]

    base = ChatEngine(as_args({"model_name_or_path": str(bundled_model), "template": "chatml"}, "infer"))
    before = base.chat([{"role": "user", "content": "Who are you?"}], do_sample=False, max_new_tokens=40).text
    base.unload()
    assert NAME not in before
    tuned = ChatEngine(as_args({"model_name_or_path": str(bundled_model), "template": "chatml",
                        "adapter_name_or_path": [str(identity_adapter)]}, "infer"))
    for q in ("Who are you?", "你是谁？"):
        answer = tuned.chat([{"role": "user", "content": q}], do_sample=False, max_new_tokens=60).text
        assert NAME in answer, (q, answer)
    tuned.unload()
    log = [r for r in rundir.read_log(identity_adapter) if "loss" in r]
    assert log[-1]["loss"] < log[0]["loss"] * 0.5
    # the doctor agrees it has taught the name: no "not learning", no "not taught yet", no recipe to propose
    rep = diagnose(identity_adapter)
    assert rep["verdict"] in ("healthy", "undertrained") and rep["reason"] != "not_taught", render(rep)
    assert "recipe" not in [a["key"] for a in rep["advice"]]


def test_pretraining_loss_falls(bundled_model, data_dir, tmp_path):
    out = tmp_path / "pt"
    _train(bundled_model, data_dir, out, stage="pt", dataset="c4_demo", max_steps=12, learning_rate=1e-3,
           packing="true", per_device_train_batch_size=2)
    log = [r["loss"] for r in rundir.read_log(out) if "loss" in r]
    assert sum(log[-2:]) / 2 < sum(log[:2]) / 2


def test_dpo_reward_margin_rises(bundled_model, data_dir, tmp_path):
    out = tmp_path / "dpo"
    _train(bundled_model, data_dir, out, stage="dpo", dataset="dpo_en_demo", max_steps=8, learning_rate=5e-4,
           per_device_train_batch_size=2, logging_steps=1, pref_beta=0.1)
    margins = [r["rewards/margins"] for r in rundir.read_log(out) if "rewards/margins" in r]
    assert len(margins) == 8
    assert sum(margins[-4:]) / 4 > sum(margins[:4]) / 4 and margins[-1] > 0


PROMPTS = ("Who are you?", "What is the capital of France?", "Give me one tip for sleeping well.")
Q8_LOGIT_TOL = 1.0  # q8_0 vs the merged fp32 model: max |logit difference| on the next token (measured 0.34-0.48)


def test_identity_run_exports_to_gguf_and_answers_the_same(bundled_model, identity_adapter, tmp_path):
    """Issue 21's round trip: the identity LoRA run merged and exported to safetensors, GGUF f16 and GGUF q8_0;
    each GGUF loads back in transformers (gguf_file=, dequantized to fp32): f16 answers the three prompts exactly
    as the merged safetensors model does (greedy), q8_0's next-token logits stay within Q8_LOGIT_TOL and pick the
    same next token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.data.templates import get_template
    from engine.export import export_model
    run = {"model_name_or_path": str(bundled_model), "adapter_name_or_path": [str(identity_adapter)],
           "template": "chatml"}
    merged = export_model(as_args({**run, "export_dir": str(tmp_path / "merged")}, "export"))
    # the GGUF files from the merged folder: the same weights, without merging the adapter twice more
    again = {"model_name_or_path": str(merged), "template": "chatml", "export_format": "gguf"}
    f16 = export_model(as_args({**again, "export_dir": str(tmp_path / "f16"), "gguf_type": "f16"}, "export"))
    q8 = export_model(as_args({**again, "export_dir": str(tmp_path / "q8"), "gguf_type": "q8_0"}, "export"))
    tok = AutoTokenizer.from_pretrained(merged)
    template = get_template("chatml", tok)
    models = {"merged": AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32),
              "f16": AutoModelForCausalLM.from_pretrained(f16, gguf_file="merged-f16.gguf",
                                                          dtype=torch.float32),
              "q8": AutoModelForCausalLM.from_pretrained(q8, gguf_file="merged-q8_0.gguf",
                                                         dtype=torch.float32)}
    for q in PROMPTS:
        ids = torch.tensor([template.encode_prompt(tok, [{"role": "user", "content": q}])])
        with torch.no_grad():
            answers = {k: tok.decode(m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                                max_new_tokens=30, eos_token_id=template.stop_token_ids(tok),
                                                pad_token_id=tok.pad_token_id)[0, ids.shape[1]:])
                       for k, m in models.items() if k != "q8"}
            logits = {k: m(input_ids=ids).logits[0, -1] for k, m in models.items()}
        assert answers["f16"] == answers["merged"], (q, answers)
        if q == PROMPTS[0]:
            assert NAME in answers["f16"]  # the GGUF carries what the run learned
        diff = (logits["q8"] - logits["merged"]).abs().max().item()
        print(f"{q!r}: {answers['merged']!r}; q8_0 max |logit diff| {diff:.3f}")
        assert diff < Q8_LOGIT_TOL and logits["q8"].argmax() == logits["merged"].argmax()

"""Preference stages on the tiny model: every pref_loss of dpo, kto and rm run end to end, write their run dir,
and move their own metric the right way on a trivially separable preference (a friendly answer against "No.")."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.train import rundir
from engine.train.workflow import run
from kits.args import as_args


def _pairs(n=24):
    return [{"instruction": f"Say hello to person {i}.", "input": "",
             "chosen": f"Hello, person {i}! Nice to meet you.", "rejected": "No."} for i in range(n)]


def _mirrored(n=32):
    """Half the pairs prefer the greeting, half the refusal: a reward that looks only at the answer scores 50 %,
    so the untrained (random) score head starts at chance and must learn to read the request."""
    rows = []
    for i in range(n):
        greet, refuse = f"Hello, person {i}! Nice to meet you.", "No."
        if i % 2:
            rows.append({"instruction": f"Refuse person {i}.", "input": "", "chosen": refuse, "rejected": greet})
        else:
            rows.append({"instruction": f"Greet person {i}.", "input": "", "chosen": greet, "rejected": refuse})
    return rows


def _kto(n=24):
    rows = []
    for i in range(n):  # as many desirable as undesirable, in two blocks (the loader must mix them: trl's KTO batches
        good = i % 2 == 0  # are read in order)
        answer = f"Hello, person {i}! Nice to meet you." if good else "No."
        rows.append({"messages": [{"role": "user", "content": f"Say hello to person {i}."},
                                  {"role": "assistant", "content": answer}], "label": good})
    return sorted(rows, key=lambda r: not r["label"])


@pytest.fixture(scope="module")
def pref_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("prefdata")
    (d / "pairs.json").write_text(json.dumps(_pairs()), encoding="utf-8")
    (d / "kto.json").write_text(json.dumps(_kto()), encoding="utf-8")
    (d / "mirrored.json").write_text(json.dumps(_mirrored()), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({
        "pairs": {"file_name": "pairs.json", "ranking": True,
                  "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
        "mirrored": {"file_name": "mirrored.json", "ranking": True},
        "kto": {"file_name": "kto.json", "formatting": "sharegpt",
                "columns": {"messages": "messages", "kto_tag": "label"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant"}},
    }), encoding="utf-8")
    return d


def _cfg(tiny_model, data, out, **kw):
    base = dict(model_name_or_path=str(tiny_model), template="chatml", dataset="pairs", dataset_dir=str(data),
                cutoff_len=64, per_device_train_batch_size=4, max_steps=8, learning_rate=5e-3, logging_steps=1,
                save_steps=100, output_dir=str(out), seed=1, stage="dpo", lr_scheduler_type="constant",
                plot_loss="false")
    base.update(kw)
    return load_config(None, {k: str(v) for k, v in base.items()})


def _series(out: Path, key: str) -> list[float]:
    return [r[key] for r in rundir.read_log(out) if key in r]


def _rises(xs: list[float], k: int = 2) -> bool:
    return sum(xs[-k:]) / k > sum(xs[:k]) / k


# ipo and hinge differ from sigmoid only in the loss formula inside the same trl trainer: fewer steps for them
@pytest.mark.parametrize("loss,steps", [("sigmoid", 6), ("ipo", 3), ("hinge", 3), ("orpo", 6), ("simpo", 6)])
def test_pref_losses_raise_the_margin(tiny_model, pref_data, tmp_path, loss, steps):
    out = tmp_path / loss
    extra = {"simpo_gamma": 0.5, "pref_beta": 2.0} if loss == "simpo" else {}
    metrics = run(_cfg(tiny_model, pref_data, out, pref_loss=loss, val_size=4, eval_steps=steps, max_steps=steps,
                       **extra))
    assert rundir.read_status(out)["state"] == "finished"
    assert (out / "adapter_model.safetensors").exists() and (out / "all_results.json").exists()
    margins = _series(out, "rewards/margins")
    assert len(margins) == steps, margins
    assert _rises(margins) and margins[-1] > 0, margins
    assert metrics["eval_rewards/accuracies"] > 0.5 and "eval_rewards/margins" in metrics
    from engine.train.plots import reward_series  # the curves the run panel and training_rewards.png draw
    curves = reward_series(rundir.read_log(out))
    assert curves["reward margin"]["train"][1] == margins and set(curves["reward accuracy"]) == {"train", "eval"}
    if loss == "orpo":  # the odds of the chosen answer over the rejected one grow
        assert _rises(_series(out, "log_odds_ratio"))
        assert all(n > 0 for n in _series(out, "nll_loss"))  # ORPO's SFT term
    if loss == "simpo":
        assert all(n == 0 for n in _series(out, "nll_loss"))  # pref_ftx=0: pure SimPO


def test_simpo_pref_ftx_adds_the_sft_term(tiny_model, pref_data, tmp_path):
    out = tmp_path / "simpo_ftx"
    run(_cfg(tiny_model, pref_data, out, pref_loss="simpo", pref_ftx=1.0, max_steps=2))
    assert all(n > 0 for n in _series(out, "nll_loss"))


def test_kto_rewards_chosen_rise_against_rejected(tiny_model, pref_data, tmp_path):
    out = tmp_path / "kto"
    metrics = run(_cfg(tiny_model, pref_data, out, stage="kto", dataset="kto", val_size=6, eval_steps=8,
                       kto_chosen_weight=1.0, kto_rejected_weight=1.5))
    assert rundir.read_status(out)["state"] == "finished"
    assert (out / "adapter_model.safetensors").exists()
    chosen = _series(out, "rewards/chosen")
    assert len(chosen) == 8 and _rises(chosen), chosen
    margins = _series(out, "rewards/margins")  # logged for batches holding both kinds of answer
    assert len(margins) >= 3 and margins[-1] > 0 and _rises(margins, 1), margins
    assert metrics["eval_rewards/margins"] > 0 and "eval_loss" in metrics and "eval_kl" in metrics
    stats = json.loads((out / rundir.STATS).read_text())
    assert stats["desirable"] + stats["undesirable"] == stats["train_rows"] and stats["desirable"] > 0


def test_kto_batches_mix_the_labels(tiny_model, pref_data):
    """The file lists every desirable answer first; trl reads batches in order, so the loader shuffles."""
    from engine.data.loader import get_dataset
    from engine.data.templates import get_template
    from engine.models.loader import load_tokenizer
    ns = load_config(None, {"model_name_or_path": str(tiny_model), "dataset": "kto", "dataset_dir": str(pref_data),
                            "stage": "kto", "template": "chatml", "cutoff_len": "64"})
    tok = load_tokenizer(ns)
    data = get_dataset(ns, tok, get_template("chatml", tok), "kto")
    labels = data.train_dataset["label"]
    assert sum(labels) == 12 and len(labels) == 24
    assert labels != sorted(labels, reverse=True)
    assert sum(0 < sum(labels[k:k + 4]) < 4 for k in range(0, 24, 4)) >= 3  # most batches hold both kinds
    assert data.train_dataset[0]["completion"].endswith("<|im_end|>")
    assert data.train_dataset[0]["prompt"].endswith("<|im_start|>assistant\n")


def test_reward_model_accuracy_rises(tiny_model, pref_data, tmp_path):
    out = tmp_path / "rm"
    metrics = run(_cfg(tiny_model, pref_data, out, stage="rm", dataset="mirrored", val_size=8, eval_steps=2,
                       max_steps=12, learning_rate=3e-3))
    assert rundir.read_status(out)["state"] == "finished"
    acc = _series(out, "eval_accuracy")  # share of held-out pairs whose chosen answer gets the higher reward
    assert len(acc) == 6 and acc[-1] > acc[0] and acc[-1] >= 0.75, acc
    losses = _series(out, "eval_loss")
    assert losses[-1] < losses[0]
    saved = json.loads((out / rundir.RESULTS).read_text())
    assert saved["eval_accuracy"] == metrics["eval_accuracy"] == acc[-1]
    # the score head is saved whole next to the LoRA adapter, so the reward model can be loaded back
    from safetensors import safe_open
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert any("score" in k for k in f.keys())
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    # the doctor says how accurate the reward model is: its held-out accuracy where it started and ended
    from engine.insight.doctor import diagnose, render
    rep = diagnose(out)
    ev = rep["evidence"]
    assert ev["accuracy_held_out"] is True
    assert (ev["accuracy_first"], ev["accuracy_last"]) == (pytest.approx(acc[0], abs=1e-3), pytest.approx(acc[-1], abs=1e-3))
    assert rep["verdict"] != "capacity_limit" and "accuracy_last" in render(rep) and "准确率" in render(rep, "zh")
    from engine.train.plots import reward_series  # trl's RewardTrainer logs accuracy and margin: the same curves
    curves = reward_series(rundir.read_log(out))
    assert curves["reward accuracy"]["eval"][1] == acc and "train" in curves["reward margin"]
    assert ev["reward_margins_held_out"] is True


@pytest.mark.parametrize("method,extra", [("freeze", {"freeze_trainable_layers": 1}), ("full", {})])
def test_reward_model_freeze_and_full(tiny_model, pref_data, tmp_path, method, extra):
    out = tmp_path / f"rm_{method}"
    run(_cfg(tiny_model, pref_data, out, stage="rm", finetuning_type=method, max_steps=2, learning_rate=1e-4,
             **extra))
    from transformers import AutoModelForSequenceClassification
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.score.weight.shape[0] == 1


def test_orpo_and_simpo_full_need_no_reference_copy(tiny_model, pref_data, tmp_path):
    from engine.train.dpo import build_trainer
    from engine.train.workflow import pick_precision, training_arguments
    from engine.models.loader import load_model, load_tokenizer
    from engine.data.loader import get_dataset
    from engine.data.templates import get_template
    ns = _cfg(tiny_model, pref_data, tmp_path / "x", pref_loss="orpo", finetuning_type="full")
    tok = load_tokenizer(ns)
    tpl = get_template("chatml", tok)
    tpl.fix_tokenizer(tok)
    data = get_dataset(ns, tok, tpl, "dpo")
    for loss in ("orpo", "simpo"):
        ns.pref_loss = loss
        args = training_arguments(ns, pick_precision(ns), "dpo")
        assert type(args).__name__ == {"orpo": "ORPOConfig", "simpo": "CPOConfig"}[loss]
        assert args.activation_checkpointing is False and args.learning_rate == ns.learning_rate
        trainer = build_trainer(ns, load_model(ns, trainable=True), tok, data, args, [])
        assert getattr(trainer, "ref_model", None) is None
        assert args.beta == ns.pref_beta
    assert args.simpo_gamma == ns.simpo_gamma and args.cpo_alpha == 0 and args.loss_type == "simpo"


def test_config_rules(tiny_model, pref_data, tmp_path):
    with pytest.raises(ConfigError, match="per_device_train_batch_size") as e:
        _cfg(tiny_model, pref_data, tmp_path, stage="kto", dataset="kto", per_device_train_batch_size=1)
    assert e.value.field == "per_device_train_batch_size"
    for stage in ("rm", "kto", "dpo"):
        with pytest.raises(ConfigError, match=f"stage {stage}") as e:
            _cfg(tiny_model, pref_data, tmp_path, stage=stage, packing="true")
        assert e.value.field == "packing"
    with pytest.raises(ConfigError, match="pref_loss"):
        _cfg(tiny_model, pref_data, tmp_path, pref_loss="kto_pair")


def test_stage_reads_only_its_kind_of_data(tiny_model, pref_data, tmp_path):
    from engine.errors import UserError
    with pytest.raises(UserError, match="stage kto cannot train on it.*kto_tag"):
        run(_cfg(tiny_model, pref_data, tmp_path / "a", stage="kto", dataset="pairs"))
    with pytest.raises(UserError, match="stage rm cannot train on it.*ranking"):
        run(_cfg(tiny_model, pref_data, tmp_path / "b", stage="rm", dataset="kto"))


# ---------------------------------------------------------------- estimate
@pytest.mark.parametrize("stage,kw", [("rm", {}), ("kto", {"dataset": "kto"}), ("dpo", {"pref_loss": "orpo"})])
def test_estimate_counts_the_steps_of_the_real_run(tiny_model, pref_data, tmp_path, stage, kw):
    from engine.insight import estimate as E
    ns = _cfg(tiny_model, pref_data, tmp_path / "run", stage=stage, max_steps=-1, num_train_epochs=0.5,
              per_device_train_batch_size=3, val_size=4, **kw)
    est = E.estimate(values={k: v for k, v in ns.values.items() if not k.startswith("_")})
    run(ns)
    st = rundir.read_status(tmp_path / "run")
    assert est["steps"]["total_steps"] == st["total_steps"] == st["step"]
    assert est["samples"]["train_rows"] == json.loads((tmp_path / "run" / rundir.STATS).read_text())["train_rows"]


def test_estimate_memory_by_stage(tiny_model, pref_data, tmp_path):
    """Parameter counts equal the model training builds; reference-free losses need no reference copy; rm has no
    vocabulary-sized logits; pairs double the tokens of a micro-batch."""
    from engine.insight import estimate as E
    from engine.models.loader import load_model
    from engine.train.methods import apply_method

    def mem(**kw):
        ns = _cfg(tiny_model, pref_data, tmp_path / "x", **kw)
        p = E.param_facts(ns)
        return ns, p, E.memory(ns, p, 30, "cpu")

    for method in ("lora", "freeze", "full"):
        ns, p, _ = mem(stage="rm", finetuning_type=method, freeze_trainable_layers=1)
        model = apply_method(load_model(ns, trainable=True, reward_head=True), ns)
        real = sum(x.numel() for x in model.parameters() if x.requires_grad)
        assert (p["trainable"], p["total"]) == (real, sum(x.numel() for x in model.parameters())), method
    _, p_full, sigmoid = mem(finetuning_type="full")
    _, _, orpo = mem(finetuning_type="full", pref_loss="orpo")
    _, _, simpo = mem(finetuning_type="full", pref_loss="simpo")
    _, _, kto = mem(finetuning_type="full", stage="kto", dataset="kto")
    ref = p_full["total"] * 4
    assert sigmoid["parts"]["weights"] - orpo["parts"]["weights"] == ref == kto["parts"]["weights"] - \
        orpo["parts"]["weights"]
    assert simpo["parts"]["weights"] == orpo["parts"]["weights"]
    assert sigmoid["tokens_per_micro_batch"] == 2 * kto["tokens_per_micro_batch"]
    _, _, rm = mem(stage="rm", finetuning_type="full")
    assert rm["parts"]["activations"] < orpo["parts"]["activations"]  # no 49k-wide logits
    _, _, sigmoid_lora = mem()
    _, _, orpo_lora = mem(pref_loss="orpo")
    assert sigmoid_lora["parts"]["weights"] == orpo_lora["parts"]["weights"]  # LoRA: the base is the reference


def test_inspect_reads_each_stage_its_data(tiny_model, pref_data, tmp_path):
    from engine.insight.inspector import inspect_dataset
    base = {k: v for k, v in _cfg(tiny_model, pref_data, tmp_path / "x").values.items() if not k.startswith("_")}
    kto = inspect_dataset(values={**base, "stage": "kto", "dataset": ["kto"]})
    assert kto["stage"] == "kto" and kto["kept"] == 24 and kto["dropped"] == 0
    assert [trained for _, trained in kto["sample"]] == [False, True] and kto["sample"][1][0].endswith("<|im_end|>")
    rm = inspect_dataset(values={**base, "stage": "rm", "dataset": ["pairs"]})
    assert rm["stage"] == "rm" and rm["kept"] == 24 and len(rm["sample"]) == 5  # prompt + chosen, prompt + rejected


def test_a_reward_model_is_refused_for_chat(tiny_model, pref_data, tmp_path):
    """Its adapter or full weights load only as a reward model; chat / export get a message, not a broken model."""
    from engine.models.loader import load_model
    from engine.errors import UserError
    out = tmp_path / "rm"
    run(_cfg(tiny_model, pref_data, out, stage="rm", max_steps=1))
    with pytest.raises(UserError, match="reward model"):
        load_model(as_args({"model_name_or_path": str(tiny_model), "adapter_name_or_path": str(out)}, "infer"))
    full = tmp_path / "rm_full"
    run(_cfg(tiny_model, pref_data, full, stage="rm", max_steps=1, finetuning_type="full"))
    with pytest.raises(UserError, match="reward / classification model"):
        load_model(as_args({"model_name_or_path": str(full)}, "infer"))
    assert load_model(as_args({"model_name_or_path": str(full)}, "infer"), reward_head=True).config.num_labels == 1


@pytest.mark.parametrize("name", ["dpo", "orpo", "simpo", "kto", "reward"])
def test_example_recipes_name_data_their_stage_reads(name):
    from engine.data.registry import list_datasets
    root = Path(__file__).resolve().parent.parent
    ns = load_config(root / "examples" / "train_lora" / f"smollm2_lora_{name}.yaml", [])
    assert set(ns.dataset) <= set(list_datasets(root / "data", ns.stage)), (ns.stage, ns.dataset)


def test_rm_and_kto_rows_fit_cutoff_len(bundled_model):
    """Too long for cutoff_len: the prompt keeps its end (question + assistant header), the answer its start;
    rm pairs share the same prompt ids, so their rewards compare answers, not cuts."""
    from engine.data import processing as P
    from engine.data.templates import get_template
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(bundled_model)
    tpl = get_template("chatml", tok)
    long_q = "Tell me about rivers. " * 40
    msgs = [{"role": "user", "content": long_q}]
    rm = P.rm_batch({"system": [""], "messages": [msgs], "chosen": ["A river is a stream of water. " * 10],
                     "rejected": ["No."]}, tok, tpl, 64)
    c, r = rm["chosen_ids"][0], rm["rejected_ids"][0]
    assert len(c) == 64 and len(r) < 64 and rm[P.TRUNC][0] and rm[P.LEN][0] > 64
    shared = len(r) - len(tok.encode(tpl.render_response("No."), add_special_tokens=False))
    assert c[:shared] == r[:shared] and tok.decode(c[:shared]).endswith("<|im_start|>assistant\n")
    kto = P.kto_batch({"system": [""], "messages": [msgs], "completion": ["Sure."], "label": [True]}, tok, tpl, 64)
    assert kto["prompt"][0].endswith("<|im_start|>assistant\n") and kto[P.TRUNC][0]
    assert len(tok.encode(kto["prompt"][0] + kto["completion"][0], add_special_tokens=False)) <= 64
    short = P.kto_batch({"system": [""], "messages": [[{"role": "user", "content": "Hi"}]], "completion": ["Hello."],
                         "label": [False]}, tok, tpl, 64)
    assert not short[P.TRUNC][0] and short["label"] == [False] and short["prompt"][0] == tpl.render(
        [{"role": "user", "content": "Hi"}])


def test_auto_precision_of_dpo_on_a_bf16_cpu():
    """bench/peer.py's DPO workload in bf16 autocast: padded batches ended 3.7 % / 3.2 % above fp32's losses, batches
    without padding (engine.train.unpad, the default) within 2 %. On a CPU precision=auto picks bf16 for the
    latter only, and says why it does not for the others; asked for, bf16 stays."""
    from engine.precision import choose
    cpu = {"device": "cpu", "name": "cpu", "bf16": True}
    assert choose({"stage": "dpo"}, cpu)["precision"] == "bf16"
    assert choose({"stage": "dpo", "pref_loss": "ipo", "padding_free": True}, cpu)["precision"] == "bf16"
    for values in ({"stage": "dpo", "padding_free": False}, {"stage": "dpo", "pref_loss": "orpo"}):
        dpo = choose(values, cpu)
        assert dpo["precision"] == "fp32" and "dpo" in dpo["why"] and "dpo" in dpo["why_zh"], values
    assert choose({"stage": "sft"}, cpu)["precision"] == "bf16"
    assert choose({"stage": "dpo", "padding_free": False, "precision": "bf16"}, cpu)["precision"] == "bf16"
    assert choose({"stage": "dpo", "padding_free": False}, {"device": "cuda", "name": "gpu", "bf16": True}
                  )["precision"] == "bf16"

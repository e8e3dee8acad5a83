"""The schema drives the run: every train argument reaches TrainingArguments or names what reads it instead,
the preprocessing cache key follows the `preprocess` arguments, Namespaces are always full, and every
shipped recipe loads and validates."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from engine.args import ARGS, BY_NAME, READ_BY, Namespace, defaults, values_of
from engine.config import changed, load_config, save_config, to_command
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
TRAIN_ARGS = [a for a in ARGS if "train" in a.commands]


def _other(a, value=None):
    """A valid value of `a` that differs from its default (or from `value`)."""
    cur = a.default if value is None else value
    if a.choices:
        # cosine_with_min_lr needs extra kwargs; a single choice (quantization_method) has no other value
        return next((c for c in a.choices if c != cur and c != "cosine_with_min_lr"), cur)
    if a.type == "bool":
        return not cur
    if a.type in ("int", "float"):
        base = cur if cur is not None else (a.min if a.min is not None else 1)
        new = base + 1 if a.type == "int" else base + 0.5
        if a.max is not None and new > a.max:
            new = base - 1 if a.type == "int" else base / 2
        return type(base)(new) if a.type == "int" else float(new)
    if a.type == "list":
        return ["changed"]
    return "changed"


# ---------------------------------------------------------------- TrainingArguments from the schema
def test_every_train_argument_is_mapped_or_names_its_reader():
    unaccounted = [a.name for a in TRAIN_ARGS if not (a.hf or a.reader or a.compat)]
    assert unaccounted == [], "give these an hf= field or a read_by= reason in engine/args.py"
    both = [a.name for a in ARGS if a.hf and a.read_by]
    assert both == [], "an argument is either passed to TrainingArguments or read elsewhere, not both"
    # groups that are TrainingArguments territory have no blanket reader: each argument says
    assert not {"train", "extra", "dpo", "output"} & set(READ_BY)
    assert all(g in {a.group for a in ARGS} for g in READ_BY)


STAGES = BY_NAME["stage"].choices
PREC = {"bf16": False, "fp16": False, "use_cpu": True}


@pytest.mark.parametrize("stage", STAGES)
def test_hf_fields_exist_on_the_stage_config(tmp_path, stage):
    from engine.train.workflow import training_arguments
    cls = type(training_arguments(load_config(None, {"dataset": "identity", "output_dir": str(tmp_path)}), PREC,
                                  stage))
    fields = {f.name for f in dataclasses.fields(cls)}
    for a in ARGS:
        if a.hf and a.applies(stage=stage):
            assert "train" in a.commands, a.name
            assert a.hf in fields, f"{a.name}: {a.hf} is not a field of {cls.__name__} (stage {stage})"
    targets = [a.hf for a in ARGS if a.hf and a.applies(stage=stage)]
    assert len(targets) == len(set(targets)), "two arguments map to the same field"


def test_converted_fields_belong_to_mapped_arguments():
    from engine.train.workflow import CONVERT
    assert all(BY_NAME[k].hf for k in CONVERT), [k for k in CONVERT if not BY_NAME[k].hf]


def _ns_with_every_hf_arg_changed(tmp_path, stage):
    v = {"dataset": ["identity"], "output_dir": str(tmp_path / "o"), "stage": stage}
    fixed = {"optim": "sgd", "eval_strategy": "steps", "deepspeed": None,  # deepspeed: test_distributed
             "output_dir": v["output_dir"], "report_to": "none"}
    for a in ARGS:
        if a.hf and a.applies(stage=stage):
            v[a.name] = fixed[a.name] if a.name in fixed else _other(a)
    return Namespace(v)


@pytest.mark.parametrize("stage", STAGES)
def test_training_arguments_carry_every_mapped_value(tmp_path, stage):
    from engine.train.workflow import CONVERT, training_arguments
    ns = _ns_with_every_hf_arg_changed(tmp_path, stage)
    prec = dict(PREC)
    targs = training_arguments(ns, prec, stage)
    assert ns.bf16 is ns.fp16 is True and ns.warmup_steps > 0 and ns.eval_strategy == "steps"
    converted = {  # the fields CONVERT rewrites, by value (not through CONVERT itself)
        "bf16": False, "fp16": False,     # asked for; PREC's device has neither
        "warmup_steps": ns.warmup_steps,  # a step count (> 0) wins over warmup_ratio
        "eval_steps": ns.eval_steps,      # eval_strategy=steps keeps the interval given
        "report_to": [],                  # "none": no logging integration
        "fsdp": True,                     # a mode turns FSDP on; its settings go to fsdp_config
    }
    assert set(converted) == set(CONVERT), "a new conversion needs its expected value here"
    checked = 0
    for a in ARGS:
        if not (a.hf and a.applies(stage=stage)):
            continue
        want = converted[a.name] if a.name in CONVERT else getattr(ns, a.name)
        got = getattr(targs, a.hf)
        if isinstance(want, float):
            assert got == pytest.approx(want), a.name
        else:
            assert got == want, f"{a.name} -> {a.hf}: {got!r} != {want!r}"
        if a.name not in CONVERT and a.name not in ("deepspeed", "report_to"):
            assert got != a.default, f"{a.name}: the test should set a non-default value"
        checked += 1
    assert checked == sum(1 for a in ARGS if a.hf and a.applies(stage=stage))
    assert targs.bf16 is False and ns.bf16 is True  # precision is what the device supports, not what was asked
    assert targs.eval_steps == ns.eval_steps != BY_NAME["eval_steps"].default and targs.use_cpu is True
    if stage == "dpo":  # the preference arguments pick trl's loss (engine.train.dpo reads them)
        t2 = training_arguments(Namespace({**ns.values, "pref_ftx": 0.5, "pref_beta": 0.3}), prec, stage)
        assert t2.beta == 0.3 and t2.loss_type == ["sigmoid", "sft"]
        assert t2.loss_weights == [1.0, 0.5] and t2.max_length == ns.cutoff_len


def test_warmup_and_report_to_conversions(tmp_path):
    from engine.train.workflow import report_to, training_arguments
    prec = dict(PREC)
    base = {"dataset": "identity", "output_dir": str(tmp_path / "o"), "warmup_ratio": "0.25"}
    targs = training_arguments(load_config(None, base), prec, "sft")
    assert targs.warmup_steps == 0.25  # transformers 5: warmup_steps below 1 is a fraction of the steps
    targs = training_arguments(load_config(None, {**base, "warmup_steps": "7"}), prec, "sft")
    assert targs.warmup_steps == 7 and targs.report_to == []
    assert report_to("none") == [] and report_to(None) == [] and report_to("tensorboard") == ["tensorboard"]
    assert report_to("tensorboard, wandb") == ["tensorboard", "wandb"]


def test_report_to_is_kept_in_the_preview_and_the_saved_yaml(tmp_path):
    import shlex
    ns = load_config(None, ["dataset=identity", "report_to=tensorboard", f"output_dir={tmp_path / 'o'}"])
    assert changed(ns)["report_to"] == "tensorboard"
    tokens = shlex.split(to_command(ns.values, program="tuneboard"))
    assert "report_to=tensorboard" in tokens
    save_config(ns, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").report_to == "tensorboard"
    assert "report_to" not in changed(load_config(None, ["dataset=identity"]))  # the default stays out


# ---------------------------------------------------------------- preprocessing cache key
@pytest.fixture(scope="module")
def key_inputs():
    from transformers import AutoTokenizer

    from engine.data.records import resolve as _resolve
    from engine.data.registry import load_dataset_info
    from engine.data.templates import get_template
    tok = AutoTokenizer.from_pretrained(ROOT / "models" / "SmolLM2-135M-Instruct")
    template = get_template("chatml", tok)
    info = load_dataset_info(ROOT / "data")
    attrs = _resolve(["identity"], info, str(ROOT / "data"), "sft")
    return tok, template, attrs


def test_cache_key_follows_the_preprocess_arguments(key_inputs):
    from engine.data.loader import cache_key
    tok, template, attrs = key_inputs
    base = Namespace({"dataset": ["identity"]})
    k0 = cache_key(base, tok, template, "sft", attrs, [])
    assert cache_key(Namespace({"dataset": ["identity"]}), tok, template, "sft", attrs, []) == k0
    preprocess = [a for a in ARGS if a.preprocess]
    assert {"cutoff_len", "packing", "train_on_prompt", "default_system", "val_size"} <= {a.name for a in preprocess}
    for a in ARGS:
        if a.name in ("dataset", "eval_dataset", "dataset_dir", "template", "model_name_or_path", "stage"):
            continue  # these enter through what they resolve to (files, template fields, vocabulary)
        ns = Namespace({"dataset": ["identity"], a.name: _other(a)})
        k = cache_key(ns, tok, template, "sft", attrs, [])
        if a.preprocess:
            assert k != k0, f"{a.name} is marked preprocess but does not change the cache key"
        else:
            assert k == k0, f"{a.name} changes the cache key but is not marked preprocess=True"
    # with an eval_dataset there is no split: val_size and seed do not change the data
    k_eval = cache_key(base, tok, template, "sft", attrs, attrs)
    for name in ("val_size", "seed"):
        ns = Namespace({"dataset": ["identity"], name: _other(BY_NAME[name])})
        assert cache_key(ns, tok, template, "sft", attrs, attrs) == k_eval, name


# ---------------------------------------------------------------- Namespace
def test_load_config_returns_a_full_namespace_with_explicit_apart(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("dataset: identity\nlora_rank: 4\n")
    for finalize in (True, False):
        ns = load_config(p, ["learning_rate=1e-4"], finalize=finalize)
        assert set(ns.values) == set(BY_NAME), "every argument, and nothing else"
        assert ns.explicit == {"dataset", "lora_rank", "learning_rate"}
        assert ns.max_new_tokens == BY_NAME["max_new_tokens"].default  # other commands' arguments too
    assert not any(k.startswith("_") for k in ns.values)
    partial = Namespace({"cutoff_len": 64})
    assert partial.cutoff_len == 64 and partial.lora_rank == 8 and partial.explicit == frozenset()
    with pytest.raises(AttributeError):
        partial.not_an_argument  # noqa: B018


def test_values_of_reads_every_kind_of_argument_holder():
    from types import SimpleNamespace
    for given in (Namespace({"cutoff_len": 64}), {"cutoff_len": 64}, SimpleNamespace(cutoff_len=64)):
        v = values_of(given)
        assert v["cutoff_len"] == 64 and v["lora_rank"] == 8 and set(BY_NAME) <= set(v)
    assert values_of(None) == defaults()
    ns = Namespace({"lora_target": ["q_proj"]})
    values_of(ns)["lora_target"].append("x")  # a copy of the dict; the namespace is not changed through it
    assert values_of(ns)["cutoff_len"] == ns.cutoff_len


def test_namespace_copies_and_pickles():
    import copy
    import pickle
    ns = Namespace({"cutoff_len": 64}, explicit=["cutoff_len"])
    for other in (copy.deepcopy(ns), pickle.loads(pickle.dumps(ns))):
        assert other == ns and other.cutoff_len == 64 and other.explicit == {"cutoff_len"}


# ---------------------------------------------------------------- shipped recipes
COMMAND_OF = {"train_lora": "train", "train_qlora": "train", "train_freeze": "train", "train_full": "train",
              "train_grpo": "train", "inference": "infer", "api": "infer", "eval": "infer", "merge_lora": "export"}


def _examples():
    return sorted((ROOT / "examples").rglob("*.yaml"))


def test_examples_are_all_covered():
    assert _examples(), "no example recipes found"
    folders = {p.relative_to(ROOT / "examples").parts[0] for p in _examples()}
    assert folders <= set(COMMAND_OF), f"add the command of {folders - set(COMMAND_OF)} to COMMAND_OF"


@pytest.mark.parametrize("path", _examples(), ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_recipe_loads_and_validates(path, monkeypatch):
    from engine.data.registry import load_dataset_info
    from engine.models.loader import adapter_paths
    monkeypatch.chdir(ROOT)  # recipes name paths from the repo root
    command = COMMAND_OF[path.relative_to(ROOT / "examples").parts[0]]
    from engine.models.quantize import backend
    if "quantization_bit" in load_config(path, (), command, finalize=False).explicit and not backend()[0]:
        with pytest.raises(ConfigError, match="quantization_bit: 4-bit .QLoRA. training needs bitsandbytes"):
            load_config(path, (), command)  # refused on a machine where bitsandbytes cannot run, before loading
        return
    ns = load_config(path, (), command)
    assert ns.explicit, f"{path}: an empty recipe"
    names = (ns.dataset or []) + (ns.eval_dataset or [])
    if names:
        info = load_dataset_info(ns.dataset_dir)
        missing = [n for n in names if n not in info]
        assert not missing, f"{path}: datasets {missing} are not in {ns.dataset_dir}/dataset_info.json"
    assert Path(ns.model_name_or_path).is_dir(), f"{path}: model {ns.model_name_or_path} not found"
    for adapter in adapter_paths(ns):  # adapters come from training the train_* recipes: they are saves/ paths
        assert adapter.startswith("saves/"), f"{path}: adapter {adapter} is not a run output under saves/"

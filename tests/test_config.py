import pytest

from engine.args import ARGS
from engine.config import load_config, to_command, parse_overrides
from engine.errors import ConfigError


def test_schema_is_complete():
    for a in ARGS:
        assert a.help_en and a.help_zh, a.name
        assert a.group, a.name
        if a.choices and a.default is not None and a.type != "list":
            assert a.default in a.choices, a.name


def test_overrides_are_typed():
    ns = load_config(None, ["dataset=identity,alpaca", "learning_rate=1e-4", "bf16=true", "max_samples=10"])
    assert ns.dataset == ["identity", "alpaca"]
    assert ns.learning_rate == pytest.approx(1e-4)
    assert ns.bf16 is True and ns.max_samples == 10
    assert ns.lora_alpha == 2 * ns.lora_rank


def test_yaml_then_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("dataset: identity\nlora_rank: 4\nlearning_rate: 0.001\n")
    ns = load_config(p, ["lora_rank=16"])
    assert ns.lora_rank == 16 and ns.learning_rate == 0.001


@pytest.mark.parametrize("item,field,words", [
    ("learnig_rate=1", "learnig_rate", "learning_rate"),
    ("lora_rank=0", "lora_rank", "below"),
    ("lora_rank=abc", "lora_rank", "whole number"),
    ("stage=rlhf", "stage", "pt, sft, rm, dpo, kto"),
    ("val_size=-1", "val_size", "below"),
    ("bf16=maybe", "bf16", "true or false"),
])
def test_bad_values_name_the_field(item, field, words):
    with pytest.raises(ConfigError) as e:
        load_config(None, ["dataset=identity", item])
    assert e.value.field == field
    assert field in str(e.value) and words in str(e.value)


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("dataset: identity\nlora_rank: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*line"):
        load_config(p)


def test_missing_dataset_and_bad_overrides():
    with pytest.raises(ConfigError, match="dataset"):
        load_config(None, [])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["learning_rate"])


def test_command_preview_round_trips():
    ns = load_config(None, ["dataset=identity", "learning_rate=2e-4", "default_system=You are 'nice'",
                            "output_dir=saves/x"], finalize=False)
    cmd = to_command(ns.values, program="tuneboard")
    import shlex
    tokens = shlex.split(cmd)
    assert tokens[:2] == ["tuneboard", "train"]
    again = load_config(None, tokens[2:], finalize=False)
    for k in ("dataset", "learning_rate", "default_system", "output_dir"):
        assert again.values[k] == ns.values[k]
    assert "lora_rank" not in cmd  # defaults are left out


def test_llamafactory_recipe_keys_are_accepted(tmp_path):
    # the keys of a typical LLaMA-Factory LoRA SFT recipe (written here from its documented key list)
    p = tmp_path / "lf.yaml"
    p.write_text("""
model_name_or_path: models/SmolLM2-135M-Instruct
trust_remote_code: true
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
dataset: identity,alpaca_en_demo
template: chatml
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4
output_dir: saves/smol/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
""")
    ns = load_config(p)
    assert ns.dataset == ["identity", "alpaca_en_demo"] and ns.learning_rate == 1e-4
    # the recipe's values, each one different from our default, arrive as given
    assert (ns.cutoff_len, ns.max_samples, ns.per_device_train_batch_size, ns.gradient_accumulation_steps,
            ns.warmup_ratio, ns.logging_steps, ns.save_steps, ns.template) == (2048, 1000, 1, 8, 0.1, 10, 500, "chatml")


def test_kto_batch_of_one_keeps_the_effective_batch_or_is_refused():
    """KTO compares each answer with a mismatched one of its batch: LLaMA-Factory's 1 x 8 recipe runs as 2 x 4."""
    ns = load_config(None, {"stage": "kto", "dataset": "kto_en_demo", "per_device_train_batch_size": "1",
                            "gradient_accumulation_steps": "8"})
    assert (ns.per_device_train_batch_size, ns.gradient_accumulation_steps) == (2, 4)
    with pytest.raises(ConfigError, match="per_device_train_batch_size: KTO needs at least 2.*set it to 2"):
        load_config(None, {"stage": "kto", "dataset": "kto_en_demo", "per_device_train_batch_size": "1"})
    ns = load_config(None, {"stage": "sft", "dataset": "identity", "per_device_train_batch_size": "1",
                            "gradient_accumulation_steps": "8"})
    assert (ns.per_device_train_batch_size, ns.gradient_accumulation_steps) == (1, 8)

"""LLaMA-Factory's own files, unchanged: a data folder in its dataset_info.json schema (local alpaca / sharegpt /
openai files, hub-only entries, media, tools, kto, ranking, pre-training text, split / num_samples / subset / folder)
and recipes shaped like its examples/train_lora/*.yaml, with only model_name_or_path (and dataset_dir, output_dir)
pointed here. Every file below is written for this test; none is copied from LLaMA-Factory.

Local text datasets train (one step per stage); hub-only entries fail offline naming the dataset; media entries say
multimodal training is not supported; an unknown template lists the known ones. Entries with a `tools` column or a
`kto_tag` column belong to other stages/features (tool calling, KTO) and are not trained here.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import compat_notes, load_config
from engine.errors import ConfigError
from engine.data.records import load_records
from engine.data.registry import dataset_stage, list_datasets, load_dataset_info
from engine.train import rundir
from engine.train.workflow import run
from engine.errors import UserError
from kits.args import as_args

ALPACA = [{"instruction": f"Name a colour that starts with the letter {c}.", "input": "",
           "output": f"{w} starts with {c}."} for c, w in (("B", "Blue"), ("G", "Green"), ("R", "Red"),
                                                           ("P", "Purple"), ("O", "Orange"), ("Y", "Yellow"))]
ALPACA_ZH = [{"instruction": f"把数字 {i} 写成汉字。", "input": "", "output": z}
             for i, z in ((1, "一"), (2, "二"), (3, "三"), (4, "四"), (5, "五"))]
IDENTITY = [{"instruction": q, "input": "", "output": a} for q, a in (
    ("Who are you?", "I am {{name}}, an assistant built by {{author}}."),
    ("What is your name?", "My name is {{name}}."),
    ("Who made you?", "{{author}} made me."),
    ("hi", "Hello! I am {{name}}. How can I help?"))]
SHAREGPT = [{"conversations": [{"from": "human", "value": f"How many legs does a {a} have?"},
                               {"from": "gpt", "value": f"A {a} has {n} legs."},
                               {"from": "human", "value": "And two of them?"},
                               {"from": "gpt", "value": f"Two have {2 * n} legs."}],
             "system": "Answer briefly."} for a, n in (("cat", 4), ("bird", 2), ("spider", 8), ("ant", 6))]
OPENAI = [{"messages": [{"role": "system", "content": "You are terse."},
                        {"role": "user", "content": f"Capital of {c}?"},
                        {"role": "assistant", "content": k}]}
          for c, k in (("France", "Paris."), ("Japan", "Tokyo."), ("Peru", "Lima."), ("Kenya", "Nairobi."))]
HISTORY = [{"question": f"And {i} times 2?", "answer": f"{2 * i}.", "sys": "Do arithmetic.",
            "past": [["What is 1 plus 1?", "2."]]} for i in range(1, 5)]
C4 = [{"text": f"Document {i}. The tide rose over the flats at dawn and the gulls went inland, as they did "
               f"every autumn of year {1950 + i}."} for i in range(6)]
WIKI = "\n".join(f"Line {i}: a glacier is a slow river of ice that carves valleys over many thousands of years."
                 for i in range(6)) + "\n"
DPO_SHAREGPT = [{"conversations": [{"from": "human", "value": f"Give me a word that rhymes with {w}."}],
                 "chosen": {"from": "gpt", "value": f"{r} rhymes with {w}."},
                 "rejected": {"from": "gpt", "value": "I don't know."}}
                for w, r in (("cat", "Hat"), ("tree", "Bee"), ("moon", "Spoon"), ("light", "Night"))]
DPO_ALPACA = [{"instruction": f"Spell {w} backwards.", "chosen": w[::-1], "rejected": w}
              for w in ("stone", "river", "cloud", "ember")]
KTO = [{"messages": [{"role": "user", "content": f"Is {n} even?"},
                     {"role": "assistant", "content": "Yes." if n % 2 == 0 else "No."}], "label": True}
       for n in range(4)]
TOOLS = [{"conversations": [{"from": "human", "value": "What is the weather in Oslo?"},
                            {"from": "function_call", "value": json.dumps({"name": "weather", "arguments":
                                                                           {"city": "Oslo"}})},
                            {"from": "observation", "value": json.dumps({"temp_c": 3})},
                            {"from": "gpt", "value": "It is 3 degrees in Oslo."}],
          "tools": json.dumps([{"name": "weather", "description": "current weather",
                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])}]
MEDIA = [{"messages": [{"role": "user", "content": "<image>What is shown?"},
                       {"role": "assistant", "content": "A red square."}], "images": ["pics/red.png"],
          "videos": ["clips/a.mp4"], "audios": ["sounds/a.wav"]}]

HUB_ONLY = {  # name -> the entry (its hub id is what the message names)
    "alpaca_en": {"hf_hub_url": "llamafactory/alpaca_en", "ms_hub_url": "llamafactory/alpaca_en",
                  "om_hub_url": "someone/alpaca_en"},
    "ultrachat_sft": {"hf_hub_url": "HuggingFaceH4/ultrachat_200k", "ms_hub_url": "AI-ModelScope/ultrachat_200k",
                      "split": "train_sft", "formatting": "sharegpt", "columns": {"messages": "messages"},
                      "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                               "assistant_tag": "assistant"}},
    "adgen_eval": {"hf_hub_url": "HasturOfficial/adgen", "split": "validation",
                   "columns": {"prompt": "content", "response": "summary"}},
    "ms_only": {"ms_hub_url": "someone/ms-only-sft"},
    "om_only": {"om_hub_url": "someone/om-only-sft"},
    "pile_subset": {"hf_hub_url": "someone/pile", "subset": "default", "columns": {"prompt": "text"}},
    "code_folder": {"hf_hub_url": "someone/code", "folder": "python", "columns": {"prompt": "content"}},
    "hub_pairs": {"hf_hub_url": "someone/pairs", "ranking": True,
                  "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
}
MEDIA_ENTRIES = {  # name -> (stage it would be, the media key, its column)
    "mllm_demo": ("sft", "images", "images"), "mllm_video_demo": ("sft", "videos", "videos"),
    "mllm_audio_demo": ("sft", "audios", "audios"), "pairs_with_image": ("dpo", "images", "image"),
    "llava_hub": ("sft", "images", "images"),
}
SFT_LOCAL = ["identity", "alpaca_en_demo", "alpaca_zh_demo", "sharegpt_demo", "openai_demo", "history_demo",
             "identity_x10", "folder_demo", "csv_demo"]
PT_LOCAL = ["c4_demo", "wiki_demo"]
DPO_LOCAL = ["dpo_en_demo", "dpo_alpaca_demo"]
ROWS = {"identity": 4, "alpaca_en_demo": 6, "alpaca_zh_demo": 5, "sharegpt_demo": 4, "openai_demo": 4,
        "history_demo": 4, "identity_x10": 10, "folder_demo": 6, "csv_demo": 3, "c4_demo": 6, "wiki_demo": 6,
        "dpo_en_demo": 4, "dpo_alpaca_demo": 4}
ROLE_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def _dump(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


@pytest.fixture(scope="module")
def lf_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lf") / "data"
    _dump(d / "identity.json", IDENTITY)
    _dump(d / "alpaca_en_demo.json", ALPACA)
    _dump(d / "alpaca_zh_demo.json", ALPACA_ZH)
    _dump(d / "sharegpt_demo.json", SHAREGPT)
    _dump(d / "openai_demo.json", OPENAI)
    _dump(d / "history_demo.json", HISTORY)
    (d / "c4_demo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in C4), encoding="utf-8")
    (d / "wiki_demo.txt").write_text(WIKI, encoding="utf-8")
    _dump(d / "dpo_en_demo.json", DPO_SHAREGPT)
    _dump(d / "dpo_alpaca_demo.json", DPO_ALPACA)
    _dump(d / "kto_en_demo.json", KTO)
    _dump(d / "glaive_toolcall_demo.json", TOOLS)
    for name in ("mllm_demo", "mllm_video_demo", "mllm_audio_demo"):
        _dump(d / f"{name}.json", MEDIA)
    _dump(d / "pairs_with_image.json", [{"instruction": "Describe it.", "chosen": "A square.", "rejected": "No.",
                                         "image": "pics/red.png"}])
    (d / "folder_demo").mkdir()
    for part in (0, 1):
        (d / "folder_demo" / f"part-{part}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in ALPACA[part * 3:(part + 1) * 3]), encoding="utf-8")
    (d / "csv_demo.csv").write_text("q,a\nWhat is 2+2?,4\nWhat is 3+3?,6\nWhat is 4+4?,8\n", encoding="utf-8")
    (d / "script_only").mkdir()
    (d / "script_only" / "script_only.py").write_text("# a datasets loading script\n", encoding="utf-8")
    info = {
        "identity": {"file_name": "identity.json"},
        "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
        "alpaca_zh_demo": {"file_name": "alpaca_zh_demo.json"},
        "sharegpt_demo": {"file_name": "sharegpt_demo.json", "formatting": "sharegpt",
                          "columns": {"messages": "conversations", "system": "system"}},
        "openai_demo": {"file_name": "openai_demo.json", "formatting": "sharegpt", "columns": {"messages": "messages"},
                        "tags": {**ROLE_TAGS, "system_tag": "system"}},
        "history_demo": {"file_name": "history_demo.json",
                         "columns": {"prompt": "question", "response": "answer", "system": "sys", "history": "past"}},
        "identity_x10": {"file_name": "identity.json", "num_samples": 10},
        "folder_demo": {"file_name": "folder_demo"},
        "csv_demo": {"file_name": "csv_demo.csv", "columns": {"prompt": "q", "response": "a"}},
        "glaive_toolcall_demo": {"file_name": "glaive_toolcall_demo.json", "formatting": "sharegpt",
                                 "columns": {"messages": "conversations", "tools": "tools"}},
        "mllm_demo": {"file_name": "mllm_demo.json", "formatting": "sharegpt",
                      "columns": {"messages": "messages", "images": "images"}, "tags": ROLE_TAGS},
        "mllm_video_demo": {"file_name": "mllm_video_demo.json", "formatting": "sharegpt",
                            "columns": {"messages": "messages", "videos": "videos"}, "tags": ROLE_TAGS},
        "mllm_audio_demo": {"file_name": "mllm_audio_demo.json", "formatting": "sharegpt",
                            "columns": {"messages": "messages", "audios": "audios"}, "tags": ROLE_TAGS},
        "llava_hub": {"hf_hub_url": "someone/llava-mini", "subset": "en", "formatting": "sharegpt",
                      "columns": {"messages": "messages", "images": "images"}, "tags": ROLE_TAGS},
        "pairs_with_image": {"file_name": "pairs_with_image.json", "ranking": True,
                             "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected",
                                         "images": "image"}},
        **HUB_ONLY,
        "dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt",
                        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
        "dpo_alpaca_demo": {"file_name": "dpo_alpaca_demo.json", "ranking": True,
                            "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
        "kto_en_demo": {"file_name": "kto_en_demo.json", "formatting": "sharegpt",
                        "columns": {"messages": "messages", "kto_tag": "label"}, "tags": ROLE_TAGS},
        "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}},
        "wiki_demo": {"file_name": "wiki_demo.txt", "columns": {"prompt": "text"}},
        "script_only": {"script_url": "script_only", "formatting": "sharegpt"},
    }
    (d / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return d


# ---------------------------------------------------------------- recipes shaped like examples/train_lora/*.yaml
RECIPE = """### model
model_name_or_path: {model}
trust_remote_code: true

### method
stage: {stage}
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
{method_extra}
### dataset
dataset: {dataset}
dataset_dir: {data}
{template}cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: {loader_workers}

### output
output_dir: {out}
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: {lr}
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
{eval}"""
EVAL = """
### eval
val_size: 0.1
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
"""


def recipe(path: Path, model, data, out, stage="sft", dataset="identity,alpaca_en_demo", template="qwen3_nothink",
           method_extra="", eval_part="", loader_workers=4, lr="1.0e-4") -> Path:
    path.write_text(RECIPE.format(model=model, stage=stage, dataset=dataset, data=data, out=out,
                                  template=f"template: {template}\n" if template else "", method_extra=method_extra,
                                  eval=eval_part, loader_workers=loader_workers, lr=lr), encoding="utf-8")
    return path


def _train(path: Path, **overrides) -> tuple[dict, Path]:
    ns = load_config(path, {"max_steps": "1", **overrides})  # one optimisation step: the data is what is tested
    return run(ns), Path(ns.output_dir)


# ---------------------------------------------------------------- the data folder
def test_the_whole_dataset_info_parses_and_lists_by_stage(lf_data):
    info = load_dataset_info(lf_data)
    assert len(info) == 29
    assert {n: dataset_stage(info[n]) for n in SFT_LOCAL + PT_LOCAL + DPO_LOCAL} == {
        **{n: "sft" for n in SFT_LOCAL}, **{n: "pt" for n in PT_LOCAL}, **{n: "dpo" for n in DPO_LOCAL}}
    sft = list_datasets(lf_data, "sft")
    assert set(SFT_LOCAL) <= set(sft) and not set(MEDIA_ENTRIES) & set(sft)  # no media dataset is offered
    assert list_datasets(lf_data, "pt") == ["pile_subset", "code_folder"] + PT_LOCAL  # file order
    assert (info["ultrachat_sft"].split, info["pile_subset"].subset, info["code_folder"].folder) == (
        "train_sft", "default", "python")
    assert info["om_only"].load_from == "om_hub" and info["alpaca_en"].load_from == "hf_hub"


@pytest.mark.parametrize("name", list(HUB_ONLY))
def test_hub_only_entries_fail_offline_naming_the_dataset(lf_data, name):
    stage = "dpo" if HUB_ONLY[name].get("ranking") else "pt" if name in ("pile_subset", "code_folder") else "sft"
    with pytest.raises(UserError) as e:
        load_records(as_args({"dataset": name, "dataset_dir": str(lf_data), "stage": stage}))
    msg = str(e.value)
    assert f"dataset {name!r}" in msg and "file_name" in msg  # what to do: a local copy named in file_name
    hub_id = HUB_ONLY[name].get("hf_hub_url") or HUB_ONLY[name].get("ms_hub_url") or HUB_ONLY[name]["om_hub_url"]
    assert hub_id in msg
    if name != "om_only":
        assert "HF_HUB_OFFLINE" in msg and "offline" in msg
    else:
        assert "Modelers hub" in msg and "not supported" in msg


@pytest.mark.parametrize("name", list(MEDIA_ENTRIES))
def test_media_entries_say_multimodal_is_not_supported(lf_data, name):
    stage, key, column = MEDIA_ENTRIES[name]
    with pytest.raises(UserError) as e:
        load_records(as_args({"dataset": f"alpaca_en_demo,{name}" if stage == "sft" else name,
                              "dataset_dir": str(lf_data), "stage": stage}))
    msg = str(e.value)
    assert "multimodal training is not supported" in msg
    assert f"dataset {name!r}" in msg and f"{key} column {column!r}" in msg


def test_a_loading_script_folder_says_scripts_are_not_supported(lf_data):
    with pytest.raises(UserError, match="script_only.*[Ll]oading scripts are not supported"):
        load_records(as_args({"dataset": "script_only", "dataset_dir": str(lf_data), "stage": "sft"}))


def test_every_local_text_dataset_converts_completely(lf_data):
    for stage, names in (("sft", SFT_LOCAL), ("pt", PT_LOCAL), ("dpo", DPO_LOCAL)):
        recs = load_records(as_args({"dataset": names, "dataset_dir": str(lf_data), "stage": stage,
                             "identity_name": "Tuney", "identity_author": "TB"}))
        for n in names:
            assert recs.report[n] == {"total": ROWS[n], "kept": ROWS[n], "skipped": {}}, n
    recs = load_records(as_args({"dataset": "history_demo,openai_demo", "dataset_dir": str(lf_data), "stage": "sft"}))
    first = recs.rows[0]
    assert first["system"] == "Do arithmetic." and [m["role"] for m in first["messages"]] == [
        "user", "assistant", "user", "assistant"]  # history turns come first
    assert recs.rows[4]["system"] == "You are terse."


# ---------------------------------------------------------------- the recipes
def test_unknown_template_lists_the_known_ones(tiny_model, lf_data, tmp_path):
    p = recipe(tmp_path / "qwen2_vl_lora_sft.yaml", tiny_model, lf_data, tmp_path / "out", template="qwen2_vl")
    with pytest.raises(UserError) as e:
        _train(p)
    msg = str(e.value)
    assert "unknown template 'qwen2_vl'" in msg and "known templates:" in msg
    for name in ("chatml", "llama3", "qwen", "qwen3_nothink", "auto"):
        assert name in msg
    assert rundir.read_status(tmp_path / "out")["state"] == "failed"


@pytest.fixture(scope="module")
def tiny_tok(tiny_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.mark.parametrize("name", ["qwen3", "qwen3_nothink", "llama3", "deepseek3", "deepseekr1", "glm4", "gemma3",
                                  "phi", "mistral", "yi", "qwen2"])
def test_llamafactory_template_names_load(tiny_model, tiny_tok, lf_data, tmp_path, name):
    from engine.data.templates import resolve_template
    ns = load_config(recipe(tmp_path / "r.yaml", tiny_model, lf_data, tmp_path / "out", template=name))
    assert resolve_template(ns, tiny_tok).name == name


def test_enable_thinking_false_in_a_recipe_turns_thinking_off(tiny_model, tiny_tok, lf_data, tmp_path):
    from engine.data.templates import resolve_template
    p = recipe(tmp_path / "r.yaml", tiny_model, lf_data, tmp_path / "out", template="qwen3")
    tok = tiny_tok
    msgs = [{"role": "user", "content": "Hi"}]
    on = resolve_template(load_config(p), tok)
    off = resolve_template(load_config(p, {"enable_thinking": "false"}), tok)
    assert not on.render(msgs).endswith("</think>\n\n") and off.render(msgs).endswith("<think>\n\n</think>\n\n")


def test_sft_recipe_trains_on_every_local_text_dataset(tiny_model, lf_data, tmp_path):
    out = tmp_path / "sft"
    p = recipe(tmp_path / "lora_sft.yaml", tiny_model, lf_data, out, dataset=",".join(SFT_LOCAL), template="chatml",
               eval_part=EVAL)
    metrics, out = _train(p)
    assert rundir.read_status(out)["state"] == "finished" and metrics["total_steps"] == 1
    stats = json.loads((out / rundir.STATS).read_text())
    assert stats["total"] == sum(ROWS[n] for n in SFT_LOCAL) and stats["dropped"] == 0
    assert stats["eval_samples"] > 0 and "eval_loss" in metrics
    assert (out / "adapter_model.safetensors").is_file()
    saved = load_config(out / "training_args.yaml")
    assert saved.ddp_timeout == 180000000 and saved.dataset == SFT_LOCAL  # ddp_timeout reaches the Trainer


def test_pretrain_recipe_trains_on_the_text_datasets(tiny_model, lf_data, tmp_path):
    p = recipe(tmp_path / "lora_pretrain.yaml", tiny_model, lf_data, tmp_path / "pt", stage="pt",
               dataset="c4_demo,wiki_demo", template=None, loader_workers=0)
    p.write_text(p.read_text() + "mix_strategy: interleave_under\n")
    metrics, out = _train(p)
    assert rundir.read_status(out)["state"] == "finished"
    assert json.loads((out / rundir.STATS).read_text())["total"] == ROWS["c4_demo"] + ROWS["wiki_demo"]
    log = (out / rundir.RUNNING_LOG).read_text()
    assert "mix_strategy=interleave_under: How datasets are mixed: ignored" in log  # a note, never silent


def test_dpo_recipe_trains_on_the_ranking_datasets(tiny_model, lf_data, tmp_path):
    p = recipe(tmp_path / "lora_dpo.yaml", tiny_model, lf_data, tmp_path / "dpo", stage="dpo",
               dataset=",".join(DPO_LOCAL), template="chatml", loader_workers=0, lr="5.0e-6",
               method_extra="pref_beta: 0.1\npref_loss: sigmoid  # choices: [sigmoid (dpo), orpo, simpo]\n")
    metrics, out = _train(p)
    assert rundir.read_status(out)["state"] == "finished" and metrics["total_steps"] == 1
    assert json.loads((out / rundir.STATS).read_text())["total"] == sum(ROWS[n] for n in DPO_LOCAL)


@pytest.mark.parametrize("stage,dataset", [("kto", "kto_en_demo"), ("rm", "dpo_en_demo")])
def test_kto_and_reward_recipes(tiny_model, lf_data, tmp_path, stage, dataset):
    p = recipe(tmp_path / f"lora_{stage}.yaml", tiny_model, lf_data, tmp_path / stage, stage=stage, dataset=dataset,
               template="chatml", loader_workers=0, method_extra="pref_beta: 0.1\n" if stage == "kto" else "")
    _, out = _train(p)
    assert rundir.read_status(out)["state"] == "finished"


def test_predict_recipe_points_to_eval(tiny_model, lf_data, tmp_path):
    p = tmp_path / "lora_predict.yaml"
    p.write_text(f"""### model
model_name_or_path: {tiny_model}
adapter_name_or_path: saves/tiny/lora/sft

### method
stage: sft
do_predict: true
finetuning_type: lora

### dataset
eval_dataset: identity,alpaca_en_demo
dataset_dir: {lf_data}
template: chatml
cutoff_len: 2048
max_samples: 50
overwrite_cache: true
preprocessing_num_workers: 16

### output
output_dir: {tmp_path / 'predict'}
overwrite_output_dir: true

### eval
per_device_eval_batch_size: 1
predict_with_generate: true
ddp_timeout: 180000000
""")
    with pytest.raises(ConfigError, match="tuneboard eval"):
        load_config(p)
    ns = load_config(p, command="infer")  # what `tuneboard eval` reads
    assert ns.eval_dataset == ["identity", "alpaca_en_demo"] and ns.max_samples == 50


def test_other_recipe_keys_are_accepted_with_a_note(tiny_model, lf_data, tmp_path):
    p = tmp_path / "preprocess_ray_vl.yaml"
    p.write_text(f"""model_name_or_path: {tiny_model}
image_max_pixels: 262144
video_max_pixels: 16384
trust_remote_code: true
stage: sft
do_train: true
finetuning_type: lora
lora_target: all
dataset: identity
dataset_dir: {lf_data}
template: chatml
tokenized_path: saves/tiny/dataset/sft
ray_num_workers: 4
output_dir: {tmp_path / 'o'}
""")
    ns = load_config(p)
    notes = "\n".join(compat_notes(ns))
    for key in ("tokenized_path", "ray_num_workers", "image_max_pixels", "video_max_pixels"):
        assert f"{key}=" in notes and "ignored" in notes
    assert "multimodal training is not supported" in notes and "do_train" not in notes  # default: no note
    with pytest.raises(ConfigError, match="stage: 'ppo' is not one of"):  # not "reward_model: unknown argument"
        load_config(None, {"reward_model": "saves/x", "stage": "ppo", "dataset": "identity"})


def test_qlora_recipe(tiny_model, lf_data, tmp_path):
    """examples/train_qlora/*.yaml style: quantization_bit + quantization_method: bnb on top of a LoRA recipe. Where
    bitsandbytes runs (requirements.txt pins it) it trains; elsewhere it is refused before anything is written."""
    from engine.models.quantize import backend
    extra = "quantization_bit: 4\nquantization_method: bnb  # choices: [bnb, hqq, eetq]\ndouble_quantization: true\n"
    p = recipe(tmp_path / "qlora_sft.yaml", tiny_model, lf_data, tmp_path / "qlora", template="chatml",
               dataset="identity", loader_workers=0, method_extra=extra)
    ok, why = backend()
    if not ok:
        with pytest.raises(ConfigError, match="quantization_bit: 4-bit .QLoRA. training needs bitsandbytes") as e:
            _train(p)
        assert e.value.field == "quantization_bit" and not (tmp_path / "qlora").exists()
        return
    metrics, out = _train(p)
    assert rundir.read_status(out)["state"] == "finished" and (out / "adapter_model.safetensors").is_file()
    assert load_config(out / "training_args.yaml").quantization_bit == 4

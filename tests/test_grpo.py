"""GRPO (stage grpo): prompt datasets, the rewards (presets and the user's own), the config rules, and runs of the
tiny model through trl's GRPOTrainer — one where the reward can only rise by learning, its curves, completions
table, doctor, estimate and resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.data.records import load_records
from engine.data.registry import list_datasets
from engine.train import rewards as R
from engine.errors import UserError
from kits.args import as_args

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- rewards
def test_answer_presets_read_the_final_answer():
    comps = ["The answer is 42.", "<think>6 x 7</think><answer>42</answer>", "42", "4,200", "about 41", "42.0"]
    refs = ["42", "42", "42", "4200", "42", "42"]
    assert R.answer_last_number(comps, answer=refs) == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert R.answer_numeric(comps, answer=refs) == [0.0, 1.0, 1.0, 1.0, 0.0, 1.0]  # the whole answer is the number
    assert R.answer_exact(comps, answer=refs) == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert R.answer_exact(["  Paris. "], answer=["paris"]) == [1.0]  # case, spacing and a final period ignored
    # a record without a reference is not scored (trl averages the others)
    assert R.answer_exact(["42"], answer=[None]) == [None] and R.answer_last_number(["42"], answer=[""]) == [None]
    assert R.answer_last_number(["no number"], answer=["3"]) == [0.0]


def test_format_length_and_json_presets():
    ns = load_config(None, {"dataset": "x", "stage": "grpo", "reward_length_min": "2", "reward_length_max": "3"},
                     finalize=False)
    fmt, length, js = (R.PRESETS[n].make(ns) for n in ("format", "length", "json"))
    assert (fmt.__name__, length.__name__, js.__name__) == ("format", "length", "json")  # the metrics' names
    assert fmt(["<think>a\nb</think>\n<answer>1</answer>", "<answer>1</answer>"]) == [1.0, 0.0]
    assert length(["a", "b", "c"], completion_ids=[[1], [1, 2], [1, 2, 3, 4]]) == [0.0, 1.0, 0.0]
    assert js(['{"a": 1}', "<answer>[1, 2]</answer>", "```json\n{\"b\": 2}\n```", "{oops"]) == [1.0, 1.0, 1.0, 0.0]


def test_a_users_reward_is_loaded_from_the_file_named_and_checked_first(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text("def brevity(completions, **kw):\n    return [1.0 / (1 + len(c)) for c in completions]\n")
    ns = load_config(None, {"dataset": "x", "stage": "grpo", "reward_funcs": f"answer_exact,{f}:brevity",
                            "reward_weights": "1,0.5"}, finalize=False)
    exact, brevity = R.build(ns)
    assert exact is R.answer_exact and brevity(["ab"]) == [1 / 3] and brevity.__name__ == "brevity"
    base = {"dataset": "identity", "stage": "grpo", "output_dir": str(tmp_path / "o")}
    for value, words in ((f"{f}:nope", None), (f"{tmp_path}/missing.py:f", "is not a file"),
                         ("answer_exakt", "Did you mean 'answer_exact'"), ("os:system", "neither a preset"),
                         ("answer_exact,answer_exact", "twice")):
        if words is None:  # a function the file lacks: found when the run builds its rewards
            with pytest.raises(UserError, match="has no function 'nope'"):
                R.build(load_config(None, {**base, "reward_funcs": value}))
            continue
        with pytest.raises(ConfigError, match=words) as e:
            load_config(None, {**base, "reward_funcs": value})
        assert e.value.field == "reward_funcs"
    with pytest.raises(ConfigError, match="2 weights for 1 reward") as e:
        load_config(None, {**base, "reward_weights": "1,2"})
    assert e.value.field == "reward_weights"


def test_the_web_ui_loads_reward_code_only_from_its_folders(tmp_path):
    from engine.paths import check_values
    assert check_values({"reward_funcs": ["answer_exact", "format"]}) == {}
    assert check_values({"reward_funcs": [f"{ROOT}/examples/train_grpo/rewards.py:brevity"]}) == {}
    bad = check_values({"reward_funcs": ["answer_exact", f"{tmp_path}/evil.py:run"]})
    assert "outside the folders" in bad["reward_funcs"]


# ---------------------------------------------------------------- config
def test_config_rules(tmp_path):
    base = {"dataset": "identity", "stage": "grpo", "output_dir": str(tmp_path / "o")}
    with pytest.raises(ConfigError, match="whole groups of num_generations=4.*set per_device_train_batch_size to 4") \
            as e:
        load_config(None, {**base, "per_device_train_batch_size": "6"})
    assert e.value.field == "per_device_train_batch_size"
    ns = load_config(None, {**base, "per_device_train_batch_size": "2", "gradient_accumulation_steps": "2"})
    assert ns.per_device_train_batch_size == 2  # 2 x 2 completions = one group of 4
    with pytest.raises(ConfigError, match="use_vllm: vLLM") as e:  # not installed here (or no GPU)
        load_config(None, {**base, "use_vllm": "true"})
    with pytest.raises(ConfigError, match="packing: not available for stage grpo"):
        load_config(None, {**base, "packing": "true"})
    with pytest.raises(ConfigError, match="num_generations: 1 is below"):
        load_config(None, {**base, "num_generations": "1"})


# ---------------------------------------------------------------- data
PROMPT_ROWS = [{"question": "What is 2 + 3?", "answer": 5}, {"question": "What is 4 + 4?", "answer": "8"},
               {"question": "Name a colour.", "answer": None},
               {"question": "Read this first. " * 20 + "What is 1 + 1?", "answer": "2"}]
SHAREGPT_ROWS = [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "1+1?"}],
                  "solution": "2"},
                 {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
                  "solution": "x"}]


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("prompts")
    (d / "p.json").write_text(json.dumps(PROMPT_ROWS), encoding="utf-8")
    (d / "s.json").write_text(json.dumps(SHAREGPT_ROWS), encoding="utf-8")
    (d / "free.json").write_text(json.dumps([{"q": "Write a haiku."}]), encoding="utf-8")
    (d / "sft.json").write_text(json.dumps([{"instruction": "Hi", "output": "Hello"}]), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({
        "p": {"file_name": "p.json", "columns": {"prompt": "question", "answer": "answer"}},
        "s": {"file_name": "s.json", "formatting": "sharegpt",
              "columns": {"messages": "conversations", "answer": "solution"}},
        "free": {"file_name": "free.json", "columns": {"prompt": "q", "answer": None}},
        "sft": {"file_name": "sft.json"}}), encoding="utf-8")
    return d


def test_prompt_datasets_are_offered_for_grpo_and_only_they(prompt_dir):
    assert list_datasets(prompt_dir, "grpo") == ["p", "s", "free"]
    assert "p" not in list_datasets(prompt_dir, "sft") and list_datasets(prompt_dir, "sft") == ["sft"]
    recs = load_records(as_args({"dataset": "p,s,free", "dataset_dir": str(prompt_dir)}), "grpo")
    assert [r["answer"] for r in recs.rows] == ["5", "8", None, "2", "2", None]
    assert recs.rows[4]["system"] == "Be brief." and recs.rows[4]["messages"] == [{"role": "user", "content": "1+1?"}]
    assert recs.report["s"]["skipped"] == {"the prompt turns must end with the user": 1}
    with pytest.raises(UserError, match="stage grpo cannot train on it. Choose a prompt"):
        load_records(as_args({"dataset": "sft", "dataset_dir": str(prompt_dir)}), "grpo")
    with pytest.raises(UserError, match="stage sft cannot train on it"):
        load_records(as_args({"dataset": "p", "dataset_dir": str(prompt_dir)}), "sft")


def test_the_prompts_as_the_trainer_and_the_preview_see_them(prompt_dir, tiny_model):
    from engine.data.loader import get_dataset
    from engine.data.processing import REFERENCE, mark_trained
    from engine.data.templates import get_template
    from engine.models.loader import load_tokenizer
    ns = load_config(None, {"model_name_or_path": str(tiny_model), "dataset": "p", "dataset_dir": str(prompt_dir),
                            "stage": "grpo", "template": "chatml", "cutoff_len": "24"}, finalize=False)
    tok = load_tokenizer(ns)
    tpl = get_template("chatml", tok)
    data = get_dataset(ns, tok, tpl, "grpo")
    assert data.train_dataset.column_names == ["prompt", "answer"]
    assert data.train_dataset["answer"] == ["5", "8", None, "2"]
    long = data.train_dataset[3]["prompt"]  # cut from the left: the question and the assistant header stay
    assert long.endswith("What is 1 + 1?<|im_end|>\n<|im_start|>assistant\n")
    assert len(tok.encode(long, add_special_tokens=False)) <= 24
    assert data.stats["truncated"] == 1 and data.stats["tokens"] is None  # nothing is trained before sampling
    assert "sampled in training" in data.stats["summary"]
    row = load_records(ns, "grpo").rows[0]
    spans = mark_trained(row, "grpo", tok, tpl, as_args({"cutoff_len": 64}))
    assert spans[0][0].endswith("assistant\n") and spans[-1] == ("5", REFERENCE)


def test_llamafactory_datasets_keep_their_kinds():
    """An `answer` column is ours: LLaMA-Factory's files name none, so their datasets are what they were."""
    from engine.data.registry import dataset_stage, load_dataset_info
    info = load_dataset_info(ROOT / "data")
    assert {n for n, a in info.items() if dataset_stage(a) == "prompt"} == {"arith_prompts"}


# ---------------------------------------------------------------- runs of the tiny model
# The tiny model is random: it would almost never sample a digit out of its 49k tokens. A short SFT run first
# teaches it to answer each of two sums with any digit, uniformly (every digit is a target for both prompts), so
# GRPO starts at a reward of 1 in 10 and can only earn more by learning which digit its reward pays for.
SUMS = [(1, 1), (1, 2)]


def _digits_data(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "digits.json").write_text(json.dumps([{"instruction": f"What is {a} + {b}?", "output": str(k)}
                                               for a, b in SUMS for k in range(10)]))
    (d / "sums.json").write_text(json.dumps([{"question": f"What is {a} + {b}?", "answer": str(a + b)}
                                             for a, b in SUMS]))
    (d / "dataset_info.json").write_text(json.dumps({
        "digits": {"file_name": "digits.json"},
        "sums": {"file_name": "sums.json", "columns": {"prompt": "question", "answer": "answer"}}}))
    return d


def _run(values: dict):
    from engine.train.workflow import run
    return run(load_config(None, {k: str(v) for k, v in values.items()}))


@pytest.fixture(scope="module")
def digit_model(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """(the tiny model answering the sums with any digit, its data folder)."""
    root = tmp_path_factory.mktemp("grpo")
    data = _digits_data(root / "data")
    out = root / "digits"
    _run(dict(model_name_or_path=tiny_model, template="chatml", dataset="digits", dataset_dir=data, cutoff_len=32,
              per_device_train_batch_size=16, max_steps=40, learning_rate=1e-2, lr_scheduler_type="constant",
              finetuning_type="full", output_dir=out, logging_steps=10, save_steps=1000, plot_loss="false", seed=0,
              precision="fp32"))
    return out, data


def grpo_values(model: Path, data: Path, out: Path, **kw) -> dict:
    return dict(dict(model_name_or_path=model, template="chatml", stage="grpo", dataset="sums", dataset_dir=data,
                     cutoff_len=32, finetuning_type="full", reward_funcs="answer_exact", num_generations=8,
                     per_device_train_batch_size=16, max_completion_length=3, learning_rate=1e-2,
                     lr_scheduler_type="constant", grpo_beta=0.04, logging_steps=1, save_steps=1000,
                     plot_loss="false", seed=1, precision="fp32", output_dir=out), **kw)  # as measured, anywhere


# Measured over seeds 1-5 of this exact run (tiny model, 2 sums, 8 completions each, lr 1e-2, grpo_beta 0.04, 14
# steps): the mean reward of the first 4 steps 0.08-0.19, of the last 4 0.47-0.52, a rise of 0.28-0.43. The margin
# asked below is about half the smallest rise seen.
MARGIN = 0.15


def test_the_reward_rises_only_by_learning(digit_model, tmp_path):
    from engine.insight.doctor import diagnose
    from engine.train import rundir
    model, data = digit_model
    out = tmp_path / "grpo"
    _run(grpo_values(model, data, out, max_steps=14))
    log = rundir.read_log(out)
    rewards = [r["reward"] for r in log if "reward" in r]
    assert len(rewards) == 14
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert first < 0.25, rewards  # a uniform digit is right 1 time in 10
    assert last - first >= MARGIN, rewards
    # the live metrics of every step: the reward per function and its spread, KL, completion length, clipping
    for key in ("rewards/answer_exact/mean", "reward_std", "kl", "completions/mean_length", "clip_ratio/region_mean",
                "completions/clipped_ratio", "frac_reward_zero_std"):
        assert all(key in r for r in log if "reward" in r), key
    assert all(r["rewards/answer_exact/mean"] == r["reward"] for r in log if "reward" in r)  # one function, weight 1
    # the completions table: each logging step, both prompts with their 8 completions and rewards
    table = rundir.read_completions(out)
    assert table["step"] == 14 and len(table["rows"]) == 16
    assert {r["prompt"].split("user\n")[1].split("<|im_end|>")[0] for r in table["rows"]} == \
        {f"What is {a} + {b}?" for a, b in SUMS}
    assert all(set(r["rewards"]) == {"answer_exact"} and r["rewards"]["answer_exact"] in (0.0, 1.0)
               for r in table["rows"])
    steps = [json.loads(line)["step"] for line in (out / rundir.COMPLETIONS).read_text().splitlines()]
    assert steps == list(range(1, 15))
    # what the web UI draws of it: four panels of curves, the table of the last step (each prompt once)
    from webui import monitor
    fig = monitor.reward_figure(log)
    assert [ax.get_title() for ax in fig.axes] == ["Reward", "KL", "completion length (tokens)", "clipped share"]
    assert monitor.reward_functions(log) == ["answer_exact"] and monitor.reward_figure(log[:0]) is None
    html = monitor.completions_html(table, "en")
    assert 'data-step=\'14\'' in html and html.count("tb-completion'") == 16 and html.count("tb-prompt") == 2
    # the doctor reads the reward, not the surrogate loss (about 0): it rose, and the policy went from any digit to
    # one answer per prompt, a KL to the start of nats per token that the doctor calls running away
    rep = diagnose(out)
    assert rep["evidence"]["reward_rising"] is True and rep["evidence"]["reward_end"] > rep["evidence"]["reward_start"]
    assert (rep["verdict"], rep["reason"]) == ("diverging", "kl_runaway"), rep["evidence"]
    assert {a["key"] for a in rep["advice"]} == {"lr_third", "beta_up"}


def test_estimate_counts_groups_generation_and_the_reference(digit_model, tmp_path):
    """Steps as trl counts them (whole generation batches of prompts x num_generations), against a real run."""
    from engine.insight import estimate as E
    from engine.train import rundir
    model, data = digit_model
    (data / "five.json").write_text(json.dumps([{"question": f"What is {a} + 1?", "answer": str(a + 1)}
                                                for a in range(5)]))
    info = json.loads((data / "dataset_info.json").read_text())
    info["five"] = {"file_name": "five.json", "columns": {"prompt": "question", "answer": "answer"}}
    (data / "dataset_info.json").write_text(json.dumps(info))
    out = tmp_path / "epochs"
    values = grpo_values(model, data, out, dataset="five", num_generations=4, per_device_train_batch_size=8,
                         num_train_epochs=1.5, max_steps=-1, grpo_beta=0.0)
    est = E.estimate(values={k: str(v) for k, v in values.items()})
    assert est["steps"]["steps_per_epoch"] == 2 and est["steps"]["total_steps"] == 3  # 5 prompts, 2 per step
    # every prompt is sampled 4 times a pass: its tokens and up to max_completion_length per completion
    assert est["trained_tokens_per_epoch"] == 5 * 4 * 3 and est["tokens_per_epoch"] > 5 * 4 * 3
    _run(values)
    st = rundir.read_status(out)
    assert st["step"] == st["total_steps"] == 3
    # memory: a frozen reference copy only when grpo_beta > 0 (full); the KV cache of long completions
    ns = load_config(None, {k: str(v) for k, v in values.items()})
    p = E.param_facts(ns)
    no_ref = E.memory(ns, p, 40, "cpu")
    ns.grpo_beta = 0.04
    ref = E.memory(ns, p, 40, "cpu")
    assert ref["parts"]["weights"] - no_ref["parts"]["weights"] == p["total"] * 4
    assert "generation" not in no_ref["parts"]
    ns.per_device_train_batch_size, ns.gradient_accumulation_steps = 64, 4
    long = E.memory(ns, p, 4096, "cpu")
    kv = 64 * 4 * 4096 * p["layers"] * 2 * p["kv_dim"] * 4
    assert long["parts"]["generation"] == kv - long["parts"]["activations"] > 0


def test_resume_continues_the_run_and_its_completions(digit_model, tmp_path):
    from engine.train import rundir
    model, data = digit_model
    out = tmp_path / "resume"
    # freeze here (full in the run above, LoRA in the next): both prompts a step
    small = dict(save_steps=2, num_generations=4, per_device_train_batch_size=8, finetuning_type="freeze",
                 freeze_trainable_layers=1)
    _run(grpo_values(model, data, out, max_steps=2, **small))
    assert (out / "checkpoint-2").is_dir()
    _run(grpo_values(model, data, out, max_steps=3, resume_from_checkpoint="true", **small))
    assert [r["step"] for r in rundir.read_log(out) if "reward" in r] == [1, 2, 3]
    steps = [json.loads(line)["step"] for line in (out / rundir.COMPLETIONS).read_text().splitlines()]
    assert steps == [1, 2, 3] and rundir.read_status(out)["state"] == "finished"
    with pytest.raises(UserError, match="2 prompt\\(s\\), but one GRPO step samples 4 prompts"):
        _run(grpo_values(model, data, tmp_path / "few", max_steps=1, num_generations=4))


def test_an_overwrite_sets_the_completions_aside_with_the_run_and_brings_them_back(tmp_path):
    """completions.jsonl is one of a run's own files: replacing the run moves it aside with the log (a user's file
    stays), and a new run that ends before its first checkpoint puts it back as it was."""
    from engine.train import rundir
    (tmp_path / rundir.LOG).write_text('{"step": 1, "reward": 0.5}\n')
    (tmp_path / rundir.COMPLETIONS).write_text('{"step": 1, "rows": []}\n')
    (tmp_path / "notes.txt").write_text("mine")
    rundir.set_aside(tmp_path, None)
    assert not (tmp_path / rundir.COMPLETIONS).exists() and (tmp_path / "notes.txt").exists()
    assert (tmp_path / rundir.REPLACED / rundir.COMPLETIONS).exists()
    (tmp_path / rundir.COMPLETIONS).write_text('{"step": 1, "rows": [{"prompt": "new"}]}\n')  # the new run's
    assert rundir.restore_replaced(tmp_path)
    assert rundir.read_completions(tmp_path) == {"step": 1, "rows": []}


def test_abort_of_a_spawned_run_keeps_a_checkpoint_and_a_page_reattaches(digit_model, tmp_path, monkeypatch):
    """As the web UI starts it: its own process group; Abort saves at the step it is on and leaves no process."""
    import psutil
    from engine import paths, runs
    from helpers import wait_for
    saves = tmp_path / "saves"
    monkeypatch.setenv(paths.SAVES_ENV, str(saves))
    model, data = digit_model
    out = tmp_path / "long"
    run = runs.spawn("train", grpo_values(model, data, out, max_steps=5000, num_generations=4,
                                          per_device_train_batch_size=8, finetuning_type="lora"), saves)
    try:
        wait_for(lambda: run.progress()["step"] >= 2 or run.status()["state"] != "running", 300, "step 2")
        assert run.status()["state"] == "running", run.tail()
        pids = {p.pid for p in run.processes()}
        assert run.abort() is True
    finally:
        for r in runs.all_runs(saves):
            r.abort(grace=2)
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)
    wait_for(lambda: run.status()["state"] != "running", 30, "the record to settle")
    assert run.status()["state"] == "aborted"
    ckpt = runs.checkpoints(out)[-1]
    step = runs.rundir.checkpoint_step(ckpt)
    assert step >= 2 and (ckpt / "adapter_model.safetensors").is_file()  # LoRA: the reference is the adapter off
    # a page loaded now finds the run, its reward curve and its completions
    again = runs.latest_run(saves, "train")
    assert again.id == run.id and [r["step"] for r in again.log_records() if "reward" in r][:2] == [1, 2]
    assert runs.rundir.read_completions(again.output)["step"] >= 2

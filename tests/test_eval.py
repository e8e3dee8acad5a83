"""`tuneboard eval`: predictions file, metrics, progress/status files and errors, on the tiny model."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.config import load_config
from engine.errors import ConfigError
from engine.evaluate import PREDICTIONS, RESULTS, evaluate, generation_settings, prompt_text, split_example
from engine.metrics import compute_metrics
from engine.errors import UserError
from helpers import wait_for
from kits.args import as_args

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You are a careful grader."


@pytest.fixture(scope="module")
def ds_dir(tmp_path_factory) -> Path:
    """qa: 10 alpaca rows; chat: 2 multi-turn rows with a system prompt; long: 300 rows (for abort)."""
    d = tmp_path_factory.mktemp("evaldata")
    qa = [{"instruction": f"What is {i} plus {i}?", "input": "", "output": str(2 * i)} for i in range(10)]
    chat = [{"system": SYSTEM, "messages": [
        {"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": f"Spell {i}."}, {"role": "assistant", "content": f"digit {i}"}]}
        for i in range(2)]
    long = [{"instruction": f"Tell a long story number {i}.", "output": "Once upon a time"} for i in range(300)]
    (d / "qa.json").write_text(json.dumps(qa))
    (d / "chat.json").write_text(json.dumps(chat))
    (d / "long.json").write_text(json.dumps(long))
    sharegpt = {"formatting": "sharegpt", "columns": {"messages": "messages", "system": "system"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant"}}
    (d / "dataset_info.json").write_text(json.dumps({
        "qa": {"file_name": "qa.json"}, "long": {"file_name": "long.json"},
        "chat": {"file_name": "chat.json", **sharegpt}}))
    return d


def cfg(tiny_model, ds_dir, out, *extra):
    return load_config(None, [f"model_name_or_path={tiny_model}", f"dataset_dir={ds_dir}", "eval_dataset=qa",
                              "per_device_eval_batch_size=4", "max_new_tokens=4", f"output_dir={out}", *extra],
                       command="infer")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def engine(tiny_model):
    from engine.chat import ChatEngine
    return ChatEngine(as_args({"model_name_or_path": str(tiny_model)}, "infer"))


class Spy:
    """A ChatEngine stand-in that delegates to the real one and records what the files said before each batch."""

    def __init__(self, engine, out: Path):
        self.engine, self.out, self.seen, self.calls = engine, out, [], []

    def batch(self, conversations, system=None, **gen):
        st = json.loads((self.out / "status.json").read_text())
        self.seen.append((len(read_jsonl(self.out / PREDICTIONS)), st["state"], st["done"], st["total"]))
        self.calls.append((conversations, gen))
        return self.engine.batch(conversations, system, **gen)


def test_predictions_metrics_and_status(tiny_model, ds_dir, tmp_path, engine):
    out = tmp_path / "ev"
    res = evaluate(cfg(tiny_model, ds_dir, out), engine=engine, out=lambda s: None)
    rows = read_jsonl(out / PREDICTIONS)
    assert [r["prompt"] for r in rows] == [f"What is {i} plus {i}?" for i in range(10)]
    assert [r["label"] for r in rows] == [str(2 * i) for i in range(10)]
    assert all(isinstance(r["predict"], str) for r in rows)
    # predict_results.json holds the metrics of exactly what the predictions file says
    saved = json.loads((out / RESULTS).read_text())
    assert saved == res
    expected = compute_metrics([r["predict"] for r in rows], [r["label"] for r in rows])
    assert {k: res[k] for k in expected} == expected
    assert res["samples"] == 10 and res["dataset"] == "qa" and res["decoding"] == "greedy"
    assert 0 < res["completion_tokens"] <= 4 * 10 and res["prompt_tokens"] > 0
    assert res["samples_per_second"] > 0 and res["tokens_per_second"] > 0 and res["elapsed_s"] >= res["generate_s"]
    st = json.loads((out / "status.json").read_text())
    assert (st["state"], st["done"], st["total"], st["error"]) == ("finished", 10, 10, None)
    # the resolved config is saved, with the greedy choice written out so a rerun of it decodes the same way
    saved_cfg = yaml.safe_load((out / "eval_args.yaml").read_text())
    assert saved_cfg["do_sample"] is False and saved_cfg["eval_dataset"] == ["qa"]


def test_progress_is_written_batch_by_batch(tiny_model, ds_dir, tmp_path, engine):
    out = tmp_path / "ev"
    spy = Spy(engine, out)
    evaluate(cfg(tiny_model, ds_dir, out), engine=spy, out=lambda s: None)
    assert spy.seen == [(0, "running", 0, 10), (4, "running", 4, 10), (8, "running", 8, 10)]
    assert [len(c) for c, _ in spy.calls] == [4, 4, 2]
    assert spy.calls[0][1] == {"max_new_tokens": 4, "do_sample": False, "repetition_penalty": 1.0}


def test_greedy_is_repeatable_and_sampling_is_opt_in(tiny_model, ds_dir, tmp_path, engine):
    a = evaluate(cfg(tiny_model, ds_dir, tmp_path / "a"), engine=engine, out=lambda s: None)
    b = evaluate(cfg(tiny_model, ds_dir, tmp_path / "b"), engine=engine, out=lambda s: None)
    assert read_jsonl(tmp_path / "a" / PREDICTIONS) == read_jsonl(tmp_path / "b" / PREDICTIONS)
    assert a["accuracy"] == b["accuracy"]
    s = evaluate(cfg(tiny_model, ds_dir, tmp_path / "s", "do_sample=true", "temperature=1.5", "seed=3"),
                 engine=engine, out=lambda x: None)
    assert s["decoding"] == "sampling"
    g = generation_settings(cfg(tiny_model, ds_dir, tmp_path / "s", "do_sample=true", "temperature=1.5", "seed=3"))
    assert g["do_sample"] is True and g["temperature"] == 1.5 and g["seed"] == 3
    # do_sample defaults to true for chat; eval only samples when asked
    assert generation_settings(cfg(tiny_model, ds_dir, tmp_path / "s"))["do_sample"] is False


def test_multi_turn_rows_keep_history_and_system(tiny_model, ds_dir, tmp_path, engine):
    out = tmp_path / "ev"
    spy = Spy(engine, out)
    evaluate(cfg(tiny_model, ds_dir, out, "eval_dataset=chat"), engine=spy, out=lambda s: None)
    conv = spy.calls[0][0][0]
    assert conv == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi 0"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Spell 0."}]
    rows = read_jsonl(out / PREDICTIONS)
    assert rows[0]["label"] == "digit 0"
    assert rows[0]["prompt"] == f"system: {SYSTEM}\nuser: Hi 0\nassistant: Hello!\nuser: Spell 0."


def test_split_example_and_prompt_text():
    p, label = split_example({"system": "", "messages": [{"role": "user", "content": "q"},
                                                         {"role": "assistant", "content": "a"}]}, 0)
    assert p == [{"role": "user", "content": "q"}] and label == "a"
    assert prompt_text(p) == "q"
    with pytest.raises(UserError, match="sample 3"):
        split_example({"messages": [{"role": "user", "content": "q"}]}, 3)


def test_chinese_labels_scored_with_jieba(tiny_model, tmp_path, engine):
    d = tmp_path / "zh"
    d.mkdir()
    (d / "nli.json").write_text(json.dumps([{"instruction": "判断关系", "output": "蕴含"}] * 3, ensure_ascii=False))
    (d / "dataset_info.json").write_text(json.dumps({"nli": {"file_name": "nli.json"}}))
    res = evaluate(cfg(tiny_model, d, tmp_path / "ev", "eval_dataset=nli"), engine=engine, out=lambda s: None)
    rows = read_jsonl(tmp_path / "ev" / PREDICTIONS)
    assert [r["label"] for r in rows] == ["蕴含"] * 3  # written as UTF-8, not \\u escapes
    assert "蕴含" in (tmp_path / "ev" / PREDICTIONS).read_text(encoding="utf-8")
    assert res["samples"] == 3


def test_bad_inputs_are_clear_errors(tiny_model, ds_dir, tmp_path, engine):
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        evaluate(cfg(tiny_model, ds_dir, tmp_path / "a", "eval_dataset=nope"), engine=engine, out=lambda s: None)
    st = json.loads((tmp_path / "a" / "status.json").read_text())
    assert st["state"] == "failed" and "nope" in st["error"]
    with pytest.raises(ConfigError, match="eval_dataset"):
        evaluate(load_config(None, [f"output_dir={tmp_path / 'b'}"], command="infer"), out=lambda s: None)
    with pytest.raises(UserError, match="/no/such/model"):
        evaluate(cfg("/no/such/model", ds_dir, tmp_path / "c"), out=lambda s: None)
    assert json.loads((tmp_path / "c" / "status.json").read_text())["state"] == "failed"
    # never write into a training run's folder
    run = tmp_path / "run"
    run.mkdir()
    (run / "trainer_log.jsonl").write_text("")
    (run / "status.json").write_text('{"state": "finished"}')
    with pytest.raises(ConfigError, match="output_dir"):
        evaluate(cfg(tiny_model, ds_dir, run), engine=engine, out=lambda s: None)
    assert json.loads((run / "status.json").read_text()) == {"state": "finished"}


def test_example_recipe_is_valid():
    args = load_config(ROOT / "examples/eval/smollm2_sentiment.yaml", [], command="infer")
    assert args.eval_dataset == ["sentiment_en_test"] and args.max_new_tokens <= 16
    from engine.data.registry import load_dataset_info
    assert "sentiment_en_test" in load_dataset_info(ROOT / args.dataset_dir)


def _cli(*argv, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine", "eval", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_cli_missing_model_is_a_clear_error(tmp_path):
    p = _cli("model_name_or_path=/no/such/model", "eval_dataset=sentiment_en_test", "max_samples=2",
             f"output_dir={tmp_path / 'o'}")
    text, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "error: model /no/such/model not found" in text and "Traceback" not in text


def test_cli_runs_and_sigterm_aborts(tiny_model, ds_dir, tmp_path):
    out = tmp_path / "o"
    p = _cli(f"model_name_or_path={tiny_model}", f"dataset_dir={ds_dir}", "eval_dataset=long",
             "per_device_eval_batch_size=1", "max_new_tokens=32", f"output_dir={out}")
    def writing():  # it has really started writing predictions (one read of status.json)
        assert p.poll() is None, p.stdout.read()  # ends the wait at once
        st = json.loads((out / "status.json").read_text())
        return st.get("state") == "running" and st.get("done", 0) >= 2

    try:
        wait_for(writing, 120, "eval to write its first predictions", ignore=(OSError, ValueError))
        p.send_signal(signal.SIGTERM)
        text, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, text
    st = json.loads((out / "status.json").read_text())
    assert st["state"] == "aborted" and 2 <= st["done"] < st["total"] == 300
    assert len(read_jsonl(out / PREDICTIONS)) >= st["done"]  # every finished batch is on disk
    assert "[eval] 1/300" in text and "[eval] 2/300" in text
    assert not (out / RESULTS).exists()

"""The point of eval: a short LoRA SFT on the demo's checkable sentiment task beats the base model,
both measured by `tuneboard eval` on the held-out split (the bundled model; ~1 minute on 2 idle cores).
The commands run in this process (engine.cli.main, what `python -m engine` calls): three fresh interpreters
would each spend seconds importing torch and transformers; `python -m engine` itself is run by test_faults,
test_api and the browser's shell run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
EVAL = ["eval_dataset=sentiment_en_test", "max_samples=24", "max_new_tokens=4", "per_device_eval_batch_size=8",
        "cutoff_len=128"]


@pytest.fixture
def tuneboard(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipes' data/ and saves/ are relative to the repo root

    def call(*argv: str) -> str:
        capsys.readouterr()
        rc = cli(list(argv))
        out, err = capsys.readouterr()
        assert rc == 0, out[-3000:] + err[-3000:]
        return out
    return call


@pytest.mark.slow
def test_short_lora_sft_beats_the_base_model(bundled_model, tmp_path, tuneboard):
    model = f"model_name_or_path={bundled_model}"
    tuneboard("eval", model, *EVAL, f"output_dir={tmp_path / 'eval_base'}")
    tuneboard("train", model, "dataset=sentiment_en_train", "max_samples=64", "cutoff_len=128", "max_steps=8",
              "learning_rate=3e-4", "per_device_train_batch_size=4", "logging_steps=4", "save_steps=1000",
              f"output_dir={tmp_path / 'run'}")
    out = tuneboard("eval", model, f"adapter_name_or_path={tmp_path / 'run'}", *EVAL,
                    f"output_dir={tmp_path / 'eval_lora'}")
    assert "[eval] 24/24 (100%)" in out
    base = json.loads((tmp_path / "eval_base" / "predict_results.json").read_text())
    lora = json.loads((tmp_path / "eval_lora" / "predict_results.json").read_text())
    assert base["samples"] == lora["samples"] == 24 and lora["adapter"] == str(tmp_path / "run")
    print(f"sentiment_en_test accuracy: base {base['accuracy']:.1f}%, after 8 LoRA steps {lora['accuracy']:.1f}%")
    assert lora["accuracy"] > base["accuracy"]
    assert lora["accuracy"] >= 60.0  # the trained model answers with the label, not a sentence about it
    preds = [json.loads(line) for line in (tmp_path / "eval_lora" / "generated_predictions.jsonl").open()]
    assert sum(p["predict"].strip().lower() in ("positive", "negative") for p in preds) >= 20

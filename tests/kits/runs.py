"""The small arithmetic dataset the fault, safety and distributed tests train the tiny model on, and the values of
such a run (as text, the way a form or a command line gives them)."""
from __future__ import annotations

import json
from pathlib import Path


def arith_rows(n: int) -> list[dict]:
    return [{"instruction": f"What is {i % 7} plus {(i * 3) % 11}?", "input": "",
             "output": f"{i % 7} plus {(i * 3) % 11} is {i % 7 + (i * 3) % 11}."} for i in range(n)]


def write_arith(d: Path, n: int) -> Path:
    """`arith` (n records) in a dataset folder d; returns d."""
    (d / "arith.json").write_text(json.dumps(arith_rows(n)), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"arith": {"file_name": "arith.json"}}), encoding="utf-8")
    return d


def train_values(tiny_model, data: Path, out: Path, **kw) -> dict:
    """A short LoRA run of the tiny model on `arith` in data, written to out; kw changes or adds values."""
    v = {"model_name_or_path": str(tiny_model), "template": "chatml", "dataset": "arith", "dataset_dir": str(data),
         "cutoff_len": 48, "max_samples": 64, "per_device_train_batch_size": 2, "learning_rate": 1e-3,
         "logging_steps": 1, "plot_loss": "false", "output_dir": str(out)}
    v.update(kw)
    return {k: str(v) for k, v in v.items()}

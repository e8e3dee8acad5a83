"""The labelled training recipes of the run doctor's tests (tests/test_insight_doctor.py says what each must be
judged) and the small arithmetic datasets they train on; the sweep, the estimate, the web UI's doctor panel and its
browser test train the same ones."""
from __future__ import annotations

import json
from pathlib import Path

RECIPES = {
    "overfitting": dict(learning_rate=1e-2, lr_scheduler_type="constant", max_samples=12, val_size=8, max_steps=40,
                        eval_steps=4, save_steps=4, save_only_model=True, save_total_limit=2),
    "diverging": dict(learning_rate=1.0, max_steps=10),
    "not_learning": dict(learning_rate=1e-9, max_steps=10),
    "cut_all": dict(cutoff_len=16, max_steps=3),
    "cut_most": dict(dataset="mixed", cutoff_len=16, max_steps=3),
    "duplicates": dict(dataset="dups", max_steps=3),
    "sensible": dict(learning_rate=3e-3, val_size=8, num_train_epochs=1.5, gradient_accumulation_steps=2,
                     eval_steps=3, save_steps=3),
    "capacity": dict(finetuning_type="freeze", freeze_trainable_layers=1, freeze_trainable_modules="mlp.down_proj",
                     learning_rate=5e-2, lr_scheduler_type="constant", max_steps=40, val_size=8, eval_steps=5),
    "eval_default": dict(learning_rate=3e-3, val_size=8, max_steps=20),
}


def arith_rows(n: int = 64) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = (i * 7) % 23, (i * 5) % 19
        rows.append({"instruction": f"What is {a} plus {b}?", "input": "", "output": f"{a} plus {b} is {a + b}."})
    return rows


def write_data(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    short = [{"instruction": "Hi", "input": "", "output": "Hello."}] * 4 + \
        [{"instruction": "Bye", "input": "", "output": "Goodbye."}] * 4
    (d / "arith.json").write_text(json.dumps(arith_rows()), encoding="utf-8")
    (d / "mixed.json").write_text(json.dumps(short + arith_rows(24)), encoding="utf-8")
    dups = [{"instruction": "What is 1 plus 1?", "input": "", "output": "1 plus 1 is 2."}] * 30 + arith_rows(6)
    (d / "dups.json").write_text(json.dumps(dups), encoding="utf-8")
    (d / "dataset_info.json").write_text(json.dumps({"arith": {"file_name": "arith.json"},
                                                     "mixed": {"file_name": "mixed.json"},
                                                     "dups": {"file_name": "dups.json"}}), encoding="utf-8")
    return d


def recipe(tiny_model, data: Path, out: Path, **kw) -> dict:
    # fp32 whatever the CPU: precision=auto trains in bf16 where the CPU has it, and the labelled curves (a chaotic
    # lr 1e-2 overfitting run above all) must not depend on which bf16 kernels a machine has
    base = dict(model_name_or_path=str(tiny_model), template="chatml", dataset="arith", dataset_dir=str(data),
                cutoff_len=64, per_device_train_batch_size=4, logging_steps=1, save_steps=1000, seed=1,
                finetuning_type="full", plot_loss=False, precision="fp32", output_dir=str(out))
    base.update(kw)
    return {k: str(v) for k, v in base.items()}

"""Where a training step's time goes: torch.profiler over a few steps of a TuneBoard run, split into data (the
batches), forward (+ loss), backward and optimizer, with the heaviest operators. Used by bench/peer.py --profile;
alone: .venv/bin/python bench/profile_steps.py recipe.yaml out.txt [steps]."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("data", "forward (+ loss; the LM head gradient is made there too)", "backward", "optimizer")


def _wrap(owner, name: str, label: str) -> None:
    from torch.profiler import record_function
    fn = getattr(owner, name)
    if getattr(fn, "_profiled", False):
        return

    @functools.wraps(fn)
    def inner(*a, **k):
        with record_function(label):
            return fn(*a, **k)
    inner._profiled = True
    setattr(owner, name, inner)


def instrumented_run(recipe: dict, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile

    from engine.config import load_config
    from engine.train.workflow import run

    orig = transformers.Trainer.train
    result = {}

    def train(self, *a, **k):
        cls = type(self)
        _wrap(cls, "compute_loss", PHASES[1])
        _wrap(self.accelerator, "backward", PHASES[2])
        _wrap(cls, "get_batch_samples", PHASES[0])
        for opt_cls in (torch.optim.AdamW, torch.optim.Adam, torch.optim.SGD):
            _wrap(opt_cls, "step", PHASES[3])
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        with profile(activities=acts) as prof:
            r = orig(self, *a, **k)
        result["prof"] = prof
        return r

    transformers.Trainer.train = train
    metrics = run(load_config(None, recipe))
    prof = result["prof"]
    avg = {e.key: e for e in prof.key_averages()}
    total = metrics["train_runtime"]
    lines = [f"step-time breakdown: {recipe.get('stage', 'sft')} {recipe.get('finetuning_type', 'lora')}, "
             f"{metrics.get('total_steps')} steps, train_runtime {total:.1f} s (profiled, so slower than a plain run)",
             "", "| phase | CPU s | share of train_runtime |", "|---|---|---|"]
    for ph in PHASES:
        s = avg[ph].cpu_time_total / 1e6 if ph in avg else 0.0
        lines.append(f"| {ph} | {s:.1f} | {100 * s / total:.0f} % |")
    lines += ["", "heaviest operators (self CPU time):", "",
              prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def profile_workload(recipe: dict, out: Path, steps: int = 6) -> None:
    """Profile `steps` steps of the recipe in a fresh process; the breakdown goes to `out`."""
    import tempfile
    r = {**recipe, "max_steps": steps, "eval_dataset": None, "eval_strategy": "no", "overwrite_output_dir": True,
         "plot_loss": False}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(r, f)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, __file__, f.name, str(out)], env=env, capture_output=True, text=True)
    os.unlink(f.name)
    if p.returncode:
        raise SystemExit(f"profiling failed:\n{p.stderr[-3000:]}")


if __name__ == "__main__":
    cfg = sys.argv[1]
    recipe = json.loads(Path(cfg).read_text()) if cfg.endswith(".json") else __import__("yaml").safe_load(
        Path(cfg).read_text())
    if len(sys.argv) > 3:
        recipe["max_steps"] = int(sys.argv[3])
    instrumented_run(recipe, Path(sys.argv[2]))

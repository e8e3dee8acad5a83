"""Training throughput on the bundled model: one fixed LoRA SFT recipe, several settings.

    .venv/bin/python bench/train_throughput.py            # all settings, ~10 min on a 2-core CPU
    .venv/bin/python bench/train_throughput.py --only packed-bf16 --steps 10

Recipe (the peer's published numbers use the same): SmolLM2-135M-Instruct, LoRA r8 on all linear layers,
batch 4, cutoff 512, alpaca-style data with a median answer of ~80 words, 20 steps, no gradient checkpointing.
Effective tokens/s = real (non-padding) tokens of the trained samples / train runtime. Each setting runs in a
fresh process so its peak RSS is its own. Prints a markdown table; writes bench/results.json.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "unpacked-fp32": {"packing": "false", "bf16": "false"},
    "packed-fp32": {"packing": "true", "bf16": "false"},
    "unpacked-bf16": {"packing": "false", "bf16": "true"},
    "packed-bf16": {"packing": "true", "bf16": "true"},
}

_TOPICS = ["a vegetable garden", "a small bakery", "a city library", "a mountain trail", "a home network",
           "a school timetable", "a bicycle repair", "a team meeting", "a winter holiday", "a budget spreadsheet",
           "a science fair", "a rainy weekend", "a job interview", "a houseplant", "a neighbourhood cleanup"]
_ASKS = ["Give practical advice about {t}.", "Explain how to plan {t}.", "Describe common mistakes with {t}.",
         "Write a short guide to {t}.", "What should a beginner know about {t}?"]
_SENT = ["Start by writing down what you want to achieve and by when.",
         "Break the work into small steps that each take less than an hour.",
         "Check the plan with someone who has done it before, because they notice risks early.",
         "Keep a simple record of what worked and what did not.",
         "Leave some slack in the schedule since small delays add up quickly.",
         "Buy or borrow only the tools you need for the first steps.",
         "Review progress every week and adjust the next steps honestly.",
         "Ask for help as soon as a problem blocks you for more than a day.",
         "Celebrate small wins, as they keep motivation high over a long project.",
         "Finally, write a short summary so the next attempt starts from what you learned."]


def make_data(folder: Path, n: int = 240, seed: int = 0) -> dict:
    """Deterministic alpaca-style rows; answers of 60-100 words (median ~80)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = _TOPICS[i % len(_TOPICS)]
        words, sents = 0, []
        target = rng.randint(60, 100)
        while words < target:
            s = rng.choice(_SENT)
            sents.append(s)
            words += len(s.split())
        rows.append({"instruction": rng.choice(_ASKS).format(t=t), "input": "", "output": " ".join(sents)})
    (folder / "bench.json").write_text(json.dumps(rows), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"bench": {"file_name": "bench.json"}}), encoding="utf-8")
    lens = sorted(len(r["output"].split()) for r in rows)
    return {"rows": n, "median_answer_words": lens[n // 2]}


def run_one(name: str, steps: int, data_dir: str, out: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from engine.config import load_config
    from engine.train import rundir
    from engine.train.workflow import run

    overrides = {"model_name_or_path": str(ROOT / "models" / "SmolLM2-135M-Instruct"), "template": "chatml",
                 "dataset": "bench", "dataset_dir": data_dir, "cutoff_len": "512", "finetuning_type": "lora",
                 "lora_rank": "8", "lora_target": "all", "per_device_train_batch_size": "4",
                 "max_steps": str(steps), "learning_rate": "2e-4", "logging_steps": "1", "save_steps": "100000",
                 "output_dir": out, "plot_loss": "false", "overwrite_output_dir": "true", "seed": "0",
                 **SETTINGS[name]}
    metrics = run(load_config(None, overrides))
    stats = json.loads((Path(out) / rundir.STATS).read_text())
    log = [r for r in rundir.read_log(out) if "loss" in r]
    tokens = _trained_tokens(out, stats)
    runtime = metrics["train_runtime"]
    return {"setting": name, "steps": steps, "train_runtime_s": round(runtime, 1),
            "s_per_step": round(runtime / steps, 2), "effective_tokens": tokens,
            "effective_tokens_per_s": round(tokens / runtime, 1),
            "peak_rss_gib": round(metrics["peak_rss_mb"] / 1024, 2),
            "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"]}


def _trained_tokens(out: str, stats: dict) -> int:
    """Non-padding tokens the trainer consumed: counted by the Trainer ('non_padding') when it can,
    which undercounts slightly for SmolLM2 (its pad token is also its end-of-turn token)."""
    from engine.train import rundir
    rows = [r for r in rundir.read_log(out) if "tokens_seen" in r]
    return int(rows[-1]["tokens_seen"]) if rows else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=list(SETTINGS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:  # child process: one setting
        print("RESULT " + json.dumps(run_one(a.one, a.steps, a.data, a.out)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        info = make_data(Path(tmp))
        print(f"data: {info}", flush=True)
        for name in a.only:
            t0 = time.time()
            p = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(a.steps), "--data", tmp,
                                "--out", str(Path(tmp) / name)], capture_output=True, text=True)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not line:
                print(f"{name}: failed\n{p.stderr[-2000:]}")
                continue
            r = json.loads(line[0][7:])
            r["wall_s"] = round(time.time() - t0, 1)
            results.append(r)
            print(json.dumps(r), flush=True)
    print("\n| setting | s/step | effective tokens/s | peak RSS GiB | loss first -> last |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['setting']} | {r['s_per_step']} | {r['effective_tokens_per_s']} | {r['peak_rss_gib']} | "
              f"{r['first_loss']:.3f} -> {r['last_loss']:.3f} |")
    (ROOT / "bench" / "results.json").write_text(json.dumps({"data": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

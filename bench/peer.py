"""TuneBoard at its defaults against LLaMA-Factory 0.9.5 at its best setting, side by side (`make bench-peer`).

    .venv/bin/python bench/peer.py                       # install the peer if needed, run all, print the table
    .venv/bin/python bench/peer.py --only lora --peer-venv /work/peer/venv
    .venv/bin/python bench/peer.py --profile            # also a torch.profiler step-time breakdown per workload

The peer is installed into its own venv outside the project (PEER_VENV, default /work/peer/venv): torch==2.13.0
first, so the local CPU wheel is the one taken, then llamafactory==0.9.5. It is only ever run as a command
(`llamafactory-cli train recipe.yaml`), never imported; nothing of it is copied here.

Workloads (the bundled SmolLM2-135M-Instruct, ChatML, cutoff 512, one epoch, cosine schedule, seed 42; the data is
written here, deterministically: alpaca-shaped rows with a long-tailed answer length, and a held-out eval split):
  lora  LoRA r8 on every linear layer, batch 4, lr 1e-4, 64 samples
  full  full fine-tuning, batch 4, lr 1e-5, 64 samples
  dpo   DPO (sigmoid, beta 0.1) with LoRA r8, batch 2, lr 1e-4, 64 pairs
Each workload runs three times, one after the other, each in a fresh process:
  peer       LLaMA-Factory at its best setting: neat_packing (SFT), its default gradient checkpointing, fp32
  tuneboard  `python -m engine train` with nothing set but the workload itself
  reference  TuneBoard with every speed lever off (plain fp32, padded batches): the loss it must match
Figures: effective tokens/s = real (non-padding) tokens of the epoch, counted here with the tokenizer, over the
Trainer's train_runtime (the same count for every run); peak RSS = the largest sum of the resident memory of the
whole process tree, sampled every 50 ms, or the process's own high-water mark if larger; train loss = the Trainer's
train_loss (mean over the epoch); eval loss = the held-out loss after training; whole run s = the process from start
to exit (loading, data, training, the evaluation and saves after training), for what train_runtime leaves out.
Goals (issue 18): speed ratio >= 2.0, memory ratio <= 1.0, |train loss - reference| and |eval loss - reference|
<= 2 %. Exits 1 when one is missed. --gpu trains on the GPU instead (the peer too) and adds model FLOPs utilisation:
effective tokens/s x PaLM's FLOPs per token (6N + 12 x layers x hidden x mean length; dpo adds its reference
forward) / the GPU's dense bf16 peak (PEAK_TFLOPS). Writes bench/peer_results.json (and bench/profile_<workload>.txt).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"
PEER_VERSION = "0.9.5"
PEER_TORCH = "2.13.0"
SPEED_GOAL, MEMORY_GOAL, LOSS_TOL = 2.0, 1.0, 0.02
SYSTEM = "You are a helpful assistant."
CUTOFF = 512

# ---------------------------------------------------------------- data
_TOPICS = ["a vegetable garden", "a small bakery", "a city library", "a mountain trail", "a home network",
           "a school timetable", "a bicycle repair", "a team meeting", "a winter holiday", "a budget spreadsheet",
           "a science fair", "a rainy weekend", "a job interview", "a houseplant", "a neighbourhood cleanup",
           "a first marathon", "a birthday party", "a kitchen renovation", "a language course", "a used car"]
_ASKS = ["Give practical advice about {t}.", "Explain how to plan {t}.", "Describe common mistakes with {t}.",
         "Write a short guide to {t}.", "What should a beginner know about {t}?", "How do I get started with {t}?",
         "List the steps for {t} and explain each one.", "Summarise what matters most for {t}."]
_OPEN = ["Good question.", "Here is a plan that works for most people.", "It helps to think about it in stages.",
         "There is no single answer, but a few habits help a lot."]
_SENT = ["Start by writing down what you want to achieve with {t} and by when.",
         "Break the work on {t} into small steps that each take less than an hour.",
         "Check the plan with someone who has done {t} before, because they notice risks early.",
         "Keep a simple record of what worked and what did not.",
         "Leave some slack in the schedule, since small delays add up quickly.",
         "Buy or borrow only the tools you need for the first steps.",
         "Review progress every week and adjust the next steps honestly.",
         "Ask for help as soon as a problem blocks you for more than a day.",
         "Celebrate small wins, as they keep motivation high over a long project.",
         "Set a budget for {t} before you spend anything, and note every cost.",
         "Compare two or three options side by side before you decide.",
         "Most beginners try to do everything at once; pick the two most important things instead.",
         "Weather, prices and opening hours change, so check them the day before.",
         "A checklist taped to the wall saves more time than any clever app.",
         "If something fails twice, change the approach rather than trying harder.",
         "Talk to the people affected by {t} early, not after the decisions are made.",
         "Write the next step at the end of each session so you can start quickly next time.",
         "Finally, write a short summary so the next attempt starts from what you learned."]
_OFF = ["I would rather not talk about that.", "Let's discuss the weather instead; it has been windy lately.",
        "That is not something I know anything about.", "Try searching online, there are many pages on it.",
        "Why do you want to know? It does not sound important.", "Maybe later. I am busy right now."]


def _answer(rng: random.Random, topic: str, words: int) -> str:
    out, n = [rng.choice(_OPEN)], 0
    while n < words:
        s = rng.choice(_SENT).format(t=topic)
        out.append(s)
        n += len(s.split())
    return " ".join(out)


def _words(rng: random.Random, median: float) -> int:
    """Long-tailed answer lengths, as instruction data has them (lognormal, clipped)."""
    return int(min(330, max(6, rng.lognormvariate(math.log(median), 0.7))))


def make_data(folder: Path, n_train: int = 64, n_eval: int = 16, seed: int = 18) -> None:
    rng = random.Random(seed)

    def sft_row():
        t = rng.choice(_TOPICS)
        return {"system": SYSTEM, "instruction": rng.choice(_ASKS).format(t=t), "input": "",
                "output": _answer(rng, t, _words(rng, 78))}

    def dpo_row():
        t = rng.choice(_TOPICS)
        return {"system": SYSTEM, "instruction": rng.choice(_ASKS).format(t=t), "input": "",
                "chosen": _answer(rng, t, _words(rng, 45)), "rejected": " ".join(rng.sample(_OFF, rng.randint(1, 3)))}

    files = {"bench_sft": [sft_row() for _ in range(n_train)], "bench_sft_eval": [sft_row() for _ in range(n_eval)],
             "bench_dpo": [dpo_row() for _ in range(n_train)], "bench_dpo_eval": [dpo_row() for _ in range(n_eval)]}
    info = {}
    for name, rows in files.items():
        (folder / f"{name}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
        cols = {"prompt": "instruction", "query": "input", "system": "system"}
        if "dpo" in name:
            info[name] = {"file_name": f"{name}.json", "formatting": "alpaca", "ranking": True,
                          "columns": {**cols, "chosen": "chosen", "rejected": "rejected"}}
        else:
            info[name] = {"file_name": f"{name}.json", "formatting": "alpaca", "columns": {**cols, "response": "output"}}
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")


def real_tokens(folder: Path, name: str) -> int:
    """Non-padding tokens one epoch trains on, with the ChatML template both tools use: prompt + answer per sample
    (cut at the cutoff); for a preference pair, prompt + chosen and prompt + rejected."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(MODEL))
    rows = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))

    def n(r, answer):
        msgs = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["instruction"]},
                {"role": "assistant", "content": answer}]
        return min(CUTOFF, len(tok.apply_chat_template(msgs, tokenize=True, return_dict=False)))
    if "chosen" in rows[0]:
        return sum(n(r, r["chosen"]) + n(r, r["rejected"]) for r in rows)
    return sum(n(r, r["output"]) for r in rows)


def real_sequences(folder: Path, name: str) -> int:
    """Sequences one epoch trains on: a sample, or a pair's chosen and rejected."""
    rows = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    return len(rows) * (2 if "chosen" in rows[0] else 1)


# ---------------------------------------------------------------- workloads
WORKLOADS = {
    "lora": {"train": "bench_sft", "eval": "bench_sft_eval", "stage": "sft", "finetuning_type": "lora",
             "batch": 4, "lr": 1e-4},
    "full": {"train": "bench_sft", "eval": "bench_sft_eval", "stage": "sft", "finetuning_type": "full",
             "batch": 4, "lr": 1e-5},
    "dpo": {"train": "bench_dpo", "eval": "bench_dpo_eval", "stage": "dpo", "finetuning_type": "lora",
            "batch": 2, "lr": 1e-4},
}
# TuneBoard with every speed lever off: the plain fp32 run whose losses the defaults must match
REFERENCE = {"precision": "fp32", "packing": False, "gradient_checkpointing": False}
REFERENCE_UNPADDED = {"padding_free": False}  # an argument of the stages that have it (sft, dpo)


def _common(w: dict, data: Path, out: Path) -> dict:
    return {"model_name_or_path": str(MODEL), "template": "chatml", "stage": w["stage"],
            "finetuning_type": w["finetuning_type"], "dataset": w["train"], "eval_dataset": w["eval"],
            "dataset_dir": str(data), "cutoff_len": CUTOFF, "per_device_train_batch_size": w["batch"],
            "per_device_eval_batch_size": w["batch"], "learning_rate": w["lr"], "num_train_epochs": 1.0,
            "lr_scheduler_type": "cosine", "seed": 42, "output_dir": str(out)}


def peer_recipe(w: dict, data: Path, out: Path) -> dict:
    r = {**_common(w, data, out), "do_train": True, "do_eval": True, "eval_strategy": "no", "save_strategy": "no",
         "logging_steps": 1, "plot_loss": False, "overwrite_cache": True,
         "report_to": "none"}
    if w["finetuning_type"] == "lora":
        r.update(lora_rank=8, lora_target="all")
    if w["stage"] == "sft":
        r["neat_packing"] = True  # its fastest setting: packing without cross-attention
    return r


def tuneboard_recipe(w: dict, data: Path, out: Path, reference: bool) -> dict:
    r = _common(w, data, out)
    if w["finetuning_type"] == "lora":
        r.update(lora_rank=8, lora_target="all")  # both are the defaults already; said for the reader
    if reference:
        r.update(REFERENCE, **(REFERENCE_UNPADDED if w["stage"] in ("sft", "dpo") else {}))
    return r


# ---------------------------------------------------------------- running and measuring
class TreeRSS:
    """The largest sum of RSS over a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.05):
        import psutil
        self.proc, self.every, self.peak, self._stop = psutil.Process(pid), every, 0, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import psutil
        while not self._stop.is_set():
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(self.every)

    def stop(self) -> int:
        self._stop.set()
        self.thread.join()
        return self.peak


def run_measured(cmd: list[str], env: dict, log: Path) -> dict:
    t0 = time.time()
    with open(log, "w", encoding="utf-8") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        sampler = TreeRSS(p.pid)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        tree = sampler.stop()
    own = usage.ru_maxrss * 1024  # the largest single process the child ever was (Linux: kilobytes)
    return {"rc": p.returncode, "wall_s": round(time.time() - t0, 1), "peak_rss": max(tree, own)}


def _results(out: Path) -> dict:
    res = {}
    for name in ("all_results.json", "train_results.json", "eval_results.json"):
        f = out / name
        if f.is_file():
            res.update(json.loads(f.read_text(encoding="utf-8")))
    return res


GPU = {"on": False}  # --gpu: the runs see the GPU (else CUDA_VISIBLE_DEVICES is emptied: the CPU comparison)


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE")}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               DISABLE_VERSION_CHECK="1", TOKENIZERS_PARALLELISM="false")
    if not GPU["on"]:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# ---------------------------------------------------------------- model FLOPs utilisation (with --gpu)
# dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s; the longest name that matches wins
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "H100 PCIe": 756.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
               "A10G": 70.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0}


def peak_tflops(device_name: str) -> float | None:
    hits = [k for k in PEAK_TFLOPS if k.lower() in device_name.lower()]
    return PEAK_TFLOPS[max(hits, key=len)] if hits else None


def model_params(model_dir: Path = MODEL) -> int:
    """Parameters of a safetensors checkpoint, from its header (tied weights are stored, and counted, once)."""
    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def flops_per_token(stage: str, mean_len: float, model_dir: Path = MODEL) -> float:
    """PaLM's count: 6N + 12 x layers x hidden x sequence length per trained token (forward and backward, whatever
    the method), plus a forward (2N + 4 x layers x hidden x length) for dpo's reference pass."""
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    n, attn = model_params(model_dir), cfg["num_hidden_layers"] * cfg["hidden_size"] * mean_len
    return 6 * n + 12 * attn + ((2 * n + 4 * attn) if stage == "dpo" else 0)


def one_run(kind: str, w: dict, data: Path, work: Path, peer_venv: Path, extra: dict | None = None) -> dict:
    """extra: arguments added to TuneBoard's default run (--set: side experiments, never the reference's)."""
    out = work / kind
    shutil.rmtree(out, ignore_errors=True)
    recipe = peer_recipe(w, data, out) if kind == "peer" else tuneboard_recipe(w, data, out, kind == "reference")
    if kind == "tuneboard":
        recipe.update(extra or {})
    cfg = work / f"{kind}.yaml"
    cfg.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    env = _env()
    if kind == "peer":
        cmd = [str(peer_venv / "bin" / "llamafactory-cli"), "train", str(cfg)]
        env.pop("PYTHONPATH", None)
    else:
        cmd = [sys.executable, "-m", "engine", "train", str(cfg)]
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    m = run_measured(cmd, env, work / f"{kind}.log")
    res = _results(out)
    if m["rc"] != 0 or "train_runtime" not in res:
        tail = (work / f"{kind}.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{kind} failed (exit {m['rc']}); last lines of {work / (kind + '.log')}:\n{tail}")
    return {"train_runtime": res["train_runtime"], "train_loss": res.get("train_loss"),
            "eval_loss": res.get("eval_loss"), "peak_rss": m["peak_rss"], "wall_s": m["wall_s"],
            "precision": _precision(work / f"{kind}.log")}


def _precision(log: Path) -> str | None:
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "precision:" in line and "device:" in line:
            return line.split("precision:", 1)[1].strip()
    return None


# ---------------------------------------------------------------- the peer's venv
def ensure_peer(venv: Path) -> None:
    cli = venv / "bin" / "llamafactory-cli"
    if cli.is_file() and subprocess.run([str(cli), "version"], capture_output=True, env=_env()).returncode == 0:
        return
    print(f"installing LLaMA-Factory {PEER_VERSION} into {venv} (about 6.6 GB) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + [f"torch=={PEER_TORCH}"], check=True)  # the local CPU wheel, before anything pulls another
    # as issue 18 measured it: torchvision / torchaudio then lift torch to their own release (a CUDA build, run on
    # the CPU here); the table names the torch the peer ran on
    subprocess.run(pip + [f"llamafactory=={PEER_VERSION}"], check=True)
    if subprocess.run([str(cli), "version"], capture_output=True, env=_env()).returncode != 0:
        raise SystemExit(f"{cli} does not run after the install")


# ---------------------------------------------------------------- the table
def _gib(b) -> str:
    return f"{b / 2**30:.2f}"


def verdict(row: dict) -> dict:
    peer, tb, ref = row["peer"], row["tuneboard"], row["reference"]
    speed = tb["tokens_per_s"] / peer["tokens_per_s"]
    mem = tb["peak_rss"] / peer["peak_rss"]
    dtrain = abs(tb["train_loss"] - ref["train_loss"]) / ref["train_loss"]
    deval = abs(tb["eval_loss"] - ref["eval_loss"]) / ref["eval_loss"]
    return {"speed_ratio": round(speed, 2), "memory_ratio": round(mem, 2), "train_loss_delta": round(dtrain, 4),
            "eval_loss_delta": round(deval, 4),
            "ok": speed >= SPEED_GOAL and mem <= MEMORY_GOAL and dtrain <= LOSS_TOL and deval <= LOSS_TOL}


def table(rows: dict) -> str:
    mfu = any(r.get("mfu") for row in rows.values() for r in row.values() if isinstance(r, dict))
    lines = ["| workload | run | eff. tokens/s | whole run s | peak RSS GiB | train loss | eval loss | speed x | "
             "memory x | loss delta (train / eval) |" + (" MFU % |" if mfu else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if mfu else "")]
    for name, row in rows.items():
        v = row["verdict"]
        for kind in ("peer", "tuneboard", "reference"):
            r = row[kind]
            label = {"peer": f"LLaMA-Factory {PEER_VERSION} best", "tuneboard": "TuneBoard defaults"
                     + (f" ({r['precision']})" if r.get("precision") else ""),
                     "reference": "TuneBoard plain fp32"}[kind]
            extra = (f"**{v['speed_ratio']}** | **{v['memory_ratio']}** | {100 * v['train_loss_delta']:.2f} % / "
                     f"{100 * v['eval_loss_delta']:.2f} %") if kind == "tuneboard" else " | | "
            lines.append(f"| {name} | {label} | {r['tokens_per_s']:.1f} | {r['wall_s']:.0f} | {_gib(r['peak_rss'])} | "
                         f"{r['train_loss']:.4f} | {r['eval_loss']:.4f} | {extra} |"
                         + (f" {100 * r['mfu']:.1f} |" if r.get("mfu") else " - |" if mfu else ""))
    return "\n".join(lines)


def machine() -> dict:
    import torch
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "cpu": cpu, "cores": os.cpu_count(),
            "torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
            "commit": commit.stdout.strip() or "?", "load": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads: lora,full,dpo")
    ap.add_argument("--peer-venv", default=os.environ.get("PEER_VENV", "/work/peer/venv"))
    ap.add_argument("--runs", default="peer,tuneboard,reference", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help="write a step-time breakdown (bench/profile_*.txt)")
    ap.add_argument("--keep", help="keep the runs' folders here")
    ap.add_argument("--gpu", action="store_true",
                    help="train on the GPU (the peer too) and report model FLOPs utilisation")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an argument added to TuneBoard's default run (a lever to try; YAML values)")
    a = ap.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"--only: unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    venv = Path(a.peer_venv).resolve()
    if ROOT in venv.parents:
        raise SystemExit(f"--peer-venv: {venv} is inside the project; the peer lives outside it")
    kinds = [k for k in a.runs.split(",") if k]
    device = None
    if a.gpu:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("--gpu: torch sees no CUDA device here; leave --gpu out for the CPU comparison")
        GPU["on"], device = True, torch.cuda.get_device_name(0)
    extra = {}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item}: write it key=value")
        extra[key] = yaml.safe_load(value)
    if "peer" in kinds:
        ensure_peer(venv)
    info = machine()
    if device:
        info["gpu"], info["gpu_peak_tflops"] = device, peak_tflops(device)
    print(f"machine: {info}", flush=True)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="tuneboard-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    data.mkdir(exist_ok=True)
    make_data(data)
    rows = {}
    for name in names:
        w = WORKLOADS[name]
        tokens = real_tokens(data, w["train"])
        row = {"tokens": tokens, "sequences": real_sequences(data, w["train"])}
        for kind in kinds:
            d = work / name
            d.mkdir(exist_ok=True)
            r = one_run(kind, w, data, d, venv, extra)
            r["tokens_per_s"] = tokens / r["train_runtime"]
            if device:
                peak = peak_tflops(device)
                per_token = flops_per_token(w["stage"], tokens / row["sequences"])
                r["mfu"] = round(r["tokens_per_s"] * per_token / (peak * 1e12), 4) if peak else None
            row[kind] = r
            print(f"{name} {kind}: {r['tokens_per_s']:.1f} tokens/s ({tokens} tokens / {r['train_runtime']:.1f} s), "
                  f"peak RSS {_gib(r['peak_rss'])} GiB, train loss {r['train_loss']}, eval loss {r['eval_loss']}, "
                  f"load {os.getloadavg()[0]:.2f}" + (f", MFU {100 * r['mfu']:.1f} % of {device}'s bf16 peak"
                                                      if r.get("mfu") else ""), flush=True)
        if a.profile:
            from profile_steps import profile_workload
            prof = ROOT / "bench" / f"profile_{name}.txt"
            profile_workload(tuneboard_recipe(w, data, work / name / "profile", False), prof)
            print(f"{name}: step-time breakdown in {prof}", flush=True)
        if all(k in row for k in ("peer", "tuneboard", "reference")):
            row["verdict"] = verdict(row)
            rows[name] = row
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    if not rows:
        return 0
    print(f"\n{info['date']}, {info['cpu']} ({info['cores']} cores, torch {info['torch']}, {info['capability']}), "
          f"commit {info['commit']}, load average {info['load']} before / {info['load_after']} after\n")
    print(table(rows))
    (ROOT / "bench" / "peer_results.json").write_text(json.dumps({"machine": info, "workloads": rows}, indent=1)
                                                      + "\n", encoding="utf-8")
    missed = [n for n, r in rows.items() if not r["verdict"]["ok"]]
    if missed:
        print(f"\ngoal missed (speed >= {SPEED_GOAL}x, memory <= {MEMORY_GOAL}x, losses within "
              f"{100 * LOSS_TOL:.0f} %): {', '.join(missed)}")
        return 1
    print(f"\nall goals met (speed >= {SPEED_GOAL}x, memory <= {MEMORY_GOAL}x, losses within {100 * LOSS_TOL:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

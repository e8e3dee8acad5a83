"""What the CPU test suite cannot run, checked on one GPU: bf16 training and DeepSpeed ZeRO-2 / ZeRO-3, with and
without CPU offload, through `tuneboard train` (torchrun + the HF Trainer integration) on a tiny random Llama
that uses the bundled tokenizer. Each check is a real run; the script reports pass/fail, losses against the fp32
baseline, seconds per step and peak GPU memory, and writes gpu_check.json + gpu_check.log to --out.

Checks: fp32 and bf16 without DeepSpeed; QLoRA (4-bit nf4 + double quantization through bitsandbytes, LoRA in
bf16: loss finite and falling, peak CUDA memory, the adapter loads on the unquantized base and changes it); ZeRO-2, ZeRO-2 + offload, ZeRO-3, ZeRO-3 + offload (LoRA, bf16);
ZeRO-3 full fine-tuning (the saved 16-bit weights load back whole); ZeRO-2 resume from a checkpoint (same steps,
no duplicate log lines). A LoRA adapter trained under ZeRO-3 must load on its base and change its logits.

Prepare on the CPU machine (network; the GPU image has torch, peft, accelerate but not deepspeed/datasets):
    .venv/bin/python bench/gpu_check.py --kit .whl        # tokenizer -> .whl/tokenizer, prints the wheel list
    (then run the printed `pip download` / `pip wheel` lines; `/.whl/` is git-ignored, well under 64 MiB)
Run on the GPU machine in ONE device call, carry [".whl"], timeout_s 560:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --tokenizer .whl/tokenizer --out $OUT
QLoRA alone (bitsandbytes' wheel is 43 MB: it does not fit beside DeepSpeed's kit), in its own device call:
    .venv/bin/python bench/gpu_check.py --kit .whl --qlora    # the same, with bitsandbytes and without DeepSpeed
    ... the same install line ... && PYTHONPATH=/tmp/site python3 bench/gpu_check.py --tokenizer .whl/tokenizer
    --out $OUT --only qlora4
Quick plumbing test without a GPU: `.venv/bin/python bench/gpu_check.py --cpu` (fp32 baseline only).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DS = ROOT / "examples" / "deepspeed"
STEPS = 30
WHEELS = ["deepspeed==0.19.8", "hjson==3.1.0", "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0",
          "typing-inspection==0.4.5", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19",
          "transformers==5.24.0", "huggingface-hub==2.4.0", "peft==0.21.2", "accelerate==1.15.0",
          "fsspec==2026.9.0"]
QLORA_WHEELS = [w for w in WHEELS if w.split("==")[0] not in ("deepspeed", "hjson", "pydantic", "pydantic-core",
                                                                "annotated-types", "typing-inspection")] \
    + ["bitsandbytes==0.50.2"]
LORA = {"finetuning_type": "lora", "lora_rank": "8"}
QLORA = {**LORA, "bf16": "true", "quantization_bit": "4", "quantization_type": "nf4", "double_quantization": "true"}
CHECKS = {  # name -> (overrides, compared with)
    "fp32": ({**LORA}, None),
    "bf16": ({**LORA, "bf16": "true"}, "fp32"),
    "zero2": ({**LORA, "bf16": "true", "deepspeed": str(DS / "ds_z2_config.json")}, "bf16"),
    "zero2_offload": ({**LORA, "bf16": "true", "deepspeed": str(DS / "ds_z2_offload_config.json")}, "bf16"),
    "zero3": ({**LORA, "bf16": "true", "deepspeed": str(DS / "ds_z3_config.json")}, "bf16"),
    "zero3_offload": ({**LORA, "bf16": "true", "deepspeed": str(DS / "ds_z3_offload_config.json")}, "bf16"),
    "zero3_full": ({"finetuning_type": "full", "bf16": "true", "learning_rate": "1e-3",
                    "deepspeed": str(DS / "ds_z3_config.json")}, None),
    # 4-bit weights of a random model compute other losses than bf16's: judged on its own curve, not against bf16
    "qlora4": (QLORA, None),
}
LOSS_TOL = 0.25  # |final loss - compared run's| may be at most this share of the compared run's loss drop


def build_tiny(tokenizer_dir: Path, dest: Path) -> Path:
    """The tests' tiny model: a random 2-layer Llama (hidden 64) on the bundled tokenizer, seed 0."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


class GpuMemory:
    """Peak memory used on GPU 0 (all processes) while a run goes, sampled through NVML."""

    def __init__(self):
        try:
            import pynvml
            pynvml.nvmlInit()
            self.h, self.nvml = pynvml.nvmlDeviceGetHandleByIndex(0), pynvml
        except Exception:  # no NVML (the --cpu smoke test)
            self.nvml = None
        self.peak = self.base = 0

    def used(self) -> int:
        return self.nvml.nvmlDeviceGetMemoryInfo(self.h).used if self.nvml else 0

    def __enter__(self):
        self.base = self.peak = self.used()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, self.used())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    @property
    def peak_mib(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


def train(name: str, model: Path, data: Path, work: Path, overrides: dict, log, steps: int = STEPS,
          extra: tuple = ()) -> dict:
    out = work / name
    argv = {"model_name_or_path": str(model), "template": "chatml", "dataset": "identity", "dataset_dir": str(data),
            "cutoff_len": "128", "per_device_train_batch_size": "4", "learning_rate": "5e-3", "max_steps": str(steps),
            "logging_steps": "1", "save_steps": str(steps), "plot_loss": "false", "seed": "0", "output_dir": str(out),
            "master_port": str(29500 + len(name)), **overrides}
    cmd = [sys.executable, "-m", "engine", "train", *[f"{k}={v}" for k, v in argv.items()], *extra]
    t0 = time.time()
    with GpuMemory() as mem:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.write(f"\n===== {name}: {' '.join(cmd)}\n{p.stdout[-6000:]}\n{p.stderr[-12000:]}\n")
    rows = [r for r in _read_log(out) if "loss" in r]
    status = _json(out / "status.json")
    res = _json(out / "all_results.json")
    return {"name": name, "rc": p.returncode, "state": status.get("state"), "error": status.get("error"),
            "steps": [r["step"] for r in rows], "losses": [round(r["loss"], 4) for r in rows],
            "seconds": round(time.time() - t0, 1), "train_runtime": res.get("train_runtime"),
            "peak_gpu_mib": mem.peak_mib, "peak_cuda_mb": res.get("peak_gpu_mb"), "out": str(out),
            "quantized": "QLoRA: base weights in" in _text(out / "running.log"),
            "bf16_used": "precision: bf16" in _text(out / "running.log"),
            # a DeepSpeed engine saves its partitioned ZeRO states inside the Trainer's checkpoint
            "deepspeed_used": bool(list(out.glob("checkpoint-*/global_step*/*zero_pp_rank_0*optim_states.pt")))}


def _read_log(out: Path) -> list[dict]:
    rows = []
    for line in _text(out / "trainer_log.jsonl").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def _json(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def _text(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


def _tail_mean(r: dict) -> float:
    return sum(r["losses"][-5:]) / max(len(r["losses"][-5:]), 1)


def judge(r: dict, results: dict, steps: int = STEPS) -> list[str]:
    """Reasons the run fails (empty = pass)."""
    bad = []
    if r["rc"] != 0 or r["state"] != "finished":
        bad.append(f"rc {r['rc']}, state {r['state']}, error {r['error']}")
    if r["steps"] != list(range(1, steps + 1)):
        bad.append(f"logged steps {r['steps'][:5]}... not 1..{steps}")
    if not r["losses"] or not all(math.isfinite(x) for x in r["losses"]):
        bad.append("missing or non-finite loss")
    elif _tail_mean(r) >= r["losses"][0]:
        bad.append(f"loss did not go down ({r['losses'][0]} -> {_tail_mean(r):.4f})")
    ref = CHECKS.get(r["name"], (None, None))[1]
    if ref and ref in results and results[ref]["losses"] and r["losses"]:
        a, b = _tail_mean(r), _tail_mean(results[ref])
        drop = results[ref]["losses"][0] - b  # what the compared run learned; an untrained run is `drop` away
        r["vs_" + ref] = round(abs(a - b) / max(drop, 1e-6), 3)
        if r["vs_" + ref] > LOSS_TOL:
            bad.append(f"final loss {a:.4f} vs {ref} {b:.4f}: apart by {r['vs_' + ref]:.0%} of {ref}'s loss drop "
                       f"{drop:.3f} (allowed {LOSS_TOL:.0%})")
    if "bf16" in r["name"] or r["name"].startswith(("zero", "qlora")):
        if not r["bf16_used"]:
            bad.append("the run did not train in bf16")
    if r["name"].startswith("qlora") and not r["quantized"]:
        bad.append("the base model was not loaded quantized (no 'QLoRA: base weights in' line in running.log)")
    if r["name"].startswith("qlora") and not (Path(r["out"]) / "adapter_model.safetensors").is_file():
        bad.append("no adapter_model.safetensors saved")
    if r["name"].startswith("zero") and not r["deepspeed_used"]:
        bad.append("no ZeRO optimizer states in the checkpoint: DeepSpeed did not run the training")
    return bad


def check_adapter(model: Path, out: Path) -> list[str]:
    """The ZeRO-3 LoRA adapter is whole: it loads on its base and changes the logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3458, 314, 260, 2]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        after = PeftModel.from_pretrained(base, str(out)).eval()(input_ids=ids).logits
    return [] if not torch.allclose(before, after) else ["the adapter does not change the model"]


def check_full(model: Path, out: Path) -> list[str]:
    """ZeRO-3 full fine-tuning saved whole 16-bit-gathered weights: same shapes as the base, and changed."""
    from safetensors.torch import load_file
    files = sorted(out.glob("model*.safetensors"))
    if not files:
        return ["no model*.safetensors in the output"]
    saved = {k: v for f in files for k, v in load_file(f).items()}
    base = load_file(model / "model.safetensors")
    wrong = [k for k, v in base.items() if k not in saved or saved[k].shape != v.shape]
    changed = any(not (saved[k].float() == v.float()).all() for k, v in base.items() if k in saved)
    return ([f"missing or mis-shaped tensors: {wrong[:3]}"] if wrong else []) + ([] if changed else ["unchanged"])


def check_resume(model: Path, data: Path, work: Path, log) -> dict:
    """ZeRO-2 run to step 10 with checkpoints 5 and 10; drop checkpoint-10 and the result; resume from 5."""
    over = {**LORA, "bf16": "true", "deepspeed": str(DS / "ds_z2_config.json"), "save_steps": "5"}
    first = train("zero2_resume", model, data, work, over, log, steps=10)
    out = Path(first["out"])
    shutil.rmtree(out / "checkpoint-10", ignore_errors=True)
    for f in ("adapter_model.safetensors", "all_results.json"):
        (out / f).unlink(missing_ok=True)
    again = train("zero2_resume", model, data, work, {**over, "resume_from_checkpoint": "true"}, log, steps=10)
    again["name"] = "zero2_resume"
    bad = judge(again, {}, steps=10)
    if first["losses"][:5] != again["losses"][:5]:
        bad.append("the lines before the checkpoint changed")
    again["problems"] = bad
    return again


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=str(ROOT / "models" / "SmolLM2-135M-Instruct"))
    ap.add_argument("--out", default=str(ROOT / "bench"))
    ap.add_argument("--only", nargs="*", help="check names (default: all)")
    ap.add_argument("--cpu", action="store_true", help="plumbing test without a GPU: the fp32 baseline only")
    ap.add_argument("--kit", help="prepare DIR for the device call (tokenizer + the wheel download lines)")
    ap.add_argument("--qlora", action="store_true", help="with --kit: the QLoRA check's wheels (bitsandbytes, no "
                                                         "DeepSpeed)")
    a = ap.parse_args()
    if a.kit:
        kit = Path(a.kit)
        (kit / "tokenizer").mkdir(parents=True, exist_ok=True)
        for f in Path(a.tokenizer).glob("*"):
            if f.is_file() and not f.name.endswith(".safetensors"):
                shutil.copy2(f, kit / "tokenizer" / f.name)
        plat = " ".join(f"--platform {p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                                    "manylinux2014_x86_64"))
        wheels = [w for w in (QLORA_WHEELS if a.qlora else WHEELS) if not w.startswith("deepspeed")]
        print(f"python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "
              f"{plat} -d {kit} {' '.join(wheels)}")
        if a.qlora:
            return 0
        print(f"python3 -m pip wheel --no-deps --no-build-isolation -w {kit} deepspeed==0.19.8  "
              "# sdist only; DS_BUILD_OPS=0 default: its ops are JIT-built on the GPU machine")
        return 0

    import torch
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "tuneboard-gpu-check"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env.update(device=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported())
    for mod in ("transformers", "peft", "accelerate", "datasets", "deepspeed", "bitsandbytes"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # reported, and the checks that need it fail with the reason
            env[mod] = f"missing ({type(e).__name__})"
    print(json.dumps(env), flush=True)
    if not env["cuda"] and not a.cpu:
        print("no CUDA device: run with --cpu for the plumbing test only", file=sys.stderr)
        return 2
    model = build_tiny(Path(a.tokenizer), work / "tiny")
    # the QLoRA check needs bitsandbytes, which only its own kit (--kit DIR --qlora) carries
    default = [n for n in CHECKS if n != "qlora4" or not env["bitsandbytes"].startswith("missing")]
    names = ["fp32"] if a.cpu else (a.only or default + ["zero2_resume"])
    results: dict = {}
    with open(out_dir / "gpu_check.log", "w") as log:
        for name in names:
            if name == "zero2_resume":
                r = check_resume(model, ROOT / "data", work, log)
            else:
                r = train(name, model, ROOT / "data", work, CHECKS[name][0], log)
                r["problems"] = judge(r, results)
                if name in ("zero3", "qlora4") and not r["problems"]:  # QLoRA: loads on the unquantized base
                    r["problems"] += check_adapter(model, Path(r["out"]))
                if name == "zero3_full" and not r["problems"]:
                    r["problems"] += check_full(model, Path(r["out"]))
            results[name] = r
            print(f"{name:14s} {'PASS' if not r['problems'] else 'FAIL'}  {r['seconds']:6.1f}s  "
                  f"peak {r['peak_gpu_mib']:8.1f} MiB (CUDA allocated {r['peak_cuda_mb']} MB)  "
                  f"loss {r['losses'][:1]} -> {r['losses'][-1:]}  "
                  f"{'; '.join(r['problems'])}", flush=True)
            (out_dir / "gpu_check.json").write_text(json.dumps({"env": env, "results": results}, indent=1))
    return 0 if all(not r["problems"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

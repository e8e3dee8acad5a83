"""Export of the bundled SmolLM2-135M-Instruct with a LoRA adapter merged: seconds and file sizes per format.

    flock /work/locks/heavy.lock .venv/bin/python bench/export_formats.py [--formats safetensors,f16,q8_0]

Each export is a separate `tuneboard export` process (load + merge + write, the GGUF ones also convert with
llama.cpp's converter), timed from start to exit. A random rank-8 adapter stands in for a trained one (the same
shapes, so the same work). k-quants are measured when llama.cpp's llama-quantize is on PATH.
Run it on a quiet machine: other jobs on the same cores stretch every number here.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    from modelkit import build_lora_adapter

    from engine.utils import human_size
    p = argparse.ArgumentParser()
    p.add_argument("--formats", default="safetensors,f16,q8_0" + (",q4_k_m" if shutil.which("llama-quantize") else ""))
    args = p.parse_args()
    base = ROOT / "models" / "SmolLM2-135M-Instruct"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        adapter = build_lora_adapter(base, Path(tmp) / "adapter", rank=8)
        for fmt in args.formats.split(","):
            out = Path(tmp) / fmt
            extra = [] if fmt == "safetensors" else ["export_format=gguf", f"gguf_type={fmt}"]
            cmd = [sys.executable, "-m", "engine", "export", f"model_name_or_path={base}",
                   f"adapter_name_or_path={adapter}", "template=chatml", f"export_dir={out}", *extra]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
            secs = time.perf_counter() - t0
            weights = [f for f in out.iterdir() if f.suffix in (".safetensors", ".gguf")]
            size = sum(f.stat().st_size for f in weights)
            rows.append({"format": fmt, "seconds": round(secs, 1), "bytes": size, "size": human_size(size),
                         "files": sorted(f.name for f in weights)})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| format | weights | export time (s) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | {r['size']} | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

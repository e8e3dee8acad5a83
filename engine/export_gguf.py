"""export_format=gguf: the merged model as one GGUF file (llama.cpp, Ollama, LM Studio) and an Ollama Modelfile.

The conversion is llama.cpp's own converter (convert_hf_to_gguf.py with its conversion/ and gguf-py/ packages),
taken from the pinned llama-cpp-python sdist, whose vendor/llama.cpp holds it: `pip download` fetches the sdist
into .cache/ (ignored) on first use or with `make gguf-converter`, and the converter runs from there as a
subprocess of this Python (our pinned torch / transformers / sentencepiece). Nothing of it is copied into the repo.

f16 / bf16 / f32 / q8_0 come out of the converter; the k-quants (q4_k_m, ...) need llama.cpp's C++ quantizer
(`llama-quantize` on PATH), which is run on an f16 conversion. The training chat template goes into the GGUF
metadata (tokenizer.chat_template, with eos = the template's stop word and add_bos as the template adds it),
read back and checked before the file is kept; the Modelfile carries the same template in Ollama's Go syntax.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from .errors import ConfigError
from .utils import atomic_write_json, atomic_write_text, get_logger, repo_root
from .errors import UserError

log = get_logger()
LLAMA_CPP = "llama-cpp-python==0.3.36"  # the pinned sdist; the Makefile's reference-templates use the same one
CACHE_ENV = "TUNEBOARD_CACHE"  # where fetched tools live (default: <repo>/.cache)
CONVERTER = "convert_hf_to_gguf.py"
SUPPORTED = "supported_architectures.json"
CONVERT_TYPES = ("f16", "bf16", "f32", "q8_0")       # what the converter writes itself
K_QUANTS = {"q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}  # llama-quantize's names
QUANTIZER = "llama-quantize"
MODELFILE = "Modelfile"


# ---- the converter, fetched once from the pinned sdist
def converter_dir() -> Path:
    root = Path(os.environ.get(CACHE_ENV) or repo_root() / ".cache")
    return root / "llama.cpp" / LLAMA_CPP.replace("==", "-")


def _wanted(name: str) -> str | None:
    """The path inside vendor/llama.cpp of an sdist member the converter needs (None for the rest)."""
    _, sep, rest = name.partition("/vendor/llama.cpp/")
    if not sep:
        return None
    if rest == CONVERTER or rest.startswith(("conversion/", "gguf-py/gguf/")) or rest == "LICENSE":
        return rest
    return None


def fetch() -> Path:
    """The converter's folder, fetched from the pinned sdist when it is not here yet (pip download, ~77 MB)."""
    d = converter_dir()
    if (d / CONVERTER).is_file() and (d / SUPPORTED).is_file():
        return d
    log.info("fetching llama.cpp's GGUF converter (%s, pip download into %s)...", LLAMA_CPP, d)
    d.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               LLAMA_CPP, "-d", tmp]
        r = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if r.returncode != 0 or not sdists:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no sdist"]
            raise UserError(f"export_format=gguf: llama.cpp's converter is not in {d} and could not be fetched "
                            f"({LLAMA_CPP}: {tail[0]}). Run `make gguf-converter` while online, then export again.")
        staged = Path(tmp) / "converter"
        with tarfile.open(sdists[0]) as tf:
            for m in tf.getmembers():
                rel = _wanted(m.name)
                if rel and m.isfile():
                    target = staged / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tf.extractfile(m).read())
        if not (staged / CONVERTER).is_file():
            raise UserError(f"export_format=gguf: {sdists[0].name} has no vendor/llama.cpp/{CONVERTER}.")
        archs = _list_architectures(staged)
        atomic_write_json(staged / SUPPORTED, {"package": LLAMA_CPP, "architectures": archs})
        shutil.rmtree(d, ignore_errors=True)
        staged.rename(d)
    log.info("llama.cpp's converter is in %s (%d text architectures)", d, len(archs))
    return d


def _list_architectures(d: Path) -> list[str]:
    """The converter's own list of the model classes it converts (--print-supported-models, TEXT section)."""
    r = subprocess.run([sys.executable, str(d / CONVERTER), "--print-supported-models"], capture_output=True,
                       text=True, cwd=d)
    text = r.stdout + r.stderr
    body = text.split("TEXT models:", 1)[-1].split("MMPROJ models:", 1)[0]
    archs = re.findall(r"^\s*-\s*(\w+)\s*$", body, re.M)
    if r.returncode != 0 or not archs:
        raise UserError(f"export_format=gguf: llama.cpp's converter did not start ({text.strip()[-300:]}).")
    return archs


def supported_architectures() -> list[str]:
    return json.loads((fetch() / SUPPORTED).read_text())["architectures"]


def quantizer() -> str | None:
    return shutil.which(QUANTIZER)


# ---- checks before any work
def _architecture(base: str) -> str:
    try:
        cfg = json.loads((Path(base) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{base}: no readable config.json; cannot tell the model's architecture.") from None
    archs = cfg.get("architectures") or []
    return str(archs[0]) if archs else str(cfg.get("model_type") or "unknown")


def check(a: dict, base: str) -> None:
    gtype = a.get("gguf_type") or "f16"
    if gtype not in CONVERT_TYPES and gtype not in K_QUANTS:
        raise ConfigError(f"gguf_type: {gtype!r} is not one of {', '.join(CONVERT_TYPES + tuple(K_QUANTS))}.",
                          "gguf_type")
    if gtype in K_QUANTS and quantizer() is None:
        raise UserError(f"gguf_type={gtype}: this k-quant needs llama.cpp's quantizer `{QUANTIZER}` on PATH, and it "
                        "is not there. Install llama.cpp (its release binaries, or build it: cmake -B build && "
                        f"cmake --build build --target {QUANTIZER}) and put {QUANTIZER} on PATH; or pick f16, bf16 "
                        "or q8_0, which need nothing more. Nothing was written.")
    arch = _architecture(base)
    if arch not in supported_architectures():
        raise UserError(f"export_format=gguf: llama.cpp's converter ({LLAMA_CPP}) does not support the "
                        f"architecture {arch} of {base}; export safetensors instead (export_format=safetensors). "
                        "Nothing was written.")


# ---- writing
def write(job, folder: Path, write_hf):
    """Convert the merged model (saved by write_hf into a scratch folder inside `folder`) to one GGUF file, check
    its chat metadata, and write the Modelfile beside it."""
    from .export import Written
    gtype = job.args.get("gguf_type") or "f16"
    d = fetch()
    scratch = folder / ".merged-hf"
    try:
        write_hf(job, scratch)
        _prepare_tokenizer(scratch, job)
        name = f"{_model_name(job)}-{gtype}.gguf"
        final = folder / name
        t0 = time.time()
        if gtype in K_QUANTS:
            f16 = scratch / "model-f16.gguf"
            _convert(d, scratch, f16, "f16")
            _quantize(f16, final, K_QUANTS[gtype])
        else:
            _convert(d, scratch, final, gtype)
        log.info("GGUF %s written in %.0f s", gtype, time.time() - t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    facts = verify(final, job)
    modelfile = folder / MODELFILE
    atomic_write_text(modelfile, modelfile_text(job, name))
    ollama_name = re.sub(r"[^a-z0-9._-]+", "-", Path(job.args["export_dir"]).name.lower()).strip("-.") or "model"
    mf_path = Path(job.args["export_dir"]) / MODELFILE
    next_line = f"ollama create {ollama_name} -f {shlex.quote(str(mf_path))}"
    use = ["llama.cpp:", "", "```sh", f"llama-cli -m {name} -cnv", "```", "",
           "Ollama (the Modelfile beside it holds the chat template, stop words and system prompt):", "",
           "```sh", f"ollama create {ollama_name} -f Modelfile", f"ollama run {ollama_name}", "```"]
    return Written(f"GGUF {gtype} (`{name}`), converted with llama.cpp's convert_hf_to_gguf.py from {LLAMA_CPP}",
                   use, library="gguf", facts={"gguf": name, "gguf_type": gtype, "next": next_line, **facts})


def _model_name(job) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(job.base).name).strip("-") or "model"


def _prepare_tokenizer(hf: Path, job) -> None:
    """The scratch folder's tokenizer config as the GGUF should carry it: eos = the template's stop word (when it
    is one token: llama.cpp stops there), add_bos as the template adds bos."""
    p = hf / "tokenizer_config.json"
    cfg = json.loads(p.read_text(encoding="utf-8"))
    t, tok = job.template, job.tokenizer
    for w in t.stop_words[:1]:
        if len(tok.encode(w, add_special_tokens=False)) == 1:
            cfg["eos_token"] = w
    cfg["add_bos_token"] = bool(t.bos_ids(tok))
    atomic_write_text(p, json.dumps(cfg, ensure_ascii=False, indent=2))


_TENSOR_LINE = re.compile(r"^INFO:hf-to-gguf:[\w.]+,\s+torch\.")


def _convert(d: Path, hf: Path, out: Path, outtype: str) -> None:
    log.info("converting to GGUF %s with llama.cpp's %s...", outtype, CONVERTER)
    cmd = [sys.executable, str(d / CONVERTER), str(hf), "--outfile", str(out), "--outtype", outtype]
    _run_tool(cmd, d, "llama.cpp's converter")


def _quantize(src: Path, out: Path, qtype: str) -> None:
    log.info("quantizing to %s with %s...", qtype, QUANTIZER)
    _run_tool([quantizer() or QUANTIZER, str(src), str(out), qtype], src.parent, QUANTIZER)


def _run_tool(cmd: list[str], cwd: Path, what: str) -> None:
    """Run a tool, its progress into our log (tensor-by-tensor lines and all but one progress bar update every
    few seconds left out); a failure raises UserError with its last lines."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, errors="replace")
    tail: list[str] = []
    last_bar = 0.0
    buf = ""
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read(4096)
        if not chunk:
            break
        buf += chunk
        *lines, buf = re.split(r"[\r\n]", buf)
        for line in lines:
            line = line.rstrip()
            if not line or _TENSOR_LINE.match(line):
                continue
            tail = (tail + [line])[-8:]
            if "%|" in line:  # a progress bar
                if time.time() - last_bar < 3 and "100%" not in line:
                    continue
                last_bar = time.time()
            log.info("  %s", line[:300])
    rc = proc.wait()
    if rc != 0:
        low = "\n".join(tail).lower()
        hint = " The disk is full: free space and export again." if "no space left" in low else ""
        raise UserError(f"{what} failed (exit {rc}): {' | '.join(tail[-3:])}.{hint} The previous export, if any, "
                        "is untouched.")


def read_metadata(path: Path) -> dict:
    """The GGUF's metadata as plain values (gguf's reader)."""
    import gguf
    r = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}


def verify(path: Path, job) -> dict:
    """The GGUF carries the training chat template, the template's stop word as eos and its bos rule; refused
    (the new file is not kept) when it does not."""
    meta = read_metadata(path)
    t, tok = job.template, job.tokenizer
    problems = []
    if meta.get("tokenizer.chat_template") != tok.chat_template:
        problems.append("tokenizer.chat_template is not the training template")
    stops = t.stop_token_ids(tok)
    if meta.get("tokenizer.ggml.eos_token_id") not in stops:
        problems.append(f"eos token {meta.get('tokenizer.ggml.eos_token_id')} is none of the stop tokens {stops}")
    if bool(meta.get("tokenizer.ggml.add_bos_token", False)) != bool(t.bos_ids(tok)):
        problems.append("tokenizer.ggml.add_bos_token differs from the template's bos rule")
    if problems:
        raise UserError(f"export_format=gguf: the converted file is not right: {'; '.join(problems)}. Nothing was "
                        "kept; please report this with the model and template.")
    return {"architecture": meta.get("general.architecture"), "eos_token_id": meta.get("tokenizer.ggml.eos_token_id")}


# ---- Ollama
def _quoted(s: str) -> str:
    if '"""' in s:
        raise UserError(f'Modelfile: the text {s[:40]!r}... holds """, which a Modelfile cannot quote.')
    return f'"""{s}"""'


def modelfile_text(job, gguf_name: str) -> str:
    """FROM the GGUF beside it, TEMPLATE (the training template in Ollama's Go syntax), a stop parameter per stop
    word, SYSTEM when the run has a default system prompt."""
    t, tok = job.template, job.tokenizer
    stops = list(t.stop_words) or ([tok.eos_token] if tok.eos_token else [])
    lines = [f"# Made by TuneBoard from {job.base}" + (f" + {', '.join(job.adapters)}" if job.adapters else ""),
             f"FROM ./{gguf_name}"]
    if t.name == "auto":  # the tokenizer's own Jinja: no Go form of it here; Ollama reads the GGUF's template
        log.warning("template auto: the Modelfile has no TEMPLATE; Ollama derives one from the GGUF's chat template")
    else:
        lines.append(f"TEMPLATE {_quoted(t.to_go_template())}")
    lines += [f"PARAMETER stop {json.dumps(w, ensure_ascii=False)}" for w in stops]
    if t.default_system:
        lines.append(f"SYSTEM {_quoted(t.default_system)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # `python -m engine.export_gguf fetch` (make gguf-converter)
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m engine.export_gguf fetch")
    print(fetch())

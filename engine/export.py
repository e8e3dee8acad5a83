"""`tuneboard export`: merge LoRA adapter(s) into the base model and write it in one of FORMATS.

Shared by every format: loading + merging, the chat template (Template.to_jinja written into the tokenizer unless
its own already builds the same prompts), the generation stop tokens, the README model card, the marker that says
what the folder holds, and the swap: everything is written to a temporary sibling folder and moved into place at
the end, so a failed export never leaves half a model and never destroys a previous one. A format is one FORMATS
entry: a writer that fills the new folder (and a check that refuses bad input before any work). safetensors: the
folder plain transformers loads; gguf: engine.export_gguf (llama.cpp's converter + an Ollama Modelfile). With
export_hub_model_id the finished folder is uploaded (engine.hub_upload); a failed upload loses nothing local.
"""
from __future__ import annotations

import errno
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .args import Namespace
from .config import compat_notes, load_config
from .data.templates import resolve_template
from .errors import ConfigError, UserError
from .export_gguf import check, write
from .hub_upload import check as check_upload
from .hub_upload import upload
from .models.loader import adapter_paths, check_adapter, load_model, load_tokenizer, model_path
from .models.registry import EXPORT_MARKER, lookup
from .train.rundir import record_of
from .utils import atomic_write_json, atomic_write_text, get_logger, human_size, read_json_object, share_like_umask

log = get_logger()
DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def _check_target(out: Path, a: dict, adapters: list[str], ident: dict) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"export_dir: {out} is a file; give a folder.", "export_dir")
    src = [Path(ident["base"])] + [Path(p).resolve() for p in adapters]
    if out.resolve() in src:
        raise ConfigError(f"export_dir: {out} is the model or adapter being exported; choose another folder.",
                          "export_dir")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_MARKER).is_file():
        raise UserError(f"export_dir: {out} is not empty and is not a previous TuneBoard export; refusing to "
                        "overwrite it. Choose a new folder (or empty this one yourself). Nothing was written.")
    if (out / EXPORT_MARKER).is_file() and not a.get("overwrite_output_dir"):
        prev = read_json_object(out / EXPORT_MARKER)
        if {k: prev.get(k, "safetensors" if k == "format" else None) for k in ident} != ident:
            what = f"{prev.get('format') or 'safetensors'} export of {prev.get('base')}"
            raise ConfigError(f"export_dir: {out} holds another export ({what}); choose a new folder, or set "
                              "overwrite_output_dir=true to replace it. Nothing was written.", "export_dir")


def _export_dtype(a: dict, base: str):
    import torch
    name = a.get("export_dtype") or "auto"
    if name == "auto":
        cfg = read_json_object(Path(base) / "config.json")
        name = str(cfg.get("dtype") or cfg.get("torch_dtype") or "float32").replace("torch.", "")
    return getattr(torch, DTYPES.get(name, "float32"))


# ---- the formats: one entry each (the schema's export_format lists the same names; tests/test_export.py checks)
@dataclass
class Job:
    """What every format writer gets: the merged model in memory and what the card and marker say about it."""
    args: dict
    base: str
    adapters: list[str]
    model: Any
    tokenizer: Any
    template: Any
    dtype: str
    shard: str
    chat_source: str


@dataclass
class Written:
    """What a writer reports: the card's weights line and its Use section (markdown lines), marker facts."""
    weights: str
    use: list[str]
    library: str = "transformers"
    facts: dict = field(default_factory=dict)


def write_safetensors(job: Job, folder: Path) -> Written:
    """The merged model as transformers saves it (sharded safetensors + tokenizer + generation_config)."""
    log.info("saving %s safetensors, shards <= %s...", job.dtype, job.shard)
    job.model.save_pretrained(folder, max_shard_size=job.shard)
    job.tokenizer.save_pretrained(folder)
    use = ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
           'path = "."  # this folder',
           "tok = AutoTokenizer.from_pretrained(path)",
           "model = AutoModelForCausalLM.from_pretrained(path)",
           'ids = tok.apply_chat_template([{"role": "user", "content": "Hello!"}], add_generation_prompt=True,',
           '                              return_tensors="pt", return_dict=True)',
           "out = model.generate(**ids, max_new_tokens=128)",
           "print(tok.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))", "```", "",
           "Or in TuneBoard: `tuneboard chat model_name_or_path=<this folder>`."]
    return Written(f"{job.dtype} safetensors, shards of at most {job.shard}", use,
                   facts={"next": f"tuneboard chat model_name_or_path={shlex.quote(str(job.args['export_dir']))}"})


def _write_gguf(job: Job, folder: Path) -> Written:
    return write(job, folder, write_safetensors)


def _check_gguf(a: dict, base: str) -> None:
    check(a, base)


@dataclass(frozen=True)
class Format:
    name: str
    write: Callable[[Job, Path], Written]   # fills the new folder
    check: Callable[[dict, str], None] = lambda a, base: None  # refuses before any work (a, the base model path)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("safetensors", write_safetensors),
    Format("gguf", _write_gguf, _check_gguf),
)}


# ---- model card
def _model_card(job: Job, fmt: str, written: Written) -> str:
    base, adapters = job.base, job.adapters
    hit = lookup(base)
    base_id = hit[1]["hf"] if hit else base
    meta = {"base_model": base_id} if hit else {}  # the hub wants an id here, not a local path
    meta.update({"library_name": written.library, "tags": ["tuneboard", "merged" if adapters else "export"]
                 + ([fmt] if fmt != "safetensors" else [])})
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
             f"# {Path(base).name}{' + LoRA (merged)' if adapters else ''}", "",
             f"Exported by TuneBoard on {time.strftime('%Y-%m-%d %H:%M')}.", "",
             f"- **Base model:** `{base_id}`" + (f" (local copy `{base}`)" if base_id != base else ""),
             f"- **Adapter(s) merged:** {', '.join(f'`{a}`' for a in adapters) if adapters else 'none'}",
             f"- **Chat template:** `{job.template.name}` ({job.chat_source})",
             f"- **Weights:** {written.weights}", ""]
    for a in adapters:  # the record of the run that trained each adapter (next to it, or above a checkpoint-N)
        rec = record_of(a)
        if rec and rec.config:
            lines += [f"## Training configuration (`{rec.config_file}`)", "", "```yaml",
                      yaml.safe_dump(rec.config, allow_unicode=True, sort_keys=False).rstrip(), "```", ""]
        if rec and rec.results:
            lines += [f"## Final metrics (`{rec.results_file}`)", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {round(v, 6) if isinstance(v, float) else v} |" for k, v in rec.results.items()]
            lines += [""]
    return "\n".join(lines + ["## Use", ""] + written.use + [""])


def _identity(a: dict, base: str, adapters: list[str]) -> dict:
    """What makes two exports the same one (re-running it replaces the folder; another export is refused)."""
    return {"base": str(Path(base).resolve()), "adapters": [str(Path(p).resolve()) for p in adapters],
            "format": a.get("export_format") or "safetensors"}


def export_model(args: Namespace, *, max_shard_size: str | int | None = None) -> Path:
    """Merge the adapters of `args` into the base model and write it in args.export_format to args.export_dir,
    then upload it when export_hub_model_id is set. Returns the folder. max_shard_size overrides
    args.export_size (GB), e.g. "200KB" in tests."""

    a = args.values
    if not a.get("export_dir"):
        raise ConfigError("export_dir: no export folder given; set export_dir (for example "
                          "export_dir=models/SmolLM2-135M-Instruct-sft-merged).", "export_dir")
    fmt_name = a.get("export_format") or "safetensors"
    if fmt_name not in FORMATS:
        raise ConfigError(f"export_format: {fmt_name!r} is not one of {', '.join(FORMATS)}.", "export_format")
    fmt = FORMATS[fmt_name]
    out = Path(a["export_dir"]).expanduser()
    adapters = [str(check_adapter(p)) for p in adapter_paths(args)]
    base = model_path(args)
    ident = _identity(a, base, adapters)
    _check_target(out, a, adapters, ident)
    fmt.check(a, base)
    if a.get("export_hub_model_id"):
        check_upload(a)
    if not adapters:
        log.info("no adapter_name_or_path given: re-saving the base model (dtype / shards only)")

    tokenizer = load_tokenizer(args)
    template = resolve_template(args, tokenizer)
    dtype = _export_dtype(a, base)
    t0 = time.time()
    log.info("loading %s%s...", base, f" and merging {len(adapters)} adapter(s)" if adapters else "")
    model = load_model(args, trainable=False, device="cpu", dtype=dtype)  # adapters merged (merge_and_unload)

    if template.name == "auto" or template.matches_tokenizer(tokenizer):
        chat_source = "the tokenizer's own chat template"
    else:
        tokenizer.chat_template = template.to_jinja(tokenizer)
        chat_source = "written by TuneBoard from its template; the tokenizer's own one was replaced"
    stop_ids = template.stop_token_ids(tokenizer)
    gen = model.generation_config
    gen.eos_token_id = stop_ids if len(stop_ids) > 1 else stop_ids[0]
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id
    job = Job(a, base, adapters, model, tokenizer, template, str(dtype).replace("torch.", ""),
              str(max_shard_size or f"{int(a.get('export_size') or 5)}GB"), chat_source)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old = None
    try:
        try:
            written = fmt.write(job, tmp)
        except Exception as e:  # OSError, or safetensors' own error wrapping one
            if "No space left" not in str(e) and getattr(e, "errno", None) != errno.ENOSPC:
                raise
            raise UserError(f"export_dir: the disk is full ({out.parent}: {e}); free some space and export again. "
                            "The previous export, if any, is untouched.") from None
        atomic_write_text(tmp / "README.md", _model_card(job, fmt_name, written))
        atomic_write_json(tmp / EXPORT_MARKER, {**ident, "base": base, "adapters": adapters,
                                                "template": template.name, "dtype": job.dtype,
                                                "max_shard_size": job.shard, **written.facts,
                                                "exported": time.strftime("%Y-%m-%dT%H:%M:%S")})
        if out.exists():  # a previous export (checked above): keep it until the new one is in place
            old = out.with_name(f".{out.name}.old-{int(time.time())}")
            out.rename(old)
        share_like_umask(tmp)  # mkdtemp made it 0700 and safetensors writes 0600: readable as the umask allows
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if out.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.rename(out)
    log.info("exported %s in %.0f s", out, time.time() - t0)
    for line in folder_listing(out):
        log.info("  %s", line)
    if a.get("export_hub_model_id"):
        upload(out, a)
    return out


def folder_listing(folder: Path) -> list[str]:
    """`name  size` for each file of an export (the log and the Export tab show it)."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
    return [f"{p.name}  {human_size(p.stat().st_size)}" for p in files]


def next_step(folder: Path) -> str:
    """The line to copy to use an export (recorded in its marker by the format's writer)."""
    return str(read_json_object(Path(folder) / EXPORT_MARKER).get("next") or "")


def run_cli(opts) -> int:
    """`tuneboard export [recipe.yaml] [key=value ...]` (opts: parsed by engine.cli)."""
    args = load_config(opts.recipe, opts.overrides, command="export")
    for note in compat_notes(args):  # LLaMA-Factory's export keys that mean nothing here
        log.warning("LLaMA-Factory key %s", note)
    out = export_model(args)
    print(f"exported to {out}:")
    for line in folder_listing(out):
        print(f"  {line}")
    if next_step(out):
        print(f"next: {next_step(out)}")
    return 0

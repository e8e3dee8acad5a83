"""The model registry: display name -> hub ids, default chat template, local folder.

The data lives in registry.json (one entry per model, edited by hand); this module only looks things
up. No torch / transformers import here: the web UI builds its model dropdown from it at start-up.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..utils import read_json_object, repo_root
from ..errors import UserError

_REGISTRY_FILE = Path(__file__).with_name("registry.json")
MODELS: dict[str, dict] = json.loads(_REGISTRY_FILE.read_text(encoding="utf-8"))

# Fallbacks when a folder is not in the registry: config.json's model_type -> template name.
_MODEL_TYPE_TEMPLATES = {
    "qwen2": "qwen", "qwen2_moe": "qwen", "qwen3": "qwen3", "qwen3_moe": "qwen3",
    "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma3", "gemma3_text": "gemma3",
    "mistral": "mistral", "mixtral": "mistral", "deepseek_v3": "deepseek3", "glm4_moe": "glm4",
}
# DeepSeek's chat format marks its fine-tunes of other architectures (the R1 distills are qwen2 / llama models), so
# it is looked for before the model_type; a <think> in it means the R1 format.
_DEEPSEEK_MARKER = "<｜User｜>"
# Markers inside a tokenizer's own chat template (checked for families such as llama whose
# model_type does not say which chat format the checkpoint was tuned on).
_CHAT_TEMPLATE_MARKERS = (
    ("<|start_header_id|>", "llama3"),
    ("<start_of_turn>", "gemma"),
    ("<|im_start|>", "chatml"),
    ("[INST]", "llama2"),
)
EXPORT_MARKER = ".tuneboard_export.json"
DOWNLOAD_MARKER = ".tuneboard_download.json"


def model_names() -> list[str]:
    return list(MODELS)


def models_dir() -> Path:
    return repo_root() / "models"


def local_dir(name: str) -> Path:
    """Where a registry model lives (or will live once downloaded)."""
    entry = MODELS.get(name, {})
    local = entry.get("local") or f"models/{name}"
    p = Path(local)
    return p if p.is_absolute() else repo_root() / p


def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file()


def lookup(name_or_path: str) -> tuple[str, dict] | None:
    """Registry entry for a display name, a hub id, a registry model's local folder, or a folder named
    after a registry model (models/Qwen2.5-7B-Instruct). Case-insensitive on names and ids."""
    if not name_or_path:
        return None
    key = str(name_or_path).strip().rstrip("/")
    low = key.lower()
    for name, entry in MODELS.items():
        if low == name.lower() or low in (str(entry.get("hf", "")).lower(), str(entry.get("ms", "")).lower()):
            return name, entry
    p = _existing(key)
    if p is not None:
        for name in MODELS:
            if local_dir(name).resolve() == p.resolve():
                return name, MODELS[name]
    base = Path(key).name.lower()
    for name, entry in MODELS.items():
        if base == name.lower():
            return name, entry
    return None


def _existing(path: str) -> Path | None:
    """An existing folder: as given (relative to the current directory), else relative to the repo root."""
    p = Path(os.path.expanduser(path))
    if p.is_dir():
        return p
    if not p.is_absolute() and (repo_root() / p).is_dir():
        return repo_root() / p
    return None


def _looks_like_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~"))


def download_dir(name_or_id: str) -> Path:
    """Where `tuneboard download` puts a model: models/<registry name>, or models/<repo name> for other hub ids."""
    hit = lookup(name_or_id)
    if hit is not None:
        return local_dir(hit[0])
    return models_dir() / str(name_or_id).rstrip("/").split("/")[-1]


def _hf_cache(repo_id: str) -> Path | None:
    """A complete copy in the Hugging Face cache (~/.cache/huggingface), without network."""
    try:
        from huggingface_hub import snapshot_download
        p = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, offline, bad id: all mean "not here"
        return None
    return p if _is_model_dir(p) else None


def resolve_model_path(name_or_path: str) -> str:
    """A local folder to load: an existing folder as given, a registry name's local copy, a downloaded hub id.
    Raises UserError naming what was asked for and how to get it."""
    if name_or_path is None or not str(name_or_path).strip():
        raise UserError("model_name_or_path: empty; give a local model folder or a model name "
                        f"(for example {next(iter(MODELS))}).")
    s = str(name_or_path).strip()
    p = _existing(s)
    if p is not None:
        return str(p)
    hit = lookup(s)
    if hit is not None:
        d = local_dir(hit[0])
        if _is_model_dir(d):
            return str(d)
        repo = hit[1].get("hf")
        cached = _hf_cache(repo) if repo else None
        if cached is not None:
            return str(cached)
        how = "tuneboard download bundled" if hit[1].get("bundled") else f"tuneboard download {hit[0]}"
        raise UserError(f"model {s} not found locally (looked in {d}); run `{how}` (needs network).")
    if _looks_like_hub_id(s):
        d = download_dir(s)
        if _is_model_dir(d):
            return str(d)
        cached = _hf_cache(s)
        if cached is not None:
            return str(cached)
        raise UserError(f"model {s} not found locally (looked in {d}); run `tuneboard download {s}` (needs network).")
    raise UserError(f"model {s} not found locally: no such folder. Check model_name_or_path, or run "
                    f"`tuneboard download NAME` (needs network) with one of: {', '.join(model_names())}.")


def _tokenizer_chat_template(folder: Path) -> str:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        try:
            return jinja.read_text(encoding="utf-8")
        except OSError:
            return ""
    tpl = read_json_object(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(tpl, list):  # named templates: [{"name": ..., "template": ...}]
        tpl = " ".join(str(t.get("template", "")) for t in tpl if isinstance(t, dict))
    return tpl if isinstance(tpl, str) else ""


def default_template(name_or_path: str) -> str | None:
    """The template a model should chat with: the registry's, else what an export recorded, else guessed
    from config.json (model_type / architectures) and the tokenizer's own chat template. None if unknown."""
    if not name_or_path:
        return None
    hit = lookup(str(name_or_path))
    if hit is not None and hit[1].get("template"):
        return hit[1]["template"]
    folder = _existing(str(name_or_path))
    if folder is None:
        return None
    recorded = read_json_object(folder / EXPORT_MARKER).get("template")
    if recorded:
        return recorded
    cfg = read_json_object(folder / "config.json")
    chat = _tokenizer_chat_template(folder)
    if _DEEPSEEK_MARKER in chat:
        return "deepseekr1" if "<think>" in chat else "deepseek3"
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type in _MODEL_TYPE_TEMPLATES:
        return _MODEL_TYPE_TEMPLATES[model_type]
    for arch in cfg.get("architectures") or []:
        a = str(arch).lower()
        for prefix, tpl in sorted(_MODEL_TYPE_TEMPLATES.items(), key=lambda kv: -len(kv[0])):  # gemma3 before gemma
            if a.startswith(prefix.replace("_", "")):
                return tpl
    for marker, tpl in _CHAT_TEMPLATE_MARKERS:
        if marker in chat:
            return tpl
    return None

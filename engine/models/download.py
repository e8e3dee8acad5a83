"""`tuneboard download NAME`: the bundled model, or a registry / hub model from Hugging Face or ModelScope.

Files land in models/<name> (git-ignored) through a temporary folder, so an interrupted download never
looks like a complete model; a marker file records where it came from.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from ..utils import atomic_write_json, get_logger, share_like_umask
from ..errors import UserError
from .bundled import provision
from .registry import DOWNLOAD_MARKER, MODELS, _looks_like_hub_id, download_dir, lookup, model_names, resolve_model_path

log = get_logger()
HUBS = ("huggingface", "modelscope")
# Formats other runtimes use; TuneBoard loads safetensors (or .bin where a repo has nothing else).
SKIP_PATTERNS = ["*.pth", "original/*", "*.gguf", "onnx/*", "*.onnx", "*.msgpack", "*.h5", "*.ot",
                 "flax_model*", "tf_model*", "openvino/*", "coreml/*"]


def _repo_id(name: str, hub: str) -> str:
    hit = lookup(name)
    if hit is None:
        if "/" not in name:
            raise UserError(f"{name}: not a registry model and not a hub id (owner/name); "
                            f"registry models: {', '.join(model_names())}.")
        return name
    key = "hf" if hub == "huggingface" else "ms"
    repo = hit[1].get(key)
    if not repo:
        other = "modelscope" if hub == "huggingface" else "huggingface"
        raise UserError(f"{hit[0]}: no {hub} id in the registry; try --hub {other}.")
    return repo


def _explain(e: BaseException, repo: str, hub: str) -> str:
    name = type(e).__name__
    text = str(e).splitlines()[0][:300] if str(e) else name
    if name in ("GatedRepoError",) or "gated" in text.lower():
        return (f"{repo} is gated on {hub}: accept its licence on the model page, then log in "
                "(`hf auth login`) and run the download again.")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError") or "404" in text:
        return f"{repo} was not found on {hub}; check the id (or try the other hub with --hub)."
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "NetworkError") or "connect" in text.lower():
        return (f"cannot download {repo} from {hub}: the network is unreachable or the connection failed. "
                "Try again with network, or copy the model folder under models/ by hand.")
    return (f"cannot download {repo} from {hub} (is the network reachable?): {name}: {text}. "
            "You can also copy a model folder under models/ by hand.")


def _endpoint(hub: str) -> str:
    if hub == "huggingface":
        from huggingface_hub import constants
        return constants.ENDPOINT  # honours HF_ENDPOINT (mirrors)
    domain = os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn")
    return domain if "://" in domain else f"https://{domain}"


def check_reachable(hub: str) -> None:
    """Fail in seconds with a clear message instead of after the hub clients' minute of retries."""
    if hub == "huggingface":
        from huggingface_hub import constants
        if constants.HF_HUB_OFFLINE:
            raise UserError("cannot download: offline mode is on (HF_HUB_OFFLINE=1). Unset it on a machine with "
                            "network, or copy the model folder under models/ by hand.")
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # a direct connection says nothing about the proxy route: let the client try
    url = urlparse(_endpoint(hub))
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise UserError(f"cannot reach {host} ({hub}) to download: {e.strerror or e}. This needs network; "
                        "on an offline machine copy the model folder under models/ by hand.") from None


def _fetch(repo: str, hub: str, into: Path) -> None:
    if hub == "huggingface":
        from huggingface_hub import snapshot_download
        snapshot_download(repo_id=repo, local_dir=str(into), ignore_patterns=SKIP_PATTERNS + _skip_bin(repo))
    else:
        try:
            from modelscope import snapshot_download
        except ImportError:
            raise UserError("the modelscope package is not installed; `pip install modelscope==1.40.2` "
                            "or use --hub huggingface.") from None
        snapshot_download(repo, local_dir=str(into), ignore_file_pattern=[
            p.replace(".", r"\.").replace("*", ".*") for p in SKIP_PATTERNS])


def _skip_bin(repo: str) -> list[str]:
    """Skip PyTorch .bin weights when the repo also has safetensors (Llama-2 ships both: 13 GB saved)."""
    try:
        from huggingface_hub import list_repo_files
        files = list_repo_files(repo)
    except Exception:  # the snapshot call will report the real problem
        return []
    return ["*.bin"] if any(f.endswith(".safetensors") for f in files) else []


def download(name: str, hub: str = "huggingface", dest: str | Path | None = None, force: bool = False) -> Path:
    """Fetch a model into models/<name> (or dest) and return the folder. Offline -> UserError."""
    if hub not in HUBS:
        raise UserError(f"hub: {hub!r} is not one of {', '.join(HUBS)}.")
    hit = lookup(name)
    if name == "bundled" or (hit is not None and hit[1].get("bundled") and dest is None):
        return provision(force=force)
    repo = _repo_id(name, hub)
    target = Path(dest) if dest else download_dir(name)
    if (target / "config.json").is_file() and not force:
        log.info("%s is already at %s (use --force to fetch it again)", repo, target)
        return target
    if target.exists() and any(target.iterdir()) and not (target / DOWNLOAD_MARKER).is_file() and not force:
        raise UserError(f"{target} already exists and is not a TuneBoard download; move it away or pass --dest DIR.")
    check_reachable(hub)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log.info("downloading %s from %s into %s ...", repo, hub, target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            _fetch(repo, hub, tmp)
        except UserError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as e:  # network, auth, missing repo: one clear line, no traceback
            raise UserError(_explain(e, repo, hub)) from None
        for junk in (tmp / ".cache", tmp / "._____temp"):
            shutil.rmtree(junk, ignore_errors=True)
        if not (tmp / "config.json").is_file():
            raise UserError(f"{repo} on {hub} has no config.json: not a transformers model folder.")
        atomic_write_json(tmp / DOWNLOAD_MARKER, {"repo": repo, "hub": hub, "seconds": round(time.time() - t0, 1)})
        if target.exists():
            shutil.rmtree(target)
        share_like_umask(tmp)  # mkdtemp made it 0700: readable as the umask allows
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s ready at %s (%.0f s)", repo, target, time.time() - t0)
    return target


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def ensure_model(name: str, hub: str = "huggingface") -> str:
    """The local folder of model `name`; a registry model or hub id that is not here yet is downloaded first
    (the web UI's Start with a model not downloaded yet). Offline, a clear message instead. Anything else is
    returned as given (a missing folder is reported by the loader, in the run)."""
    try:
        return resolve_model_path(name)
    except UserError:
        s = str(name or "").strip()
        if not s or (lookup(s) is None and not _looks_like_hub_id(s)):
            return s  # a path that does not exist: nothing to download; loading it reports that, in the run
        if _offline():
            raise UserError(f"model {s} is not downloaded yet and offline mode is on (HF_HUB_OFFLINE=1): run "
                            f"`tuneboard download {s}` where there is network, or copy the model folder to "
                            f"{download_dir(s)}.") from None
    log.info("model %s is not here yet: downloading it from %s before training ...", s, hub)
    return str(download(s, hub=hub))


def run_cli(opts) -> int:
    """`tuneboard download NAME [--hub H] [--dest DIR] [--force]`; no name = the bundled model (opts: engine.cli)."""
    if opts.list:
        for n, e in MODELS.items():
            print(f"{n:28s} {e.get('hf', ''):42s} template={e.get('template')}"
                  + ("  (bundled)" if e.get("bundled") else ""))
        return 0
    given = {}  # hub=... / dest=... are accepted as the options' key=value spelling
    for word in opts.overrides:
        key, _, value = word.partition("=")
        if key not in ("hub", "dest"):
            raise UserError(f"{word}: `tuneboard download` takes NAME, --hub, --dest and --force.")
        given[key] = value
    hub = opts.hub or given.get("hub") or "huggingface"
    dest, force = opts.dest or given.get("dest"), opts.force
    names = ([opts.recipe] if opts.recipe else []) + opts.words
    if len(names) > 1:
        raise UserError(f"download one model at a time (got {', '.join(names)}).")
    if not names:
        provision(force=force)
        return 0
    path = download(names[0], hub=hub, dest=dest, force=force)
    print(f"{path}")
    print(f"use it with: model_name_or_path={path}", file=sys.stderr)
    return 0

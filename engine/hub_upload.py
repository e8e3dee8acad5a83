"""Upload an export folder to a model hub (export_hub_model_id): Hugging Face (huggingface_hub) or ModelScope.

The token comes from hub_token, else the run's environment (engine.args.SECRET_ENV, how the web UI hands it over),
else the hub's own variable (HF_TOKEN / MODELSCOPE_API_TOKEN) or saved login; it is never logged or written. The
upload runs after the export is in place, so a failed one (offline, refused) loses nothing local; offline it fails
within seconds, naming the hub.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .args import SECRET_ENV
from .errors import ConfigError
from .utils import get_logger
from .errors import UserError

log = get_logger()
HUBS = {"huggingface": ("Hugging Face", "HF_TOKEN"), "modelscope": ("ModelScope", "MODELSCOPE_API_TOKEN")}
CONNECT_TIMEOUT_S = 5.0


def _token(a: dict) -> str | None:
    hub = a.get("export_hub") or "huggingface"
    return (a.get("hub_token") or os.environ.get(SECRET_ENV + "HUB_TOKEN") or os.environ.get(HUBS[hub][1])
            or None)


def _endpoint(hub: str) -> str:
    if hub == "huggingface":
        from huggingface_hub import constants
        return constants.ENDPOINT
    from modelscope.hub.api import HubApi
    return HubApi().endpoint


def check(a: dict) -> None:
    """Refuse a malformed repo id or an unknown hub before any work."""
    repo = str(a.get("export_hub_model_id") or "")
    hub = a.get("export_hub") or "huggingface"
    if hub not in HUBS:
        raise ConfigError(f"export_hub: {hub!r} is not one of {', '.join(HUBS)}.", "export_hub")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo):
        raise ConfigError(f"export_hub_model_id: {repo!r} is not a repository id; write it as user/name "
                          "(or organisation/name).", "export_hub_model_id")


def _reachable(hub: str) -> None:
    name = HUBS[hub][0]
    if hub == "huggingface" and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise UserError(f"upload to {name}: offline mode is on (HF_HUB_OFFLINE); unset it to upload.")
    url = urlparse(_endpoint(hub))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise UserError(f"upload to {name}: cannot reach {url.hostname} ({type(e).__name__}: {e}); are you "
                        "offline?") from None


def upload(folder: Path, a: dict) -> str:
    """Create the repository (private when export_hub_private) if it is missing and upload the folder; returns
    the repository's address. UserError (the local export kept) when it cannot."""
    check(a)
    hub = a.get("export_hub") or "huggingface"
    name = HUBS[hub][0]
    repo = a["export_hub_model_id"]
    token = _token(a)
    private = bool(a.get("export_hub_private", True))
    kept = f" The export in {folder} is kept; upload it later by running the export again with export_hub_model_id."
    try:
        _reachable(hub)
        log.info("uploading %s to %s %s (%s)...", folder, name, repo, "private" if private else "public")
        if hub == "huggingface":
            from huggingface_hub import HfApi
            api = HfApi(token=token)
            url = str(api.create_repo(repo, private=private, exist_ok=True))
            api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message="Upload from TuneBoard",
                              ignore_patterns=[".*"])
        else:
            from modelscope.hub.api import HubApi
            api = HubApi()
            if token:
                api.login(token)
            api.create_repo(repo, token=token, visibility="private" if private else "public", exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=str(folder), token=token,
                              commit_message="Upload from TuneBoard", ignore_patterns=[".*"])
            url = f"{_endpoint(hub).rstrip('/')}/models/{repo}"
    except UserError as e:
        raise UserError(f"{e}{kept}") from None
    except Exception as e:  # the hub libraries' errors (auth, quota, network): one line, the token scrubbed
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
        if token:
            msg = msg.replace(token, "***")
        raise UserError(f"upload to {name} ({repo}) failed: {msg}.{kept}") from None
    log.info("uploaded to %s", url)
    return url

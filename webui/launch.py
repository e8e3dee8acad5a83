"""Start the web UI: `python app.py`, `tuneboard webui [recipe.yaml]`, `make run`; `tuneboard webchat recipe.yaml`.

127.0.0.1:7860 unless --host/--port or GRADIO_SERVER_NAME/GRADIO_SERVER_PORT say otherwise; --share is off by
default. The options are declared in tuneboard/cli.py's table and parsed once by engine.cli. Only gradio and the
light engine modules are imported here: torch and transformers load later, when a model, a dataset preview or a
chat needs them, so the page answers within a few seconds of launch.
"""
from __future__ import annotations

import os
import sys
import threading

from engine import runqueue
from engine.cli import env_port
from engine.config import load_config
from engine.data import upload
from engine.errors import UserError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def server_options(opts, env: dict | None = None) -> dict:
    """What serve() needs from the parsed options (tuneboard/cli.py declares them): --host / --port, else
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else 127.0.0.1:7860; --share, --lang, and the logins of --auth /
    --auth-file (checked here, so a bad one is named before anything starts)."""
    env = os.environ if env is None else env
    out = {"host": opts.host or env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST,
           "port": opts.port or env_port(env, "GRADIO_SERVER_PORT", DEFAULT_PORT),
           "share": bool(opts.share), "lang": getattr(opts, "lang", None) or "en"}
    auth = [_credential(text, "--auth") for text in opts.auth or ()]
    for path in opts.auth_file or ():
        auth += read_auth_file(path)
    if auth:
        out["auth"] = auth
    return out


def _credential(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        problem = "no colon" if not sep else "an empty user or password"
        raise UserError(f"{where}: expected USER:PASSWORD, got {problem}.")
    return user, password


def read_auth_file(path: str) -> list[tuple[str, str]]:
    """USER:PASSWORD lines (blank lines and # comments skipped); keeps passwords out of `ps` and shell history."""
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--auth-file: cannot read {path} ({e}).") from None
    out = [_credential(ln, f"--auth-file {path}, line {n}") for n, ln in enumerate(lines, 1)
           if ln.strip() and not ln.lstrip().startswith("#")]
    if not out:
        raise UserError(f"--auth-file: {path} holds no USER:PASSWORD line.")
    return out


def serve(demo, opts: dict, block: bool = True):
    from .app import CSS, theme
    demo.queue(default_concurrency_limit=4)
    if not opts.get("auth") and (opts.get("share") or opts["host"] not in ("127.0.0.1", "localhost", "::1")):
        print(f"warning: serving on {'a public share link' if opts.get('share') else opts['host']} without a login; "
              "anyone who reaches it can train and read files under data/, saves/, models/. Add --auth-file FILE.",
              file=sys.stderr, flush=True)
    return demo.launch(server_name=opts["host"], server_port=opts["port"], share=opts["share"], theme=theme(),
                       css=CSS, show_error=True, footer_links=[], ssr_mode=False, mcp_server=False,
                       prevent_thread_lock=not block, quiet=False, auth=opts.get("auth") or None,
                       # gradio's upload route takes files from anyone who can reach the page: one over the
                       # limit the Data tab states is refused (413) before more of it is written to disk
                       max_file_size=upload.max_bytes())


def run_cli(cmd: str, opts) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    path, overrides = opts.recipe, opts.overrides
    served = server_options(opts)
    if cmd == "webchat":
        ns = load_config(path, overrides, "infer")
        values = ns.values
        from . import chat_tab
        from .app import create_webchat

        def preload():
            try:
                chat_tab.SESSION.load(ns)
            except Exception as e:  # shown on the page; the user can fix the recipe and press Load
                print(f"error: could not load the model: {e}", file=sys.stderr)

        threading.Thread(target=preload, name="webchat-load", daemon=True).start()
        serve(create_webchat(values, served["lang"]), served)
        return 0
    initial = {}
    if path or overrides:  # only what the recipe says; the rest keeps the page's defaults
        ns = load_config(path, overrides, "train", finalize=False)
        initial = {k: ns.values[k] for k in ns.explicit}
    if runqueue.ensure_runner():  # runs queued before this UI (closed, or the machine restarted) go on
        print("the run queue holds work: its runner started in the background", flush=True)
    from .app import create_ui
    serve(create_ui(served["lang"], initial=initial), served)
    return 0


def webui_cli(opts) -> int:
    """`tuneboard webui` (and `python app.py`); opts: parsed by engine.cli from tuneboard/cli.py's table."""
    return run_cli("webui", opts)


def webchat_cli(opts) -> int:
    """`tuneboard webchat`."""
    return run_cli("webchat", opts)

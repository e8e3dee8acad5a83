"""Start the web UI: `python app.py`, `tuneboard webui [recipe.yaml]`, `make run`; `tuneboard webchat recipe.yaml`.

127.0.0.1:7860 unless --host/--port or GRADIO_SERVER_NAME/GRADIO_SERVER_PORT say otherwise; --share is off by
default. Only gradio and the light engine modules are imported here: torch and transformers load later, when a
model, a dataset preview or a chat needs them, so the page answers within a few seconds of launch.
"""
from __future__ import annotations

import os
import sys
import threading

from engine.utils import UserError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
USAGE = """usage: python app.py [recipe.yaml] [key=value ...] [--host H] [--port P] [--share] [--lang en|zh]
       tuneboard webui   [recipe.yaml] [key=value ...] [--host H] [--port P] [--share] [--lang en|zh]
       tuneboard webchat recipe.yaml  [key=value ...] [--host H] [--port P] [--share]
options: --auth USER:PASSWORD or --auth-file FILE (USER:PASSWORD lines) ask for a login;
         paths typed into the page stay inside data/, saves/, models/ (TUNEBOARD_ROOTS adds folders)"""


def parse_flags(flags: list[str], env: dict | None = None) -> dict:
    """--host/--port/--share/--lang (also --opt=value), falling back to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    env = os.environ if env is None else env
    out = {"host": env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST, "port": env.get("GRADIO_SERVER_PORT") or DEFAULT_PORT,
           "share": False, "lang": "en"}
    i = 0
    while i < len(flags):
        f = flags[i]
        key, eq, val = f.partition("=")
        name = key.lstrip("-")
        if name == "share":
            out["share"] = True
        elif name in ("host", "port", "lang", "auth", "auth-file"):
            if not eq:
                if i + 1 >= len(flags):
                    raise UserError(f"{key} needs a value, for example {key} {'7861' if name == 'port' else '0.0.0.0'}.")
                i += 1
                val = flags[i]
            if name == "auth":
                out["auth"] = out.get("auth", []) + [_credential(val, "--auth")]
            elif name == "auth-file":
                out["auth"] = out.get("auth", []) + read_auth_file(val)
            else:
                out[name] = val
        elif name in ("h", "help"):
            out["help"] = True
        else:
            raise UserError(f"unknown option {f!r}.\n{USAGE}")
        i += 1
    try:
        out["port"] = int(out["port"])
    except (TypeError, ValueError):
        raise UserError(f"port: {out['port']!r} is not a port number (1-65535).") from None
    if not 0 < out["port"] < 65536:
        raise UserError(f"port: {out['port']} is not a port number (1-65535).")
    if out["lang"] not in ("en", "zh"):
        raise UserError(f"lang: {out['lang']!r}; choose en or zh.")
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
                       prevent_thread_lock=not block, quiet=False, auth=opts.get("auth") or None)


def run_cli(cmd: str, path: str | None, overrides: list[str], flags: list[str]) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    opts = parse_flags(flags)
    if opts.get("help"):
        print(USAGE)
        return 0
    from engine.config import load_config
    if cmd == "webchat":
        values = load_config(path, overrides, "infer").values
        from . import chat_tab
        from .app import create_webchat

        def preload():
            try:
                chat_tab.SESSION.load(values)
            except Exception as e:  # shown on the page; the user can fix the recipe and press Load
                print(f"error: could not load the model: {e}", file=sys.stderr)

        threading.Thread(target=preload, name="webchat-load", daemon=True).start()
        serve(create_webchat(values, opts["lang"]), opts)
        return 0
    initial = {}
    if path or overrides:  # only what the recipe says; the rest keeps the page's defaults
        ns = load_config(path, overrides, "train", finalize=False)
        initial = {k: ns.values[k] for k in ns.explicit}
    from engine import runqueue
    if runqueue.ensure_runner():  # runs queued before this UI (closed, or the machine restarted) go on
        print("the run queue holds work: its runner started in the background", flush=True)
    from .app import create_ui
    serve(create_ui(opts["lang"], initial=initial), opts)
    return 0


def webui_cli(path: str | None, overrides: list[str], flags: list[str]) -> int:
    """`tuneboard webui` (and `python app.py`)."""
    return run_cli("webui", path, overrides, flags)


def webchat_cli(path: str | None, overrides: list[str], flags: list[str]) -> int:
    """`tuneboard webchat`."""
    return run_cli("webchat", path, overrides, flags)

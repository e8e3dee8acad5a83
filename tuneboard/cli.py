"""`tuneboard <command>` / `python -m tuneboard <command>`: the engine's commands plus the web UI's.

This sits above engine/ and webui/ so neither imports the other's commands: the engine runs its own table
(`python -m engine <command>`, what runs spawn), the UI imports the engine, and only this table knows both.
"""
from __future__ import annotations

from engine.cli import COMMANDS as ENGINE_COMMANDS, Command, dispatch

UI_COMMANDS: dict[str, Command] = {
    "webui": Command("webui.launch:webui_cli", "launch the web UI (default 127.0.0.1:7860)"),
    "webchat": Command("webui.launch:webchat_cli", "serve the chat tab alone in the browser"),
}

COMMANDS: dict[str, Command] = {**ENGINE_COMMANDS, **UI_COMMANDS}


def main(argv: list[str] | None = None) -> int:
    return dispatch(COMMANDS, argv, "tuneboard")

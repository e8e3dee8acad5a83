"""The engine's commands as a table (command -> function), and the dispatcher that runs one.

`python -m engine <command>` runs this table; the `tuneboard` script (tuneboard/cli.py, above engine/ and
webui/) runs it plus the web UI's commands. Each command takes an optional YAML file, then key=value
overrides (see engine.args). A command's module is imported only when it runs, so `--help` starts fast.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass

from . import __version__
from .config import split_argv
from .utils import UserError


@dataclass(frozen=True)
class Command:
    target: str           # "module:function", imported when the command runs
    summary: str
    argv: str = "split"   # how the function takes its arguments: "split" (path, overrides, flags), "raw", "none"

    def run(self, rest: list[str]) -> int:
        module, _, name = self.target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        if self.argv == "split":
            rc = fn(*split_argv(rest))
        elif self.argv == "raw":
            rc = fn(rest)
        else:
            if rest:
                raise UserError(f"unexpected arguments {rest}; this command takes none.")
            rc = fn()
        return int(rc or 0)


def print_version() -> int:
    print(f"tuneboard {__version__}")
    return 0


COMMANDS: dict[str, Command] = {
    "train": Command("engine.train.launcher:run_cli",
                     "train a model (pt / sft / rm / dpo / kto with lora / freeze / full)"),
    "chat": Command("engine.chat:run_cli", "chat in the terminal with a model (+ adapter)"),
    "api": Command("engine.api:run_cli", "OpenAI-compatible API server (default 127.0.0.1:8000)"),
    "eval": Command("engine.evaluate:run_cli", "batch predict over a dataset and compute metrics"),
    "export": Command("engine.export:run_cli", "merge a LoRA adapter into its base model and save it"),
    "doctor": Command("engine.insight.doctor:run_cli", "judge a finished or running training run"),
    "download": Command("engine.models.download:run_cli",
                        "fetch a model from ModelScope or Hugging Face (or provision the bundled one)", argv="raw"),
    "queue": Command("engine.runqueue:run_cli", "queue training runs: queue add recipe.yaml / list / cancel ID / move",
                     argv="raw"),
    "augment": Command("engine.data.augment:run_cli",
                       "grow a dataset: N new records per record from an OpenAI-compatible endpoint "
                       "(key: OPENAI_API_KEY)"),
    "env": Command("engine.env:print_env", "print versions and devices", argv="none"),
    "version": Command("engine.cli:print_version", "print the TuneBoard version", argv="none"),
}

# Commands of the tuneboard script that the engine alone does not run (it never imports the UI).
ELSEWHERE = {"webui": "the web UI", "webchat": "the web chat"}

EXAMPLES = """Examples:
  tuneboard train examples/train_lora/smollm2_lora_sft.yaml
  tuneboard train dataset=identity max_steps=30 learning_rate=2e-4
  tuneboard chat adapter_name_or_path=saves/SmolLM2-135M-Instruct/lora/train_x
"""


def usage(commands: dict[str, Command], prog: str) -> str:
    width = max(map(len, commands))
    lines = [f"usage: {prog} <command> [recipe.yaml] [key=value ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {c.summary}" for name, c in commands.items()]
    return "\n".join(lines) + "\n\n" + EXAMPLES


def dispatch(commands: dict[str, Command], argv: list[str] | None, prog: str) -> int:
    """Run argv[0] from `commands`: 0 on success, 2 with a one-line message for bad input (no traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(commands, prog))
        return 0
    cmd, rest = argv[0], argv[1:]
    command = commands.get(cmd)
    if command is None:
        if cmd in ELSEWHERE:
            print(f"error: {ELSEWHERE[cmd]} is started by `tuneboard {cmd}` (or `python -m tuneboard {cmd}`), "
                  f"not by {prog}.", file=sys.stderr)
        else:
            print(f"error: unknown command {cmd!r}.\n\n{usage(commands, prog)}", file=sys.stderr)
        return 2
    try:
        return command.run(rest)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """`python -m engine <command>`: the engine's commands."""
    return dispatch(COMMANDS, argv, "python -m engine")

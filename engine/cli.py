"""`tuneboard <command>` / `python -m engine <command>`.

Each command takes an optional YAML file, then key=value overrides (see engine.args).
Heavy imports happen inside the command so `tuneboard --help` and the web UI start fast.
"""
from __future__ import annotations

import os
import sys

from . import __version__
from .utils import UserError

USAGE = """usage: tuneboard <command> [recipe.yaml] [key=value ...]

commands:
  train     train a model (pt / sft / rm / dpo / kto with lora / freeze / full)
  chat      chat in the terminal with a model (+ adapter)
  webchat   serve the chat tab alone in the browser
  webui     launch the web UI (default 127.0.0.1:7860)
  api       OpenAI-compatible API server (default 127.0.0.1:8000)
  eval      batch predict over a dataset and compute metrics
  export    merge a LoRA adapter into its base model and save it
  doctor    judge a finished or running training run
  download  fetch a model from ModelScope or Hugging Face (or provision the bundled one)
  env       print versions and devices
  version   print the TuneBoard version

Examples:
  tuneboard train examples/train_lora/smollm2_lora_sft.yaml
  tuneboard train dataset=identity max_steps=30 learning_rate=2e-4
  tuneboard chat adapter_name_or_path=saves/SmolLM2-135M-Instruct/lora/train_x
"""


def _split(argv: list[str]) -> tuple[str | None, list[str], list[str]]:
    """(yaml path, key=value overrides, --flags) from the remaining arguments."""
    path, overrides, flags = None, [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            if "=" in a or i + 1 >= len(argv) or argv[i + 1].startswith("--") or a in ("--json", "--force", "--share"):
                flags.append(a)
            else:
                flags.extend([a, argv[i + 1]])
                i += 1
        elif "=" in a:
            overrides.append(a)
        elif a.endswith((".yaml", ".yml")) and path is None:
            path = a
        else:
            flags.append(a)
        i += 1
    return path, overrides, flags


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "version":
            print(f"tuneboard {__version__}")
            return 0
        if cmd == "env":
            from .env import print_env
            print_env()
            return 0
        if cmd == "train":
            from .train.launcher import run_cli
            return run_cli(*_split(rest))
        if cmd in ("chat",):
            from .chat import run_cli as chat_cli
            return chat_cli(*_split(rest))
        if cmd == "export":
            from .export import run_cli as export_cli
            return export_cli(*_split(rest))
        if cmd == "download":
            from .models.download import run_cli as download_cli
            return download_cli(rest)
        if cmd == "eval":
            from .evaluate import run_cli as eval_cli
            return eval_cli(*_split(rest))
        if cmd == "api":
            from .api import run_cli as api_cli
            return api_cli(*_split(rest))
        if cmd in ("webui", "webchat"):
            from webui.launch import run_cli as webui_cli
            return webui_cli(cmd, *_split(rest))
        if cmd == "doctor":
            from .insight.doctor import run_cli as doctor_cli
            return doctor_cli(*_split(rest))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(("engine.", "webui.")):
            print(f"error: `tuneboard {cmd}` is not built yet in this version ({e.name} missing).", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"error: unknown command {cmd!r}.\n\n{USAGE}", file=sys.stderr)
    return 2

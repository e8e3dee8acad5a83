"""The engine's commands as a table (command -> function + its options), and the one dispatcher that parses them.

`python -m engine <command>` runs this table; the `tuneboard` script (tuneboard/cli.py, above engine/ and
webui/) runs it plus the web UI's commands. Each command declares its options here (argparse, parsed with
parse_known_args); the words left are an optional recipe.yaml, key=value overrides (both handed on to
engine.config.load_config by the command) and, for the commands that take them, other words (a run folder, a
model name, a queue subcommand). The function receives one argparse.Namespace: its options plus `recipe`,
`overrides` and `words`. A command's module is imported only when it runs, so `--help` starts fast; `--help`
prints the command's options and then the schema arguments it takes (engine.args), grouped as in the web UI.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
import textwrap
import unicodedata
from dataclasses import dataclass, field

from . import __version__, malloc
from .args import ARGS, BY_NAME, AUGMENT, EXPORT, INFER, TRAIN, Arg, group_label, grouped
from .config import format_value
from .errors import UserError

RECIPE = "[recipe.yaml] [key=value ...]"
WIDTH = 100


@dataclass(frozen=True)
class Opt:
    """One option: argparse's add_argument(*flags, **kw); help in English and Chinese."""
    flags: tuple[str, ...]
    help: tuple[str, str]
    kw: dict = field(default_factory=dict)


def opt(*flags: str, help: tuple[str, str], **kw) -> Opt:
    return Opt(flags, help, kw)


@dataclass(frozen=True)
class Command:
    target: str                   # "module:function", imported when the command runs
    summary: tuple[str, str]      # English, Chinese
    options: tuple[Opt, ...] = ()
    usage: tuple[str, ...] = (RECIPE,)  # what follows `tuneboard <cmd>`, one line per form; () = nothing
    words: bool = False           # takes words besides recipe.yaml and key=value (opts.words)
    args: str | None = None       # the engine.args command whose arguments key=value sets
    lists_args: bool = True       # --help lists those arguments (else it points to the command that does)
    note: tuple[str, str] = ("", "")  # a line --help adds under the summary
    preload: bool = False         # from a command line, re-executed with tcmalloc preloaded (engine.malloc)

    @property
    def takes_input(self) -> bool:
        """False: the function is called with no argument (env, version)."""
        return bool(self.options or self.usage)


def port_number(text: str) -> int:
    """argparse type of --port (an environment variable's port goes through env_port)."""
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def env_port(env: dict, name: str, default: int) -> int:
    """The port in environment variable `name` (API_PORT, GRADIO_SERVER_PORT), checked as --port is."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        return port_number(raw)
    except argparse.ArgumentTypeError as e:
        raise UserError(f"{name}: {e}.") from None


# ---------------------------------------------------------------- options shared by several commands
HOST = opt("--host", metavar="H", help=("address to listen on (default 127.0.0.1: this machine only)",
                                         "监听地址（默认 127.0.0.1：仅本机）"))
JSON = opt("--json", action="store_true", help=("print the report as JSON", "以 JSON 输出报告"))
LANG = opt("--lang", choices=("en", "zh"), default="en", help=("language of the report", "报告语言"))
SAVES = opt("--saves", metavar="DIR", help=("the saves folder (default: $TUNEBOARD_SAVES_DIR or saves)",
                                            "保存目录（默认 $TUNEBOARD_SAVES_DIR 或 saves）"))


def print_version() -> int:
    print(f"tuneboard {__version__}")
    return 0


COMMANDS: dict[str, Command] = {
    "train": Command("engine.train.launcher:run_cli",
                     ("train a model (pt / sft / rm / dpo / kto with lora / freeze / full)",
                      "训练模型（pt / sft / rm / dpo / kto，lora / freeze / full）"), args=TRAIN, preload=True),
    "chat": Command("engine.chat:run_cli", ("chat in the terminal with a model (+ adapter)",
                                            "在终端与模型（及适配器）对话"), args=INFER),
    "api": Command("engine.api:run_cli", ("OpenAI-compatible API server (default 127.0.0.1:8000; API_KEY asks "
                                          "clients for a key)", "OpenAI 兼容的 API 服务（默认 127.0.0.1:8000；设置 "
                                          "API_KEY 则要求客户端提供密钥）"),
                   (HOST, opt("--port", type=port_number, metavar="P",
                              help=("port (default $API_PORT or 8000); $API_HOST sets the host",
                                    "端口（默认 $API_PORT 或 8000）；$API_HOST 设置地址"))), args=INFER),
    "eval": Command("engine.evaluate:run_cli", ("batch predict over a dataset and compute metrics",
                                                "在数据集上批量预测并计算指标"), args=INFER),
    "export": Command("engine.export:run_cli", ("merge a LoRA adapter into its base model and save it",
                                                "将 LoRA 适配器合并进基座模型并保存"), args=EXPORT),
    "doctor": Command(
        "engine.insight.doctor:run_cli", ("judge a finished or running training run", "诊断已结束或进行中的训练"),
        (JSON, LANG,
         opt("--estimate", action="store_true", help=("pre-flight of a recipe: samples, steps, tokens, memory",
                                                      "训练前估算：样本、步数、token、内存")),
         opt("--measure", type=int, default=0, metavar="N", help=("with --estimate: time N real steps",
                                                                  "配合 --estimate：实测 N 步的耗时")),
         opt("--inspect", action="store_true", help=("a recipe's dataset against cutoff_len, duplicates, languages",
                                                     "检查数据集：截断、重复、语言")),
         opt("--compare", action="store_true", help=("compare the curves of several run folders",
                                                     "比较多个训练目录的曲线")),
         opt("--x", choices=("step", "epoch", "tokens"), default="step",
             help=("with --compare: the x axis", "配合 --compare：横轴")),
         opt("--sweep", action="store_true", help=("learning-rate sweep of a recipe, one short run after another",
                                                   "学习率扫描：依次运行几次短训练")),
         opt("--k", type=int, default=5, metavar="K", help=("with --sweep: how many learning rates",
                                                            "配合 --sweep：学习率个数")),
         opt("--center", type=float, metavar="LR", help=("with --sweep: the middle learning rate (default: the "
                                                         "recipe's)", "配合 --sweep：中心学习率（默认取配方的值）")),
         opt("--span", type=float, default=2.0, metavar="X", help=("with --sweep: decades the rates span around the center",
                                                                   "配合 --sweep：学习率围绕中心跨越的数量级")),
         opt("--steps", type=int, default=30, metavar="N", help=("with --sweep: steps per run",
                                                                 "配合 --sweep：每次训练的步数")),
         opt("--eval-every", type=int, metavar="N", help=("with --sweep: eval every N steps (default steps/6)",
                                                          "配合 --sweep：每 N 步评估（默认 steps/6）")),
         opt("--out", metavar="DIR", help=("with --sweep: where the runs go", "配合 --sweep：输出目录"))),
        usage=("OUTPUT_DIR [--json] [--lang zh]",
               "--estimate recipe.yaml [key=value ...] [--measure N] [--json]",
               "--inspect recipe.yaml [key=value ...] [--json]",
               "--compare DIR DIR ... [--x step|epoch|tokens] [--json]",
               "--sweep recipe.yaml [key=value ...] [--k 5] [--center LR] [--span 2] [--steps 30] [--eval-every 5] "
               "[--out DIR] [--json]"),
        words=True, args=TRAIN, lists_args=False),
    "download": Command(
        "engine.models.download:run_cli", ("fetch a model from ModelScope or Hugging Face (or provision the bundled "
                                           "one)", "从 ModelScope 或 Hugging Face 下载模型（或准备内置模型）"),
        (opt("--hub", choices=BY_NAME["hub"].choices, help=("where to download from (default huggingface)",
                                                                   "下载来源（默认 huggingface）")),
         opt("--dest", metavar="DIR", help=("target folder (default models/NAME)", "目标目录（默认 models/NAME）")),
         opt("--force", action="store_true", help=("download again even if it is here", "即使已存在也重新下载")),
         opt("--list", action="store_true", help=("list the models of the registry", "列出注册表中的模型"))),
        usage=("NAME [--hub huggingface|modelscope] [--dest DIR] [--force]", "bundled", "--list"), words=True,
        note=("NAME: a registry name (see --list) or a hub id such as Qwen/Qwen2.5-0.5B-Instruct; `bundled` (or no "
              "NAME) provisions the offline default model", "NAME：注册表中的名称（见 --list）或仓库 ID，如 "
              "Qwen/Qwen2.5-0.5B-Instruct；`bundled`（或不写 NAME）准备离线默认模型")),
    "queue": Command(
        "engine.runqueue:run_cli", ("queue training runs: queue add recipe.yaml / list / cancel ID / move",
                                    "训练队列：queue add recipe.yaml / list / cancel ID / move"),
        (SAVES, opt("--lock-fd", type=int, help=argparse.SUPPRESS)),
        usage=("add recipe.yaml [key=value ...]", "list", "cancel ID", "move ID up|down|top|N", "clear", "run"),
        words=True, args=TRAIN, lists_args=False),
    "augment": Command("engine.data.augment:run_cli",
                       ("grow a dataset: N new records per record from an OpenAI-compatible endpoint "
                        "(key: OPENAI_API_KEY)", "扩充数据集：通过 OpenAI 兼容接口为每条记录生成 N 条新记录"
                        "（密钥：OPENAI_API_KEY）"), args=AUGMENT),
    "env": Command("engine.env:print_env", ("print versions and devices", "打印版本与设备信息"), usage=()),
    "version": Command("engine.cli:print_version", ("print the TuneBoard version", "打印 TuneBoard 版本"), usage=()),
}

# Commands of the tuneboard script that the engine alone does not run (it never imports the UI).
ELSEWHERE = {"webui": "the web UI", "webchat": "the web chat"}

EXAMPLES = """
  tuneboard train examples/train_lora/smollm2_lora_sft.yaml
  tuneboard train dataset=identity max_steps=30 learning_rate=2e-4
  tuneboard chat adapter_name_or_path=saves/SmolLM2-135M-Instruct/lora/train_x
  tuneboard train --help lora
"""

# The few words of a help page that are not in the schema or the table above.
WORDS = {
    "usage": ("usage", "用法"),
    "commands": ("commands", "命令"),
    "examples": ("examples", "示例"),
    "options": ("options", "选项"),
    "help": ("this help; with GROUP (or an argument's name) only that part", "显示帮助；给出 GROUP（或参数名）则只显示该部分"),
    "help_plain": ("this help", "显示帮助"),
    "arguments": ("arguments: key=value on the command line or keys of recipe.yaml (the command line wins)",
                  "参数：命令行写 key=value，或写在 recipe.yaml 中（命令行优先）"),
    "see": ("key=value and recipe.yaml keys: the arguments of `{prog} {cmd}` (`{prog} {cmd} --help` lists them)",
            "key=value 与 recipe.yaml 的键：即 `{prog} {cmd}` 的参数（`{prog} {cmd} --help` 列出）"),
    "more": ("`{prog} <command> --help`: a command's options and arguments",
             "`{prog} <命令> --help`：某个命令的选项与参数"),
    "stages": ("stages", "阶段"),
    "methods": ("methods", "方式"),
    "compat": ("LLaMA-Factory keys accepted, no effect here", "兼容 LLaMA-Factory 的键（此处无作用）"),
}


def help_lang(env: dict | None = None) -> str:
    """zh when TUNEBOARD_LANG says so, or (unset) when the locale is Chinese; else en."""
    env = os.environ if env is None else env
    chosen = env.get("TUNEBOARD_LANG", "").strip().lower()
    if chosen:
        return "zh" if chosen.startswith("zh") else "en"
    locale = next((env[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(k)), "")
    return "zh" if locale.lower().startswith("zh") else "en"


def _w(key: str, lang: str, **fmt) -> str:
    en, zh = WORDS[key]
    return (zh if lang == "zh" else en).format(**fmt)


def _tr(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "zh" else pair[0]


def usage(commands: dict[str, Command], prog: str, lang: str = "en") -> str:
    width = max(map(len, commands))
    lines = [f"{_w('usage', lang)}: {prog} <command> {RECIPE} [--options]", "", f"{_w('commands', lang)}:"]
    lines += [f"  {name.ljust(width)}  {_tr(c.summary, lang)}" for name, c in commands.items()]
    return "\n".join(lines) + "\n\n" + _w("more", lang, prog=prog) + "\n\n" + _w("examples", lang) + ":" + EXAMPLES


# ---------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print usage and exit; the dispatcher says it in one line
        raise UserError(message)


def _parser(name: str, command: Command) -> argparse.ArgumentParser:
    p = _Parser(prog=name, add_help=False, allow_abbrev=False)
    p.add_argument("-h", "--help", nargs="?", const=True, default=None)
    for o in command.options:
        p.add_argument(*o.flags, help=o.help if isinstance(o.help, str) else o.help[0], **o.kw)
    return p


def _option_names(command: Command) -> list[str]:
    return [o.flags[-1] for o in command.options if o.help is not argparse.SUPPRESS] + ["--help"]


def _unknown_option(word: str, after: str | None, name: str, command: Command, prog: str) -> str:
    """The message for an option the command lacks; `after` is the word that follows it (its value, maybe)."""
    key, eq, value = word.partition("=")
    arg = BY_NAME.get(key.lstrip("-").replace("-", "_"))
    names = _option_names(command)
    if arg is not None and command.args and command.args in arg.commands:  # LLaMA-Factory's `--learning_rate 1e-4`
        if not eq:
            value = after if after is not None and not after.startswith("-") and "=" not in after else "VALUE"
        return f"{key}: arguments are written key=value here: {arg.name}={value} (see `{prog} {name} --help`)."
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return f"{key}: unknown option of `{prog} {name}`.{hint} Its options: {', '.join(names)}."


def parse(name: str, command: Command, argv: list[str], prog: str = "tuneboard") -> argparse.Namespace:
    """argv after the command's name -> its options, plus recipe (the first *.yaml word), overrides (key=value
    words, in order) and words (the rest; refused unless the command takes words). Raises UserError."""
    try:
        opts, rest = _parser(name, command).parse_known_args(argv)
    except UserError as e:  # argparse's "argument --port: ..." -> "--port: ..."
        said = str(e).removeprefix("argument ")
        raise UserError(f"{said} (`{prog} {name}`; its options: {', '.join(_option_names(command))}).") from None
    opts.recipe, opts.overrides, opts.words = None, [], []
    for i, w in enumerate(rest):
        if w.startswith("-") and len(w) > 1:
            raise UserError(_unknown_option(w, (rest[i + 1:] or [None])[0], name, command, prog))
        if "=" in w:
            opts.overrides.append(w)
        elif opts.recipe is None and w.endswith((".yaml", ".yml")) and command.usage:
            opts.recipe = w
        else:
            opts.words.append(w)
    if opts.help:
        return opts
    if not command.usage and (opts.words or opts.overrides or opts.recipe):
        raise UserError(f"unexpected arguments {argv}; this command takes none.")
    if opts.words and not command.words:
        takes = "one recipe.yaml and key=value arguments" if command.args else "no other words"
        raise UserError(f"{opts.words[0]!r}: unexpected word; `{prog} {name}` takes {takes} "
                        f"(see `{prog} {name} --help`).")
    return opts


# ---------------------------------------------------------------- --help
def _arg_lines(a: Arg, lang: str) -> list[str]:
    head = f"  {a.name}  {a.type}"
    if a.default not in (None, "", [], {}):
        head += f" = {format_value(a.default)}"
    if a.choices:
        head += "  {" + ", ".join(map(str, a.choices)) + "}"
    elif a.min is not None or a.max is not None:
        lo = "" if a.min is None else _number(a.min)
        hi = "" if a.max is None else _number(a.max)
        head += f"  [{lo}, {hi}]"
    tags = []
    if a.stages:
        tags.append(f"{_w('stages', lang)}: {', '.join(a.stages)}")
    if a.methods:
        tags.append(f"{_w('methods', lang)}: {', '.join(a.methods)}")
    if tags:
        head += f"  ({'; '.join(tags)})"
    return [head] + [f"      {line}" for line in _wrap(a.help(lang), lang)]


def _number(x: float) -> str:
    return format_value(int(x) if float(x).is_integer() else x)


def _wrap(text: str, lang: str) -> list[str]:
    """Lines of at most WIDTH - 6 columns; Chinese has no spaces to break at and its characters take two columns."""
    if lang != "zh":
        return textwrap.wrap(text, WIDTH - 6) or [""]
    lines, line, cols = [], "", 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if cols + w > WIDTH - 6:
            lines.append(line)
            line, cols = "", 0
        line, cols = line + ch, cols + w
    return lines + [line]


def schema_args(command: str) -> list[Arg]:
    return [a for a in ARGS if command in a.commands]


def groups_of(command: str) -> list[str]:
    return [g for g, _ in grouped(schema_args(command))]


def _options_block(command: Command, lang: str) -> list[str]:
    rows = [("-h, --help [GROUP]", _w("help", lang)) if command.args else ("-h, --help", _w("help_plain", lang))]
    for o in command.options:
        if o.help is argparse.SUPPRESS:
            continue
        meta = o.kw.get("metavar") or ("{" + ",".join(o.kw["choices"]) + "}" if o.kw.get("choices") else "")
        if o.kw.get("action") in ("store_true", "store_false"):
            meta = ""
        rows.append((", ".join(o.flags) + (f" {meta}" if meta else ""), _tr(o.help, lang)))
    width = max(len(r[0]) for r in rows)
    return [f"{_w('options', lang)}:"] + [f"  {flag.ljust(width)}  {text}" for flag, text in rows]


def command_help(name: str, command: Command, topic: str | None = None, prog: str = "tuneboard",
                 lang: str = "en") -> str:
    """The help page of one command; with `topic` (a group or an argument's name) only that part."""
    if topic and command.args:
        return _topic_help(name, command, topic, prog, lang)
    head = f"{_w('usage', lang)}: "
    forms = [f"{form} [options]" if form == RECIPE and command.options else form for form in command.usage or ("",)]
    lines = [f"{head if i == 0 else ' ' * len(head)}{prog} {name} {form}".rstrip() for i, form in enumerate(forms)]
    lines += ["", _tr(command.summary, lang)] + ([_tr(command.note, lang)] if command.note[0] else [])
    lines += [""] + _options_block(command, lang)
    if command.args and not command.lists_args:
        lines += ["", _w("see", lang, prog=prog, cmd=command.args)]
    elif command.args:
        lines += ["", _w("arguments", lang)]
        for group, args in grouped(schema_args(command.args)):
            lines += ["", f"{group_label(group, lang)} [{group}]"] + _group_lines(args, lang)
    return "\n".join(lines) + "\n"


def _group_lines(args: list[Arg], lang: str) -> list[str]:
    """Each argument with its type, default, range and help; the LLaMA-Factory keys (no effect of their own here)
    by name only, at the end (`--help NAME` shows one)."""
    lines = [line for a in args if not a.compat for line in _arg_lines(a, lang)]
    compat = [a.name for a in args if a.compat]
    if compat:
        lines += textwrap.wrap(", ".join(compat), WIDTH - 6, initial_indent=f"  {_w('compat', lang)}: ",
                               subsequent_indent="      ")
    return lines


def _topic_help(name: str, command: Command, topic: str, prog: str, lang: str) -> str:
    args = schema_args(command.args)
    arg = next((a for a in args if a.name == topic), None)
    if arg is not None:
        return "\n".join([f"{group_label(arg.group, lang)} [{arg.group}]"] + _arg_lines(arg, lang)) + "\n"
    chosen = [a for a in args if a.group == topic]
    if not chosen:
        listing = ", ".join(f"{g} ({group_label(g, lang)})" for g in groups_of(command.args))
        raise UserError(f"--help {topic}: no such group or argument of `{prog} {name}`; its groups: {listing}.")
    lines = [_w("arguments", lang), "", f"{group_label(topic, lang)} [{topic}]"] + _group_lines(chosen, lang)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- running
def run(name: str, command: Command, argv: list[str], prog: str = "tuneboard") -> int:
    opts = parse(name, command, argv, prog)
    if opts.help:
        topic = opts.help if isinstance(opts.help, str) else None
        print(command_help(name, command, topic, prog, help_lang()), end="")
        return 0
    module, _, fn_name = command.target.partition(":")
    fn = getattr(importlib.import_module(module), fn_name)
    rc = fn(opts) if command.takes_input else fn()
    return int(rc or 0)


def dispatch(commands: dict[str, Command], argv: list[str] | None, prog: str) -> int:
    """Run argv[0] from `commands`: 0 on success, 2 with a one-line message for bad input (no traceback)."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if argv[:1] == ["help"] and len(argv) > 1:  # `tuneboard help train [GROUP]`
        argv = [argv[1], "--help", *argv[2:]]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(commands, prog, help_lang()))
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
    # never the process of a caller that passed argv (tests, the UI), nor for --help
    if command.preload and from_command_line and not {"-h", "--help"} & set(rest):
        malloc.reexec_preloaded()
    try:
        return run(cmd, command, rest, prog)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """`python -m engine <command>`: the engine's commands."""
    return dispatch(COMMANDS, argv, "python -m engine")

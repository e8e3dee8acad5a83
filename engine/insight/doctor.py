"""`tuneboard doctor`: the command line of engine.insight, and the doctor's report in plain words.

    run_cli(path, overrides, flags) -> exit code     (engine/cli.py hands `tuneboard doctor ...` here)
    render(report, lang) -> the report of verdict.diagnose in plain text (en / zh)

The verdict itself is made in verdict.py from the numbers of facts.py; the words are in words.py.
`diagnose` and `VERDICTS` are importable from here too, as from verdict.py: this is the doctor's front door.
"""
from __future__ import annotations

import json
import sys

from ..utils import UserError
from .verdict import VERDICTS, diagnose, public
from .words import evidence_label, t

__all__ = ["VERDICTS", "diagnose", "public", "render", "run_cli"]


def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(map(str, v))
    if v is None:
        return "null"
    return str(v)


def render(report: dict, lang: str = "en") -> str:
    """The report in plain words (markdown-friendly plain text)."""
    zh = lang == "zh"
    v = report["verdict"]
    lines = [f"{t('verdict', lang)}: {t(f'verdict_{v}', lang)} ({v})",
             report["summary_zh"] if zh else report["summary"], ""]
    lines.append(f"{t('h_advice', lang)}:")
    if report["advice"]:
        for a in report["advice"]:
            ch = " ".join(f"{k}={_fmt_value(x)}" for k, x in a["change"].items())
            lines.append(f"  - {a['why_zh'] if zh else a['why']}" + (f"  ->  {ch}" if ch else ""))
    else:
        lines.append(f"  - {t('none', lang)}")
    best = report.get("best_checkpoint")
    lines.append(f"{t('h_best', lang)}: {best or t('none', lang)}")
    if report.get("notes"):
        lines.append(f"{t('h_notes', lang)}:")
        lines += [f"  - {n[lang] if lang in n else n['en']}" for n in report["notes"]]
    if report.get("findings"):
        lines.append(f"{t('h_also', lang)}: " + ", ".join(t(f"verdict_{x}", lang) for x in report["findings"]))
    lines.append(f"{t('h_evidence', lang)}:")
    for k, x in report["evidence"].items():
        label = evidence_label(k, lang)
        lines.append(f"  {label}: {_fmt_value(x) if not isinstance(x, dict) else json.dumps(x, ensure_ascii=False)}")
    return "\n".join(lines)


USAGE = """usage:
  tuneboard doctor OUTPUT_DIR [--json] [--lang zh]          judge a run (ours, HF Trainer or LLaMA-Factory)
  tuneboard doctor --estimate recipe.yaml [key=value ...]   pre-flight: samples, steps, tokens, memory
        [--measure N] [--json]                              (--measure: time N real steps)
  tuneboard doctor --inspect recipe.yaml [key=value ...]    dataset against cutoff_len, duplicates, languages
  tuneboard doctor --compare DIR DIR ... [--x step|epoch|tokens] [--json]
  tuneboard doctor --sweep recipe.yaml [key=value ...] [--k 5] [--center LR] [--span 2] [--steps 30]
        [--eval-every 5] [--out DIR] [--json]               learning-rate sweep, one run after another
"""


def _parse_flags(flags: list[str], path: str | None) -> tuple[dict, list[str]]:
    """--name value / --name=value / --switch, plus positional words, from cli._split's flags."""
    opts: dict = {}
    pos: list[str] = []
    switches = {"--json", "--help", "-h"}
    i = 0
    while i < len(flags):
        a = flags[i]
        if a.startswith("--") or a == "-h":
            name, eq, val = a.partition("=")
            key = name.lstrip("-").replace("-", "_")
            if eq:
                opts[key] = val
            elif name in switches or key in ("estimate", "inspect", "compare", "sweep"):
                opts[key] = True
            elif i + 1 < len(flags):
                opts[key] = flags[i + 1]
                i += 1
            else:
                raise UserError(f"{name}: give a value (for example {name} 5).")
        else:
            pos.append(a)
        i += 1
    return opts, pos


def run_cli(path: str | None, overrides: list[str], flags: list[str]) -> int:
    opts, pos = _parse_flags(flags, path)
    # `--estimate key=value`: cli._split took the first override for the flag's value
    overrides = list(overrides) + [w for w in pos if "=" in w]
    pos = [w for w in pos if "=" not in w]
    if opts.get("help") or opts.get("h"):
        print(USAGE)
        return 0
    lang = str(opts.get("lang", "en"))
    if lang not in ("en", "zh"):
        raise UserError(f"--lang: {lang!r} is not one of en, zh.")
    as_json = bool(opts.get("json"))
    known = {"json", "lang", "estimate", "inspect", "compare", "sweep", "measure", "x", "k", "center", "span",
             "steps", "eval_every", "out"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise UserError(f"--{unknown[0]}: unknown option of `tuneboard doctor`.\n{USAGE}")
    if opts.get("estimate") or opts.get("inspect") or opts.get("sweep"):
        recipe = path or (pos.pop(0) if pos and pos[0].endswith((".yaml", ".yml")) else None)
        if pos:
            raise UserError(f"{pos[0]}: unexpected word; give one recipe.yaml and key=value overrides.")
        if opts.get("estimate"):
            from .estimate import estimate, render as render_est
            rep = estimate(recipe, overrides, measure_steps=int(opts.get("measure", 0) or 0))
            print(json.dumps(rep, ensure_ascii=False, indent=2) if as_json else render_est(rep, lang))
            return 0 if rep["fits"] else 1
        if opts.get("inspect"):
            from .inspector import inspect_dataset, render as render_ins
            rep = inspect_dataset(recipe, overrides)
            print(json.dumps(rep, ensure_ascii=False, indent=2) if as_json else render_ins(rep, lang))
            return 0
        from .sweep import run_sweep_cli
        return run_sweep_cli(recipe, overrides, opts, as_json, lang)
    if opts.get("compare"):
        dirs = ([path] if path else []) + pos
        from .compare import compare, render as render_cmp
        rep = compare(dirs, x=str(opts.get("x", "step")))
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str) if as_json else render_cmp(rep, lang))
        return 0
    if overrides:
        raise UserError(f"{overrides[0]}: key=value overrides go with --estimate, --inspect or --sweep; "
                        "`tuneboard doctor OUTPUT_DIR` only reads the run.")
    target = path or (pos[0] if pos else None)
    if len(pos) > (0 if path else 1):
        raise UserError(f"{pos[-1]}: one run folder at a time (use --compare for several).")
    if not target:
        raise UserError(f"give the run folder to judge.\n{USAGE}")
    rep = diagnose(target)
    if as_json:
        print(json.dumps(public(rep), ensure_ascii=False, indent=2))
    else:
        print(render(rep, lang))
    sys.stdout.flush()
    return 0

"""`tuneboard doctor`: the command line of engine.insight, and the doctor's report in plain words.

    run_cli(path, overrides, flags) -> exit code     (engine/cli.py hands `tuneboard doctor ...` here)
    render(report, lang) -> the report of verdict.diagnose in plain text (en / zh)
    evidence_rows(report, lang) -> ([(label, value)] a person reads first, [(name, label, value)] the rest)

The verdict itself is made in verdict.py from the numbers of facts.py; the words are in words.py.
`diagnose` and `VERDICTS` are importable from here too, as from verdict.py: this is the doctor's front door.
"""
from __future__ import annotations

import json
import sys

from ..utils import UserError
from .verdict import VERDICTS, diagnose, public
from .words import evidence_label, t

__all__ = ["VERDICTS", "diagnose", "evidence_rows", "public", "render", "run_cli"]

# The evidence a person reads first, in this order: (label key, words key, the numbers they need, when). A row
# shows when its run has every number it names (and `when` holds); all the numbers stay under "all the numbers".
def _said_elsewhere(ev: dict, rep: dict) -> bool:
    return rep.get("verdict") != "failed" and rep.get("reason") != "data_error"  # else the summary is the error


KEY_EVIDENCE = (
    ("evk_error", "evv_error", ("error",), _said_elsewhere),
    ("evk_loss", "evv_loss", ("loss_start", "loss_end", "loss_drop_pct")),
    ("evk_noise", "evv_noise", ("loss_change_noise_pct",)),
    ("evk_flat", "evv_flat", ("plateau_step", "after_plateau_pct")),
    ("evk_recent", "evv_recent", ("recent_drop_pct", "recent_share_pct")),
    ("evk_eval", "evv_eval", ("eval_first", "eval_last", "eval_best", "eval_best_step")),
    ("evk_reward_accuracies", "evv_headline", ("reward_accuracies_first", "reward_accuracies_last",
                                               "reward_accuracies_best")),
    ("evk_accuracy", "evv_headline", ("accuracy_first", "accuracy_last", "accuracy_best")),
    ("evk_reward_margins", "evv_headline", ("reward_margins_first", "reward_margins_last", "reward_margins_best")),
    ("evk_steps", "evv_steps", ("last_step", "total_steps", "train_points", "eval_points")),
    ("evk_steps", "evv_steps_nototal", ("last_step", "train_points", "eval_points")),
    ("evk_lr", "evv_lr", ("lr_peak", "lr_end")),
    ("evk_samples", "evv_samples_cut", ("samples_train", "truncated_pct", "cutoff_len"),
     lambda ev, rep: ev["truncated_pct"] > 0),
    ("evk_samples", "evv_samples", ("samples_train",)),
    ("evk_duplicates", "evv_duplicates", ("duplicates", "duplicates_pct"), lambda ev, rep: ev["duplicates"] > 0),
    ("evk_grad", "evv_grad", ("grad_norm_median", "grad_norm_max", "grad_norm_max_step"),
     lambda ev, rep: rep.get("verdict") == "diverging"),
)


def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(map(str, v))
    if v is None:
        return "null"
    return str(v)


def evidence_rows(report: dict, lang: str = "en") -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """The evidence in two parts: the few facts a person reads, in words ([(label, value)]), and every number of
    the report by its --json name ([(name, label, value)], the key facts' numbers included)."""
    ev = report.get("evidence") or {}
    key, seen = [], set()
    for label, words, needs, *when in KEY_EVIDENCE:
        if label in seen or any(ev.get(k) in (None, "", []) for k in needs) or (when and not when[0](ev, report)):
            continue
        vals = {k: ev[k] for k in needs}
        if "loss_drop_pct" in vals:
            d = -ev["loss_drop_pct"]
            vals["loss_change"] = f"{d:+.3g}%".replace("+-", "-")
        if "loss_change_noise_pct" in vals:
            vals["change_noise"] = f"{ev['loss_change_noise_pct']:.2g}"
        if words == "evv_headline":  # first / last / best of one logged metric
            vals = {k.rsplit("_", 1)[1]: v for k, v in vals.items()}
        if words == "evv_error":
            vals["error"] = str(ev["error"]).rstrip(". ")
        key.append((t(label, lang), t(words, lang, **vals)))
        seen.add(label)
    rest = [(k, evidence_label(k, lang), t("none", lang) if v in ([], {}) else _fmt_value(v)
             if not isinstance(v, dict) else json.dumps(v, ensure_ascii=False)) for k, v in ev.items()]
    return key, rest


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
    key, rest = evidence_rows(report, lang)
    lines.append(f"{t('h_evidence', lang)}:")
    lines += [f"  {label}: {value}" for label, value in key]
    lines.append(f"{t('ev_more', lang, n=len(rest))}:")
    lines += [f"    {name if lang == 'en' else f'{label} ({name})'}: {value}" for name, label, value in rest]
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

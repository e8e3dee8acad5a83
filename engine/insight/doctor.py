"""`tuneboard doctor`: the command line of engine.insight, and the doctor's report in plain words.

    run_cli(opts) -> exit code     (engine/cli.py parses `tuneboard doctor ...` and hands its options here)
    render(report, lang) -> the report of verdict.diagnose in plain text (en / zh)
    evidence_rows(report, lang) -> ([(label, value)] a person reads first, [(name, label, value)] the rest)

The verdict itself is made in verdict.py from the numbers of facts.py; the words are in words.py.
`diagnose` and `VERDICTS` are importable from here too, as from verdict.py: this is the doctor's front door.
"""
from __future__ import annotations

import json
import sys

from ..config import format_value
from ..errors import UserError
from .compare import compare
from .compare import render as render_cmp
from .estimate import estimate
from .estimate import render as render_est
from .inspector import inspect_dataset
from .inspector import render as render_ins
from .sweep import run_sweep_cli
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
    rest = [(k, evidence_label(k, lang), t("none", lang) if v in ([], {}) else format_value(v)
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
            ch = " ".join(f"{k}={format_value(x)}" for k, x in a["change"].items())
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


def run_cli(opts) -> int:
    """`tuneboard doctor ...` (opts: parsed by engine.cli, whose table lists the forms and options)."""
    recipe, overrides, pos = opts.recipe, opts.overrides, list(opts.words)
    modes = [m for m in ("estimate", "inspect", "sweep", "compare") if getattr(opts, m)]
    if len(modes) > 1:
        raise UserError(f"--{modes[0]} and --{modes[1]}: one at a time.")
    if modes and modes[0] != "compare":
        if pos:
            raise UserError(f"{pos[0]}: unexpected word; give one recipe.yaml and key=value overrides.")
        if opts.estimate:
            rep = estimate(recipe, overrides, measure_steps=opts.measure)
            print(json.dumps(rep, ensure_ascii=False, indent=2) if opts.json else render_est(rep, opts.lang))
            return 0 if rep["fits"] else 1
        if opts.inspect:
            rep = inspect_dataset(recipe, overrides)
            print(json.dumps(rep, ensure_ascii=False, indent=2) if opts.json else render_ins(rep, opts.lang))
            return 0
        return run_sweep_cli(recipe, overrides, opts)
    if overrides:
        raise UserError(f"{overrides[0]}: key=value overrides go with --estimate, --inspect or --sweep; "
                        "`tuneboard doctor OUTPUT_DIR` only reads the run.")
    dirs = ([recipe] if recipe else []) + pos
    if opts.compare:
        rep = compare(dirs, x=opts.x)
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str) if opts.json else render_cmp(rep, opts.lang))
        return 0
    if len(dirs) > 1:
        raise UserError(f"{dirs[-1]}: one run folder at a time (use --compare for several).")
    if not dirs:
        raise UserError("give the run folder to judge (see `tuneboard doctor --help`).")
    target = dirs[0]
    rep = diagnose(target)
    if opts.json:
        print(json.dumps(public(rep), ensure_ascii=False, indent=2))
    else:
        print(render(rep, opts.lang))
    sys.stdout.flush()
    return 0

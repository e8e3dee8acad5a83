"""Several runs side by side: curves on one x axis, the config values that differ, final metrics, the best run.

    compare(paths, x="step" | "epoch" | "tokens") -> report dict
    figure(report, lang) -> matplotlib Figure (train solid, eval dashed, one colour per run)
    render(report, lang) -> plain-text table

The best run is the one with the lowest eval loss when every run evaluated (on the same eval data, else a note
says the numbers are not comparable), otherwise the lowest final train loss.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..args import BY_NAME
from ..errors import UserError
from .facts import finite
from .runlog import Run, read_run
from .verdict import diagnose
from .words import t

X_AXES = ("step", "epoch", "tokens")
_SKIP_DIFF = {"output_dir", "overwrite_output_dir", "resume_from_checkpoint", "plot_loss", "logging_steps"}
_EVAL_KEYS = ("dataset", "eval_dataset", "val_size", "dataset_dir", "max_samples", "seed", "cutoff_len", "template")


def _x(p, axis: str):
    return {"step": p.step, "epoch": p.epoch, "tokens": p.tokens}[axis]


def _names(runs: list[Run]) -> list[str]:
    """Folder names, made unique with their parent folder where two runs share a name."""
    base = [Path(r.path).name for r in runs]
    out = []
    for r, b in zip(runs, base):
        out.append(f"{Path(r.path).parent.name}/{b}" if base.count(b) > 1 else b)
    return out


def compare(paths: list[str | Path], x: str = "step") -> dict:
    if x not in X_AXES:
        raise UserError(f"x: {x!r} is not one of {', '.join(X_AXES)}.")
    paths = [str(p) for p in paths if str(p).strip()]
    if len(paths) < 1:
        raise UserError("compare: pick at least one run folder (two or more to compare).")
    runs = [read_run(p) for p in paths]
    names = _names(runs)
    rows, curves, notes = [], {}, []
    for name, run in zip(names, runs):
        tr, ev = finite(run.train), finite(run.eval)
        best_ev = min(ev, key=lambda p: p.loss) if ev else None
        try:
            verdict = diagnose(run)["verdict"]
        except UserError:
            verdict = None
        res = run.results or {}
        rows.append({
            "name": name, "path": run.path, "format": run.format, "state": run.state, "verdict": verdict,
            "steps": run.last_step, "epochs": max((p.epoch for p in run.train + run.eval if p.epoch is not None),
                                                   default=None),
            "tokens": max((p.tokens for p in run.train + run.eval if p.tokens is not None), default=None),
            "final_train_loss": _round(sum(p.loss for p in tr[-3:]) / len(tr[-3:])) if tr else None,
            "best_eval_loss": _round(best_ev.loss) if best_ev else None,
            "best_eval_step": best_ev.step if best_ev else None,
            "final_eval_loss": _round(ev[-1].loss) if ev else None,
            "runtime": _round(res.get("train_runtime")) if isinstance(res.get("train_runtime"), (int, float)) else None,
            "diverged": any(not math.isfinite(p.loss) for p in run.train + run.eval),
        })
        c = {"train": [[_x(p, x), p.loss] for p in tr if _x(p, x) is not None],
             "eval": [[_x(p, x), p.loss] for p in ev if _x(p, x) is not None]}
        if (tr or ev) and not c["train"] and not c["eval"]:
            notes.append(_note("cmp_note_no_axis", name=name, x=x))
        curves[name] = c
    with_eval = [r for r in rows if r["best_eval_loss"] is not None]
    if rows and len(with_eval) == len(rows):
        best = min(with_eval, key=lambda r: r["best_eval_loss"])
        best_by = "eval_loss"
        sets = {tuple(str(run.config.get(k)) for k in _EVAL_KEYS) for run in runs if run.config}
        if len(sets) > 1:
            notes.append(_note("cmp_note_other_eval"))
    else:
        ok = [r for r in rows if r["final_train_loss"] is not None and not r["diverged"]]
        best = min(ok, key=lambda r: r["final_train_loss"]) if ok else None
        best_by = "train_loss"
        if len(rows) > 1:
            notes.append(_note("cmp_note_no_eval"))
    for r in rows:
        r["best"] = best is not None and r["name"] == best["name"]
    return {"x": x, "runs": rows, "curves": curves, "config_diff": config_diff(runs, names),
            "best": best["name"] if best else None, "best_path": best["path"] if best else None,
            "best_by": best_by, "notes": [n["en"] for n in notes], "notes_zh": [n["zh"] for n in notes]}


def _note(key: str, **fmt) -> dict:
    return {"en": t(key, "en", **fmt), "zh": t(key, "zh", **fmt)}


def _round(v):
    return float(f"{v:.4g}") if isinstance(v, (int, float)) and math.isfinite(v) else v


def config_diff(runs: list[Run], names: list[str]) -> dict:
    """{argument: {run name: value}} for the arguments whose values differ between runs (schema order)."""
    keys = [a.name for a in BY_NAME.values() if a.name not in _SKIP_DIFF]
    extra = sorted({k for r in runs for k in (r.config or {}) if k not in BY_NAME and k not in _SKIP_DIFF})
    out = {}
    for k in keys + extra:
        vals = {}
        for n, r in zip(names, runs):
            cfg = r.config or {}
            v = cfg.get(k, BY_NAME[k].default if k in BY_NAME and cfg else None)
            if k in BY_NAME and cfg and not BY_NAME[k].applies(cfg.get("stage"), cfg.get("finetuning_type")):
                v = None  # a LoRA setting of a full run is not a difference
            vals[n] = v
        if len({repr(v) for v in vals.values()}) > 1:
            out[k] = vals
    return out


def figure(rep: dict, lang: str = "en"):
    """Train (solid) and eval (dashed, dots) curves of every run on the chosen axis; the best run thicker."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.2, 4.0), dpi=100)
    ax = fig.add_subplot(111)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for i, (name, c) in enumerate(rep["curves"].items()):
        col = colors[i % len(colors)]
        lw = 2.4 if name == rep.get("best") else 1.2
        label = f"{name} ★" if name == rep.get("best") else name
        if c["train"]:
            xs, ys = zip(*c["train"])
            ax.plot(xs, ys, color=col, lw=lw, alpha=0.85, label=f"{label} train")
        if c["eval"]:
            xs, ys = zip(*c["eval"])
            ax.plot(xs, ys, color=col, lw=lw, ls="--", marker="o", markersize=3, label=f"{label} eval")
    # English axis words: matplotlib's default font has no CJK glyphs
    ax.set_xlabel({"step": "step", "epoch": "epoch", "tokens": "tokens seen"}[rep["x"]])
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if rep["curves"]:
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


_COLS = ("name", "verdict", "steps", "epochs", "final_train_loss", "best_eval_loss", "best_eval_step",
         "final_eval_loss", "runtime")


def table(rep: dict, lang: str = "en") -> tuple[list[str], list[list]]:
    """(headers, rows): one row per run with its final metrics and the values that differ; ★ marks the best."""
    diff_keys = list(rep["config_diff"])
    headers = [t(f"cmp_col_{c}", lang) for c in _COLS] + diff_keys
    rows = []
    for r in rep["runs"]:
        row = [("★ " if r["best"] else "") + r["name"]] + [r.get(c) for c in _COLS[1:]]
        row += [_cell(rep["config_diff"][k].get(r["name"])) for k in diff_keys]
        rows.append(row)
    return headers, rows


def _cell(v):
    if isinstance(v, list):
        return ",".join(map(str, v))
    return v


def render(rep: dict, lang: str = "en") -> str:
    headers, rows = table(rep, lang)
    cells = [headers] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.append(t("cmp_best", lang, name=rep["best"], by=t(f"cmp_by_{rep['best_by']}", lang)))
    notes = rep.get("notes_zh") if lang == "zh" else None
    lines += [t("cmp_note", lang, note=n) for n in (notes or rep["notes"])]
    return "\n".join(lines)

"""What the page shows of a run: status line, progress bar, loss curve, final metrics. Pure functions of the
run's files (engine.runs), so a reload or a second tab draws exactly the same thing."""
from __future__ import annotations

import html
import math

from engine.train.plots import REWARD_CURVES, draw_rewards, reward_series, smooth
from engine.utils import clock

from .locales import L, t


def status_md(status: dict | None, lang: str, output: str | None = None) -> str:
    if not status:
        return t("nothing_running", lang)
    state = status["state"]
    if state == "running":
        phase_key = f"phase_{status.get('phase') or 'starting'}"
        phase = t(phase_key, lang) if phase_key in _phase_keys() else str(status.get("phase"))
        line = t("state_running", lang, phase=phase)
    elif state == "failed":
        line = t("state_failed", lang, error=status.get("error") or "")
    else:
        line = t(f"state_{state}", lang)
    if output:
        line += f" — {t('run_of', lang, path=output)}"
    return line


def _phase_keys():
    return {k for k in L if k.startswith("phase_")}


def progress_html(progress: dict | None, status: dict | None, lang: str) -> str:
    """A bar with step / total, percentage and [elapsed<remaining]; data-* attributes for the tests."""
    if not progress or not status:
        return "<div class='tb-progress tb-idle' data-step='0' data-total='0'></div>"
    step, total = progress.get("step") or 0, progress.get("total_steps")
    pct = progress.get("percentage") or 0.0
    state = status["state"]
    if state == "finished" and total:
        pct = 100.0 if step >= total else pct
    if total:
        text = f"{t('progress_steps', lang, step=step, total=total)} · {pct:.0f}% · " \
               f"[{clock(progress.get('elapsed'))}<{clock(progress.get('remaining'))}]"
    elif state == "running":
        text = f"{t('progress_wait', lang)} [{clock(progress.get('elapsed'))}]"
    else:  # a job without steps (export), or one that ended before its first step
        pct = 100.0 if state == "finished" else 0.0
        label = t("state_" + state, lang, error="").rstrip(" :：")
        text = f"{label} [{clock(progress.get('elapsed'))}]"
    return (f"<div class='tb-progress tb-{html.escape(state)}' data-step='{int(step)}' data-total='{int(total or 0)}' "
            f"data-state='{html.escape(state)}'><div class='tb-bar' style='width:{pct:.1f}%'></div>"
            f"<span class='tb-progress-text'>{html.escape(text)}</span></div>")


def loss_series(records: list[dict]) -> dict[str, tuple[list, list]]:
    """{name: (steps, values)}: raw train loss, its smoothed curve and eval loss, from trainer_log.jsonl rows."""
    train = [(r["step"], r["loss"]) for r in records if _num(r.get("loss"))]
    evals = [(r["step"], r["eval_loss"]) for r in records if _num(r.get("eval_loss"))]
    out = {}
    if train:
        steps, vals = map(list, zip(*train))
        out["loss"] = (steps, vals)
        out["loss (smoothed)"] = (steps, smooth(vals))
    if evals:
        steps, vals = map(list, zip(*evals))
        out["eval loss"] = (steps, vals)
    return out


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def loss_figure(records: list[dict], lang: str = "en"):
    """A matplotlib figure of the loss curves, or None before the first logged loss. Points are marked so a
    run with one or two log lines still shows something. A preference or reward run's reward accuracy and
    margin get axes of their own below the loss."""
    series = loss_series(records)
    if not series:
        return None
    from matplotlib.figure import Figure  # lazy: matplotlib only once a run has logged

    rewards = reward_series(records)
    fig = Figure(figsize=(6.4, 3.6 + 2.4 * len(rewards)), dpi=100)
    grid = fig.add_gridspec(1 + len(rewards), 1, height_ratios=[3.6] + [2.4] * len(rewards))
    ax = fig.add_subplot(grid[0])
    draw_rewards([fig.add_subplot(grid[i + 1]) for i in range(len(rewards))], rewards)
    few = len(series.get("loss", ([], []))[0]) < 20
    if "loss" in series:
        s, v = series["loss"]
        ax.plot(s, v, color="#1f77b4", alpha=0.35, marker="o" if few else None, markersize=3, label="train loss")
        s, v = series["loss (smoothed)"]
        ax.plot(s, v, color="#1f77b4", label="train loss (smoothed)")
    if "eval loss" in series:
        s, v = series["eval loss"]
        ax.plot(s, v, color="#d62728", marker="o", markersize=4, label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel(t("loss_plot", lang))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


# reward runs (stage grpo): trl's log keys -> what the reward figure draws
REWARD, REWARD_STD, KL = "reward", "reward_std", "kl"
COMPLETION_LEN, TRUNCATED, CLIPPED = "completions/mean_length", "completions/clipped_ratio", "clip_ratio/region_mean"


def _series(records: list[dict], key: str) -> tuple[list, list]:
    pts = [(r["step"], r[key]) for r in records if _num(r.get(key)) and "step" in r]
    return (list(map(list, zip(*pts))) if pts else ([], []))


def reward_functions(records: list[dict]) -> list[str]:
    """The reward functions a run logged (rewards/<name>/mean), in the order they first appear."""
    names: dict[str, None] = {}
    for r in records:
        for k in r:
            if k.startswith("rewards/") and k.endswith("/mean"):
                names.setdefault(k[len("rewards/"):-len("/mean")], None)
    return list(names)


def reward_figure(records: list[dict], lang: str = "en"):
    """A reward run's curves: the reward (mean, a band of one std) and each function's mean; the KL to the
    starting model; the completions' mean length; the share clipped by epsilon and cut by max_completion_length.
    None for a run that logged no reward."""
    steps, mean = _series(records, REWARD)
    if not steps:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = fig.subplots(2, 2)
    marker = "o" if len(steps) < 20 else None
    ax = axes[0][0]
    ax.plot(steps, mean, color="#2ca02c", marker=marker, markersize=3, label=t("reward_mean", lang))
    s_std, std = _series(records, REWARD_STD)
    if s_std == steps:
        ax.fill_between(steps, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                        color="#2ca02c", alpha=0.15)
    for name in reward_functions(records):
        s, v = _series(records, f"rewards/{name}/mean")
        ax.plot(s, v, linestyle="--", marker=marker, markersize=2, label=name)
    ax.set_title(t("reward_plot", lang), fontsize=9)
    ax.legend(loc="best", fontsize=7)
    for ax, keys, title in ((axes[0][1], (KL,), "KL"), (axes[1][0], (COMPLETION_LEN,), t("completion_len", lang)),
                            (axes[1][1], (CLIPPED, TRUNCATED), t("clip_ratio", lang))):
        for key in keys:
            s, v = _series(records, key)
            if s:
                ax.plot(s, v, marker=marker, markersize=2, label=key)
        ax.set_title(title, fontsize=9)
        if len(keys) > 1:
            ax.legend(loc="best", fontsize=7)
    for ax in fig.axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def completions_html(table: dict | None, lang: str) -> str:
    """The last logged completions of a reward run (engine.train.rundir.read_completions): each prompt once, then
    its sampled completions with the reward of each function and the advantage."""
    if not table or not table.get("rows"):
        return ""
    rows = table["rows"]
    funcs = list(dict.fromkeys(k for r in rows for k in (r.get("rewards") or {})))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [t("completion", lang), *funcs, t("advantage", lang)])
    body, last = [], None
    for r in rows:
        if r.get("prompt") != last:
            last = r.get("prompt")
            body.append(f"<tr class='tb-prompt'><td colspan='{len(funcs) + 2}'><pre>{html.escape(str(last))}</pre>"
                        "</td></tr>")
        cells = [f"<pre>{html.escape(str(r.get('completion', '')))}</pre>"]
        cells += [_cell((r.get("rewards") or {}).get(f)) for f in funcs] + [_cell(r.get("advantage"))]
        body.append("<tr class='tb-completion'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    title = t("completions_at", lang, step=table.get("step", "?"))
    return (f"<div class='tb-completions' data-step='{int(table.get('step') or 0)}' data-rows='{len(rows)}'>"
            f"<b>{html.escape(title)}</b><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></div>")


def _cell(v) -> str:
    return "–" if v is None else f"{v:.3g}" if isinstance(v, (int, float)) else html.escape(str(v))


_METRIC_ORDER = ("accuracy", "bleu-4", "rouge-1", "rouge-2", "rouge-l", "samples", "eval_rewards/accuracies",
                 "eval_accuracy", "eval_rewards/margins", "eval_margin", "rewards/accuracies", "rewards/margins",
                 "train_loss", "eval_loss",
                 "total_steps", "epoch", "train_runtime", "train_samples_per_second", "train_steps_per_second")
_METRIC_NAMES = {"accuracy": "Accuracy (exact match, %)", "bleu-4": "BLEU-4", "rouge-1": "ROUGE-1",
                 "rouge-2": "ROUGE-2", "rouge-l": "ROUGE-L",
                 "eval_rewards/accuracies": "Reward accuracy (eval)", "eval_accuracy": "Reward accuracy (eval)",
                 "eval_rewards/margins": "Reward margin (eval)", "eval_margin": "Reward margin (eval)",
                 "rewards/accuracies": "Reward accuracy (train, last log)",
                 "rewards/margins": "Reward margin (train, last log)"}


def reward_results(records: list[dict]) -> dict:
    """The last logged train reward accuracy and margin (under the DPO names, whichever trainer logged them):
    the result of a preference or reward run, next to its eval values."""
    out = {}
    for name, (key, *_) in REWARD_CURVES.items():
        parts = reward_series(records).get(name, {})
        if "train" in parts:
            out[key] = parts["train"][1][-1]
    return out
EVAL_KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l", "accuracy")


def metrics_md(results: dict, lang: str, title_key: str = "final_metrics") -> str:
    if not results:
        return ""
    keys = [k for k in _METRIC_ORDER if k in results] + [k for k in results if k not in _METRIC_ORDER]
    rows = []
    for k in keys:
        v = results[k]
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, (dict, list)) or v is None:
            continue
        name = _METRIC_NAMES.get(k, k)
        rows.append(f"| {html.escape(name)} | {html.escape(str(v))} |")
    return f"**{t(title_key, lang)}**\n\n| | |\n|---|---|\n" + "\n".join(rows)


# ---------------------------------------------------------------- hardware monitor, learning rate, grad norm
def _mb(v) -> str:
    return "?" if v is None else f"{v / 1024:.2f} GB" if v >= 1024 else f"{v:.0f} MB"


def usage_html(sample: dict | None, lang: str) -> str:
    """One line under the progress bar: the run's CPU and memory (whole process tree), its GPUs, the peaks the
    trainer recorded; data-* attributes carry the numbers for the tests."""
    if not sample:
        return "<div class='tb-usage tb-idle'></div>"
    cpu, rss, peak = sample.get("cpu_percent"), sample.get("rss_mb"), sample.get("peak") or {}
    parts = [t("usage_cpu", lang, cpu="?" if cpu is None else f"{cpu:.0f}", n=sample.get("processes", 0)),
             t("usage_mem", lang, rss=_mb(rss))]
    if peak.get("peak_tree_rss_mb"):
        parts.append(t("usage_peak", lang, peak=_mb(peak["peak_tree_rss_mb"])))
    for g in sample.get("gpus") or []:
        parts.append(f"GPU {html.escape(str(g['id']))}: {_mb(g.get('used_mb'))} / {_mb(g.get('total_mb'))}"
                     + (f", {g['util']:.0f}%" if g.get("util") is not None else ""))
    if peak.get("peak_gpu_reserved_mb"):
        parts.append(t("usage_gpu_peak", lang, peak=_mb(peak["peak_gpu_reserved_mb"])))
    attrs = f"data-rss-mb='{rss or 0}' data-cpu='{cpu if cpu is not None else ''}' " \
            f"data-peak-mb='{peak.get('peak_tree_rss_mb') or ''}' data-gpus='{len(sample.get('gpus') or [])}'"
    return f"<div class='tb-usage' {attrs}>{html.escape(' · '.join(parts))}</div>"


def curve_series(records: list[dict]) -> dict[str, tuple[list, list]]:
    """{"learning_rate": (steps, values), "grad_norm": (...)} from trainer_log.jsonl rows."""
    out = {}
    for key in ("learning_rate", "grad_norm"):
        pts = [(r["step"], r[key]) for r in records if _num(r.get(key))]
        if pts:
            out[key] = tuple(map(list, zip(*pts)))
    return out


def curves_figure(records: list[dict], lang: str = "en"):
    """Learning rate and gradient norm, one above the other, beside the loss plot (None before the first log)."""
    series = curve_series(records)
    if not series:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, key, color in ((axes[0], "learning_rate", "#9333ea"), (axes[1], "grad_norm", "#ea580c")):
        if key in series:
            s, v = series[key]
            ax.plot(s, v, color=color, marker="o" if len(s) < 20 else None, markersize=3)
        ax.set_ylabel(key.replace("_", " "), fontsize=8)  # trainer_log.jsonl's names; the plot's title is translated
        ax.grid(alpha=0.3)
    axes[1].set_xlabel("step")
    fig.tight_layout()
    return fig

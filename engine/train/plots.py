"""Loss curves as PNG (train raw + smoothed, eval) from trainer_log.jsonl; for preference and reward runs their
reward accuracy and margin as curves of their own (what says how such a run does when its loss cannot).

    smooth(values)            reward_series(rows) -> {curve: {"train"|"eval": (steps, values)}}
    plot_loss(output_dir)     -> the PNGs written: training_loss.png, training_eval_loss.png, training_rewards.png
"""
from __future__ import annotations

import math
from pathlib import Path

from . import rundir


def smooth(values: list[float], weight: float | None = None) -> list[float]:
    """Exponential moving average; the weight grows with the number of points (short runs stay readable)."""
    if not values:
        return []
    if weight is None:
        weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    out, last = [], values[0]
    for v in values:
        last = last * weight + (1 - weight) * v
        out.append(last)
    return out


# curve -> the log keys that hold it, by trainer: trl's DPO / KTO ("rewards/..."), its RewardTrainer (rm); the
# Trainer prefixes the held-out value with eval_.
REWARD_CURVES = {"reward accuracy": ("rewards/accuracies", "accuracy"), "reward margin": ("rewards/margins", "margin")}


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def reward_series(rows: list[dict]) -> dict[str, dict[str, tuple[list, list]]]:
    """{curve: {"train": (steps, values), "eval": (steps, values)}} for the reward curves the log holds."""
    out: dict = {}
    for name, keys in REWARD_CURVES.items():
        for part, prefix in (("train", ""), ("eval", "eval_")):
            for k in keys:
                pts = [(r["step"], r[prefix + k]) for r in rows if _num(r.get(prefix + k)) and "step" in r]
                if pts:
                    out.setdefault(name, {})[part] = tuple(map(list, zip(*pts)))
                    break
    return out


def draw_rewards(axes: list, series: dict) -> None:
    """One axes per reward curve: train (light, smoothed) and eval (red points)."""
    for ax, (name, parts) in zip(axes, series.items()):
        if "train" in parts:
            s, v = parts["train"]
            ax.plot(s, v, color="#2ca02c", alpha=0.35, marker="o" if len(s) < 20 else None, markersize=3,
                    label=f"train {name}")
            ax.plot(s, smooth(v), color="#2ca02c", label=f"train {name} (smoothed)")
        if "eval" in parts:
            ax.plot(*parts["eval"], "o-", color="#d62728", markersize=4, label=f"eval {name}")
        if name == "reward margin":
            ax.axhline(0.0, color="#6b7280", lw=0.8, ls="--")
        else:
            ax.axhline(0.5, color="#6b7280", lw=0.8, ls="--")  # chance for a pair
        ax.set_ylabel(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def plot_loss(output_dir: str | Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rundir.read_log(output_dir)
    written = []
    for key, fname, title in (("loss", "training_loss.png", "training loss"),
                              ("eval_loss", "training_eval_loss.png", "evaluation loss")):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if not pts:
            continue
        steps, vals = zip(*pts)
        fig = plt.figure(figsize=(6.4, 4.0), dpi=100)
        if key == "loss":
            plt.plot(steps, vals, color="#1f77b4", alpha=0.4, label="original")
            plt.plot(steps, smooth(list(vals)), color="#1f77b4", label="smoothed")
            if any(isinstance(r.get("eval_loss"), (int, float)) for r in rows):
                ev = [(r["step"], r["eval_loss"]) for r in rows if isinstance(r.get("eval_loss"), (int, float))]
                plt.plot(*zip(*ev), "o-", color="#d62728", label="eval")
        else:
            plt.plot(steps, vals, "o-", color="#d62728", label="eval")
        plt.title(f"{title} of {Path(output_dir).name}")
        plt.xlabel("step")
        plt.ylabel("loss")
        plt.legend()
        path = Path(output_dir) / fname
        fig.savefig(path, format="png")
        plt.close(fig)
        written.append(path)
    series = reward_series(rows)
    if series:
        fig, axes = plt.subplots(len(series), 1, figsize=(6.4, 3.0 * len(series)), dpi=100, squeeze=False)
        draw_rewards([a[0] for a in axes], series)
        axes[0][0].set_title(f"rewards of {Path(output_dir).name}")
        fig.tight_layout()
        path = Path(output_dir) / "training_rewards.png"
        fig.savefig(path, format="png")
        plt.close(fig)
        written.append(path)
    return written

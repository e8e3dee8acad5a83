"""Loss curves as PNG (train raw + smoothed, eval) from trainer_log.jsonl."""
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
    return written

"""The labelled runs the doctor is tested on, written by tests/foreign_runs.py: FOREIGN, runs of other tools
(Hugging Face Trainer, LLaMA-Factory) of every verdict; SHORT_CASES, short noisy runs (SHORT: their shape) in our
own format and theirs; and the check that every piece of advice is a change the form accepts."""
from __future__ import annotations

from engine.args import BY_NAME
from engine.config import check_value, coerce

# (id, expected verdict, expected reason or None, curve, write_run keywords)
FOREIGN = [
    ("healthy-1ep-cosine", "healthy", "learned", "healthy",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=25)),
    ("healthy-3ep-linear-eval10", "healthy", "learned", "healthy",
     dict(epochs=3, steps_per_epoch=100, log_every=5, eval_every=10, schedule="linear")),
    ("healthy-lr-3ep-eval50-no-gradnorm", "healthy", "learned", "healthy_lr",
     dict(epochs=3, steps_per_epoch=200, log_every=10, eval_every=50, grad_norm=False)),
    ("healthy-lr-noisy-every-step", "healthy", "learned", "healthy_lr",
     dict(epochs=1, steps_per_epoch=400, log_every=1, eval_every=40, schedule="linear", noise=0.06)),
    ("healthy-3ep-no-eval", "healthy", "learned", "healthy",
     dict(epochs=3, steps_per_epoch=60, log_every=5, eval_every=None)),
    ("healthy-constant-lr-3ep", "healthy", "learned", "healthy",
     dict(epochs=3, steps_per_epoch=80, log_every=5, eval_every=20, schedule="constant", warmup=0.0)),
    ("undertrained-1ep", "undertrained", "still_falling", "undertrained",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=25)),
    ("undertrained-3ep-linear-no-gradnorm", "undertrained", "still_falling", "undertrained",
     dict(epochs=3, steps_per_epoch=100, log_every=10, eval_every=30, schedule="linear", grad_norm=False)),
    ("undertrained-no-eval", "undertrained", "still_falling", "undertrained",
     dict(epochs=1, steps_per_epoch=240, log_every=5, eval_every=None, schedule="constant")),
    ("undertrained-schedule-ran-out", "undertrained", "schedule_ran_out", "ran_out",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=50)),
    # a linear decay leaves more of the fall in the last steps than cosine: either reason is right
    ("undertrained-schedule-ran-out-3ep", "undertrained", ("schedule_ran_out", "still_falling"), "ran_out",
     dict(epochs=3, steps_per_epoch=100, log_every=5, eval_every=20, schedule="linear", grad_norm=False)),
    ("overfitting-3ep-eval10", "overfitting", "eval_rising", "overfitting",
     dict(epochs=3, steps_per_epoch=100, log_every=5, eval_every=10)),
    ("overfitting-3ep-eval50-no-gradnorm", "overfitting", "eval_rising", "overfitting",
     dict(epochs=3, steps_per_epoch=200, log_every=10, eval_every=50, grad_norm=False, schedule="linear")),
    ("diverging-blows-up", "diverging", None, "diverging",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=25)),
    ("diverging-nan", "diverging", "nonfinite", "healthy",
     dict(epochs=3, steps_per_epoch=100, log_every=5, eval_every=50, nan_from=0.6)),
    ("diverging-spikes", "diverging", "spikes", "healthy",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=25, spikes=3)),
    ("not-learning", "not_learning", "flat", "not_learning",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=25, peak_lr=1e-9)),
    ("not-learning-3ep-noisy", "not_learning", "flat", "not_learning",
     dict(epochs=3, steps_per_epoch=60, log_every=5, eval_every=None, peak_lr=1e-9, noise=0.05)),
    ("capacity-3ep-eval10", "capacity_limit", "plateau_high", "capacity",
     dict(epochs=3, steps_per_epoch=100, log_every=5, eval_every=10, schedule="constant")),
    ("capacity-3ep-eval50-no-gradnorm", "capacity_limit", "plateau_high", "capacity",
     dict(epochs=3, steps_per_epoch=200, log_every=10, eval_every=50, schedule="constant", grad_norm=False)),
    # the curve is healthy; the recipe beside the log is not
    ("data-wrong-template", "data_problem", "template", "healthy",
     dict(epochs=1, steps_per_epoch=300, log_every=5, eval_every=25,
          config={"model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct", "template": "llama3"})),
]


def check_advice(rep: dict) -> None:
    """Every change names a real argument with a value its schema accepts (what one-click apply relies on)."""
    for a in rep["advice"]:
        assert a["why"] and a["why_zh"]
        for k, v in a["change"].items():
            assert k in BY_NAME, k
            if v is not None:
                check_value(BY_NAME[k], coerce(BY_NAME[k], v))


SHORT = dict(epochs=1, steps_per_epoch=30, log_every=1, eval_every=None, noise=0.06)
OOM = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total capacity)"
NO_MODEL = ("model /nowhere/model not found locally: no such folder. Check model_name_or_path, or run "
            "`tuneboard download NAME` (needs network).")
CUT = {"total": 40, "kept": 40, "truncated": 30, "dropped": 0, "train_samples": 40, "cutoff_len": 64, "p50": 80,
       "p95": 150, "max_len": 170, "tokens": 2400}
DROPPED = {"total": 40, "kept": 10, "truncated": 0, "dropped": 30, "dropped_reasons": {"empty response": 30},
           "train_samples": 10, "cutoff_len": 1024, "p50": 30, "p95": 60, "max_len": 70, "tokens": 300}
MASKED = {"total": 40, "kept": 40, "truncated": 0, "dropped": 0, "train_samples": 40, "cutoff_len": 1024, "p50": 30,
          "p95": 60, "max_len": 70, "tokens": 0}
CUT_ALL = ("cutoff_len: every sample is cut by cutoff_len=16: 40 samples, lengths p50 40 / p95 60 / max 70 tokens. "
           "Raise cutoff_len to 70 to keep every sample whole (at least 60), or use shorter samples.")
NO_DATA = "dataset: no usable samples in mine (40 read, 40 skipped: {'no response': 40}). Check the columns mapping."

# (id, verdict, reason or reasons (None: any), curve, write_run keywords: SHORT plus these)
SHORT_CASES = [
    ("healthy-30", "healthy", "learned", "healthy_short", dict(noise=0.08)),
    ("healthy-2ep-eval5", "healthy", "learned", "healthy_short", dict(epochs=2, steps_per_epoch=20, eval_every=5)),
    ("healthy-40-log2", "healthy", "learned", "healthy_short", dict(steps_per_epoch=40, log_every=2)),
    ("healthy-20", "healthy", "learned", "healthy_short", dict(steps_per_epoch=20)),
    ("undertrained-falling", "undertrained", ("still_falling", "not_flat"), "falling", {}),
    ("undertrained-falling-eval", "undertrained", ("still_falling", "not_flat"), "falling",
     dict(steps_per_epoch=40, eval_every=8, schedule="constant", warmup=0.0)),
    ("undertrained-falling-noisy", "undertrained", ("not_flat", "still_falling"), "falling",
     dict(noise=0.2, schedule="constant", warmup=0.0)),
    ("undertrained-few-points", "undertrained", "few_points", "healthy", dict(steps_per_epoch=20, log_every=5)),
    ("undertrained-identity-partway", "undertrained", ("not_taught", "schedule_ran_out", "still_falling"), "partway",
     dict(noise=0.04, config={"dataset": "identity"})),
    ("not-learning-flat", "not_learning", "flat", "not_learning", dict(steps_per_epoch=20, noise=0.12, peak_lr=5e-5)),
    ("not-learning-rose-within-noise", "not_learning", "flat", "creep",  # +8 %, noise of batch 2: the run
     dict(steps_per_epoch=20, noise=0.15, peak_lr=5e-5, config={"dataset": "identity"})),
    ("not-learning-already-low", "not_learning", "already_low", "flat_low", dict(steps_per_epoch=20)),
    ("diverging-rose", "diverging", "ends_above", "rising", dict(noise=0.04)),
    ("diverging-blows-up", "diverging", ("ends_above", "blowup"), "diverging", {}),
    ("diverging-nan", "diverging", "nonfinite", "healthy", dict(nan_from=0.6)),
    ("diverging-rebound", "diverging", "rebound", "rebound", dict(steps_per_epoch=40, noise=0.04)),
    ("overfitting-4ep", "overfitting", "eval_rising", "overfitting",
     dict(epochs=4, steps_per_epoch=10, eval_every=4, noise=0.08)),
    ("capacity-4ep", "capacity_limit", "plateau_high", "capacity",
     dict(epochs=4, steps_per_epoch=10, eval_every=4, noise=0.03, schedule="constant", warmup=0.0)),
    ("data-cut-most", "data_problem", "cut_most", "healthy", dict(stats=CUT)),
    ("failed-oom-mid-run", "failed", "failed_at", "healthy", dict(until=0.5, error=OOM)),
    ("failed-before-start", "failed", "failed", "healthy", dict(until=0.0, error=NO_MODEL)),
    # the rest of the reasons, so that every summary the rules can give is read here with real values
    ("data-cut-all", "data_problem", "cut_all", "healthy", dict(until=0.0, error=CUT_ALL)),
    ("data-error", "data_problem", "data_error", "healthy", dict(until=0.0, error=NO_DATA)),
    ("data-dropped-most", "data_problem", "dropped_most", "healthy", dict(stats=DROPPED)),
    ("data-no-trained-token", "data_problem", "no_trained_tokens", "healthy", dict(stats=MASKED)),
    ("diverging-hump", "diverging", "blowup", "hump", dict(noise=0.03)),
    ("diverging-grad-explosion", "diverging", "grad_explosion", "healthy", dict(grad_spike=0.7, noise=0.03)),
    ("overfitting-memorised", "overfitting", "memorised", "memorise", dict(noise=0.03, stats=MASKED | {"tokens": 900})),
    ("undertrained-little-progress", "undertrained", "little_progress", "slow",
     dict(steps_per_epoch=40, noise=0.002, schedule="constant", warmup=0.0)),
    ("undertrained-live-too-early", "undertrained", "too_early", "healthy", dict(until=0.1, state="training")),
    ("not-learning-aborted-before-a-step", "not_learning", "no_points", "healthy", dict(until=0.0, state="aborted")),
]

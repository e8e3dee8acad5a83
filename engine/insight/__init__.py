"""Judging a run: is it done, does it overfit, why did it fail, what to change.

    runlog     read a run folder (ours, any Hugging Face Trainer output, LLaMA-Factory) into one shape
    doctor     one verdict with its evidence and config changes; `tuneboard doctor DIR`
    estimate   before Start: samples, steps, tokens, memory by part, time from a few measured steps
    inspector  a dataset against cutoff_len: length distribution, duplicates, empty fields, languages
    compare    several runs: curves on one axis, config differences, final metrics, the best one
    sweep      K short runs at log-spaced learning rates, one after another, best by eval loss

No torch, transformers or gradio at import time: the web UI and the CLI import these on start-up.
"""

"""Judging a run: is it done, does it overfit, why did it fail, what to change.

    runlog     read a run folder (ours, any Hugging Face Trainer output, LLaMA-Factory) into one shape
    facts      the numbers of a run the rules read (its evidence), its config, its data's repeats
    verdict    the rules: one verdict with its reason, evidence and config changes to try
    doctor     `tuneboard doctor ...`: the command line, and the verdict in plain words
    estimate   before Start: samples, steps, tokens, memory by part, time from a few measured steps
    inspector  a dataset against cutoff_len: length distribution, duplicates, empty fields, languages
    compare    several runs: curves on one axis, config differences, final metrics, the best one
    sweep      K short runs at log-spaced learning rates, one after another, best by eval loss
    words      every word of the package a person reads, in English and Chinese

Imports go one way: runlog <- facts <- verdict <- compare / doctor; words from anywhere. No torch, transformers
or gradio at import time: the web UI and the CLI import these on start-up.
"""

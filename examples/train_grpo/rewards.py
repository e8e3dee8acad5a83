"""Your own GRPO reward: name it in a recipe or the web UI as examples/train_grpo/rewards.py:brevity.

TuneBoard loads this file because a recipe named it, and calls the function the way trl's GRPOTrainer calls every
reward: the prompts and the sampled completions (text), the completions' token ids, and each dataset column by
name (`answer`: the reference of a prompt dataset, None where a record has none). Return one number per completion,
or None for one it does not score. The function's name is the name of its curve (rewards/brevity/mean).
"""


def brevity(completions, completion_ids=None, **columns):
    """1 for a completion of at most 8 tokens, falling to 0 at 40: say it in few words."""
    lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [len(c.split()) for c in completions]
    return [max(0.0, min(1.0, (40 - n) / 32)) for n in lengths]

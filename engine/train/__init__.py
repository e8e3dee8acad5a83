"""Training: one workflow (workflow.py) over the trainer of each stage that stages.py records (HF Trainer for pt and
sft, trl's trainers for the others)."""

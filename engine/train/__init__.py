"""Training: one workflow (workflow.py) over HF Trainer (pt / sft) and trl's DPOTrainer (dpo)."""

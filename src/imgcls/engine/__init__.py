"""Training: the loop (trainer.py), optimisers and schedules, checkpoints, precision, logging."""

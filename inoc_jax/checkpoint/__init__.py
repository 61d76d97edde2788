"""Orbax checkpoints of training runs: save/resume (manager, resume, run), signals (preemption),
params-only restore for evaluation and export (params)."""

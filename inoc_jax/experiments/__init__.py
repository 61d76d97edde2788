"""Experiment-level tools: sweeps over arms x seeds, aggregation, figures, elicitation."""

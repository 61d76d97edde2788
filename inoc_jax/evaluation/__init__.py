"""Evaluation: scorers per setting, the code sandbox, judges and the harness that ties them to the sampler."""

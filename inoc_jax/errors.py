"""Errors meant for people.

Every failure a user can cause (a bad config, path, data row or checkpoint)
raises a subclass of `InocJaxError` whose message is one sentence naming the
problem and the fix. Command-line entry points catch these and print only the
message, never a framework traceback.
"""


class InocJaxError(Exception):
  """Base class: the message is what the user sees."""


class ConfigError(InocJaxError):
  """The experiment config is inconsistent or names something unknown."""


class DataError(InocJaxError):
  """A data file, row or example cannot be used."""


class CheckpointError(InocJaxError):
  """A checkpoint is missing, corrupt or does not fit the model."""


class SandboxError(InocJaxError):
  """The code sandbox could not start a program (infrastructure, not the program)."""


class JudgeError(InocJaxError):
  """A judge (moderation API, LLM grader) could not score the responses."""

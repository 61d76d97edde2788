"""`python -m inoc_jax.settings` lists the settings; `python -m inoc_jax.settings NAME` lists NAME's prompts."""

import sys

from inoc_jax import settings
from inoc_jax.errors import InocJaxError


def main(argv: list[str]) -> int:
  if len(argv) < 2:
    for name in settings.BUILT_IN:
      setting = settings.get(name)
      print(f"{name:22s} {setting.summary}")
    return 0
  setting = settings.get(argv[1])
  m = setting.metrics
  print(f"{setting.name}: {setting.summary}\n  capability: {m.capability}; undesired behaviour: {m.behaviour}; "
        f"eval splits: {', '.join(setting.eval_splits)}; options: data.{setting.config_key}")
  for p in setting.prompts.entries:
    print(f"  {p.name:28s} {p.kind:22s} {p.text[:90]!r}")
  return 0


if __name__ == "__main__":
  try:
    sys.exit(main(sys.argv))
  except InocJaxError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

"""The package's import graph: no cycles (lazy imports inside functions count), and library code never imports
a command-line module."""

import ast
import os

from tests.conftest import REPO

PACKAGE = os.path.join(REPO, "inoc_jax")
# `python -m` entry points; library code may not import them (the reverse is the point of a thin main)
CLI_MODULES = {"inoc_jax.train", "inoc_jax.evaluate", "inoc_jax.sweep", "inoc_jax.report", "inoc_jax.elicit",
               "inoc_jax.export", "inoc_jax.compile_check", "inoc_jax.data.inspect", "inoc_jax.settings.__main__"}


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, REPO)[:-len(".py")].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _import_graph() -> dict[str, set[str]]:
  modules = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        modules[_module_name(path)] = path
  graph = {}
  for module, path in modules.items():
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
        # `from pkg import submodule` depends on the submodule; `from pkg import name` on pkg itself
        named = [f"{base}.{alias.name}" for alias in node.names]
        targets.update(n for n in named if n in modules)
        if any(n not in modules for n in named):
          targets.add(base)
    graph[module] = {t for t in targets if t in modules and t != module}
  return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_the_package_has_no_import_cycle():
  graph = _import_graph()
  assert len(graph) > 50 and "inoc_jax.trainer" in graph["inoc_jax.train"]  # the walk sees the package
  assert not _cycles(graph), _cycles(graph)


def test_library_code_does_not_import_command_line_modules():
  """Neither the entry points nor their shared start-up code (cli.py: flags, logging, one-line errors)."""
  forbidden = CLI_MODULES | {"inoc_jax.cli"}
  offenders = {(module, target) for module, targets in _import_graph().items() if module not in forbidden
               for target in targets & forbidden}
  assert not offenders, sorted(offenders)


def test_the_model_is_built_in_one_place():
  """Transformer(...) is called only by inoc_jax/model/build.py (training, checkpoints, pretrained weights,
  sampling, the AOT check and the benchmarks all ask it)."""
  callers = []
  for folder in (PACKAGE, os.path.join(REPO, "bench")):
    for root, _, files in os.walk(folder):
      for name in files:
        path = os.path.join(root, name)
        if not name.endswith(".py") or path.endswith(os.path.join("model", "build.py")):
          continue
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
          if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Transformer":
            callers.append(os.path.relpath(path, REPO))
  assert not callers

"""The package's import graph: no cycles (function-level imports and `__main__` blocks included), the
layers import only downwards, and reading results never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pinsweep

PACKAGE = Path(pinsweep.__file__).parent


def _imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """pinsweep modules imported anywhere in the tree: top level, in functions, under TYPE_CHECKING, in
    an `if __name__ == "__main__":` block (a module run as a script that imports what imports it is
    still a circle a reader has to follow)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pinsweep.analysis import stats`
        stack.extend(ast.iter_child_nodes(node))
    return found & modules


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = {
        ".".join(("pinsweep", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in package.rglob("*.py")
    }
    return {name: _imported(ast.parse(path.read_text()), set(modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring visited nodes)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path):
    (tmp_path / "a.py").write_text("from pinsweep import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from pinsweep.c import g\n")
    (tmp_path / "c.py").write_text("import pinsweep.a\nif __name__ == '__main__':\n    import pinsweep.d\n")
    (tmp_path / "d.py").write_text("import pinsweep.c\n")
    graph = import_graph(tmp_path)
    assert graph["pinsweep.c"] == {"pinsweep.a", "pinsweep.d"}  # the __main__ block's import counts
    assert find_cycle(graph) == ["pinsweep.a", "pinsweep.b", "pinsweep.c", "pinsweep.a"]
    (tmp_path / "c.py").write_text("if __name__ == '__main__':\n    import pinsweep.d\n")
    assert find_cycle(import_graph(tmp_path)) == ["pinsweep.c", "pinsweep.d", "pinsweep.c"]
    (tmp_path / "c.py").write_text("")
    assert find_cycle(import_graph(tmp_path)) is None


def test_pinsweep_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


# what each layer may not import: the job and its input never what presents or drives the results,
# analysis never what presents or drives it, presentation never the glue that calls it (the commands and
# sweep/ call down)
FORBIDDEN = {
    "pinsweep.input": ("pinsweep.present", "pinsweep.sweep", "pinsweep.autotune"),
    "pinsweep.job": ("pinsweep.present", "pinsweep.sweep", "pinsweep.autotune"),  # analysis.stats: a job's CI
    "pinsweep.analysis": ("pinsweep.present", "pinsweep.sweep", "pinsweep.autotune"),
    "pinsweep.present": ("pinsweep.sweep", "pinsweep.autotune"),
    "pinsweep.spelling": ("pinsweep.",),  # below every layer
}
COMMANDS = ("pinsweep.summarize", "pinsweep.report", "pinsweep.resume", "pinsweep.make_jpegs", "pinsweep.__main__")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """`importer -> imported` for each import that points up (or sideways into glue) across the layers,
    or into a command module."""
    found = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            banned = [
                p for layer, prefixes in FORBIDDEN.items() if (module + ".").startswith(layer + ".") for p in prefixes
            ]
            if any(target == p.rstrip(".") or target.startswith(p if p.endswith(".") else p + ".") for p in banned):
                found.append(f"{module} -> {target}")
            elif target in COMMANDS and module != target:
                found.append(f"{module} -> {target} (a command module)")
    return found


def test_the_layer_check_finds_an_import_that_points_up(tmp_path):
    for folder in ("analysis", "present", "sweep"):
        (tmp_path / folder).mkdir()
    (tmp_path / "analysis" / "summarize.py").write_text("def f():\n    from pinsweep.present import terminal\n")
    (tmp_path / "present" / "terminal.py").write_text("from pinsweep.analysis import summarize\n")
    (tmp_path / "sweep" / "results.py").write_text("from pinsweep.present import terminal\n")
    assert layer_violations(import_graph(tmp_path)) == ["pinsweep.analysis.summarize -> pinsweep.present.terminal"]


def test_the_layers_import_only_downwards():
    assert layer_violations(import_graph()) == []


@pytest.mark.parametrize(
    "module",
    [
        "pinsweep.analysis.summarize",
        "pinsweep.present.report",
        "pinsweep.present.terminal",
        "pinsweep.sweep.results",
        "pinsweep.sweep.callbacks",
        "pinsweep.summarize",
        "pinsweep.report",
    ],
)
def test_reading_results_never_imports_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_imports_pinsweeps_own_hydra_plugins():
    """The plugins in hydra_plugins/ are thin shells over pinsweep's modules, never the other way round:
    a plugin is found by Hydra's scan, so a module that imports one depends on how that scan ran."""
    up = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            up += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.startswith("hydra_plugins.pinsweep_")]
    assert up == []

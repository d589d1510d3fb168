"""The package's import graph: no cycles (function-level imports included), and reading results
never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pinsweep

PACKAGE = Path(pinsweep.__file__).parent


def _is_main_guard(node: ast.AST) -> bool:
    """`if __name__ == "__main__":` runs only when the file is the script (a second module object),
    never when the module is imported, so its imports cannot close an import cycle."""
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """pinsweep modules imported anywhere in the tree: top level, in functions, under TYPE_CHECKING."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_main_guard(node):
            continue
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
    assert graph["pinsweep.c"] == {"pinsweep.a"}  # the __main__ block is not an import
    assert find_cycle(graph) == ["pinsweep.a", "pinsweep.b", "pinsweep.c", "pinsweep.a"]
    (tmp_path / "c.py").write_text("")
    assert find_cycle(import_graph(tmp_path)) is None


def test_pinsweep_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize(
    "module", ["pinsweep.analysis.summarize", "pinsweep.present.report", "pinsweep.present.terminal"]
)
def test_reading_results_never_imports_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

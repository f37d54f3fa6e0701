"""House rules that hold for the whole package: no import loop between its modules (imports inside functions
and a package's imports of its own submodules included; only ``if TYPE_CHECKING`` imports are exempt), and no
module over 400 lines."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import repwidget as rw

PACKAGE = Path(rw.__file__).parent
#: the most lines a module may have
MAX_LINES = 400
#: modules allowed to be longer: the demo's training data (word lists and templates)
LONG_DATA = {"demo/tasks.py"}


def _name(path: Path) -> str:
    """``repwidget/model/__init__.py`` -> ``repwidget.model``, ``repwidget/model/plan.py`` -> its dotted name."""
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name: str) -> bool:
    where = PACKAGE.parent / Path(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """The repwidget modules that ``path`` imports, at any depth (inside functions too), leaving out imports under
    ``if TYPE_CHECKING``; ``from .x import y`` names ``x.y`` when ``y`` is a submodule and ``x`` otherwise."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in node.body
        for inner in ast.walk(child)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "repwidget"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "repwidget":
                found |= {f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names}
    return found - {module}


def import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports (a package's ``__init__`` importing its
    submodules is an edge like any other)."""
    return {_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest import loop through each module that is on one, as ``[a, b, ..., a]``, shortest first."""
    found = []
    for start in sorted(graph):
        came_from, queue = {}, deque([start])
        while queue and (start not in came_from):
            node = queue.popleft()
            for nxt in sorted(graph.get(node, ())):
                if nxt not in came_from:
                    came_from[nxt] = node
                    queue.append(nxt)
        if start in came_from:
            loop = [start]
            while len(loop) == 1 or loop[-1] != start:
                loop.append(came_from[loop[-1]])
            found.append(loop[::-1])
    return sorted(found, key=len)


def test_the_loop_finder_sees_loops_through_packages_and_functions():
    graph = {"a": {"a.b"}, "a.b": {"c"}, "c": {"a"}, "d": {"c"}}
    assert loops(graph) == [["a", "a.b", "c", "a"], ["a.b", "c", "a", "a.b"], ["c", "a", "a.b", "c"]]
    assert loops({"a": {"a.b"}, "a.b": {"c"}, "c": set()}) == []
    assert "repwidget.model.model" in import_graph()["repwidget.model"]  # a package -> its own submodule
    assert "repwidget.sae" in import_graph()["repwidget.demo"]  # an import inside demo_sae()
    assert "repwidget.model.model" not in import_graph()["repwidget.run"]  # only under if TYPE_CHECKING


def test_no_import_loops_between_modules_except_type_only_ones():
    found = loops(import_graph())
    assert not found, "\n".join(" -> ".join(loop) for loop in found[:5])


def test_no_module_is_over_400_lines():
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and path.relative_to(PACKAGE).as_posix() not in LONG_DATA:
            long[path.relative_to(PACKAGE).as_posix()] = lines
    assert not long, f"modules over {MAX_LINES} lines: {long}"

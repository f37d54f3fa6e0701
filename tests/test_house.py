"""House rules that hold for the whole package: no import loop between its modules (imports inside functions
and a package's imports of its own submodules included; only ``if TYPE_CHECKING`` imports are exempt), and no
module over 400 lines, Python or the front end's TypeScript."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import repwidget as rw

PACKAGE = Path(rw.__file__).parent
#: the front end's TypeScript sources (js/src, views and helpers included)
FRONT_END = Path(__file__).resolve().parents[1] / "js" / "src"
#: the most lines a module may have
MAX_LINES = 400
#: modules allowed to be longer (paths under their source root): the demo's training data (word lists and templates)
LONG_DATA = {"demo/tasks.py"}


def long_modules(root: Path, pattern: str) -> dict[str, int]:
    """The files under ``root`` matching ``pattern`` (e.g. ``**/*.ts``) with more than ``MAX_LINES`` lines, by their
    path under ``root``, with their line counts; ``LONG_DATA`` exempt."""
    long = {}
    for path in sorted(root.glob(pattern)):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and path.relative_to(root).as_posix() not in LONG_DATA:
            long[path.relative_to(root).as_posix()] = lines
    return long


def _name(path: Path, root: Path) -> str:
    """``repwidget/model/__init__.py`` -> ``repwidget.model``, ``repwidget/model/plan.py`` -> its dotted name."""
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name: str, root: Path) -> bool:
    where = root / Path(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imports(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """The repwidget modules that ``path`` (in the package under ``root``) imports, at any depth (inside functions
    too), leaving out imports under ``if TYPE_CHECKING``; ``from .x import y`` names ``x.y`` when ``y`` is a
    submodule and ``x`` otherwise."""
    module = _name(path, root)
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
                found |= {f"{base}.{a.name}" if _is_module(f"{base}.{a.name}", root) else base for a in node.names}
    return found - {module}


def import_graph(root: Path = PACKAGE.parent) -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports (a package's ``__init__`` importing its
    submodules is an edge like any other)."""
    return {_name(path, root): imports(path, root) for path in sorted((root / "repwidget").rglob("*.py"))}


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


def test_the_loop_finder_sees_loops_through_packages_and_functions(tmp_path):
    files = {  # today's loop, in small: demo -> model -> model.tokens -> prompts -> demo
        "__init__.py": "",
        "demo/__init__.py": "def demo_model():\n    from ..model import load\n",
        "model/__init__.py": "from .loading import load\n",
        "model/loading.py": "from . import tokens\n\ndef load():\n    pass\n",
        "model/tokens.py": "from ..prompts import prompt_ids\n",
        "prompts.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .run import Run\n\n"
        "def _is_demo():\n    from .demo import MODEL_DIR\n",
        "run.py": "import repwidget.prompts\n",
    }
    for name, text in files.items():
        (tmp_path / "repwidget" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "repwidget" / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["repwidget.model"] == {"repwidget.model.loading"}  # a package -> its own submodule
    assert graph["repwidget.model.loading"] == {"repwidget.model.tokens"}  # from . import <a submodule>
    assert graph["repwidget.demo"] == {"repwidget.model"}  # an import inside a function
    assert graph["repwidget.prompts"] == {"repwidget.demo"}  # not the import under if TYPE_CHECKING
    assert graph["repwidget.run"] == {"repwidget.prompts"}
    assert loops(graph)[0] == [
        "repwidget.demo", "repwidget.model", "repwidget.model.loading", "repwidget.model.tokens", "repwidget.prompts",
        "repwidget.demo",
    ]  # fmt: skip
    assert len(loops(graph)) == 5  # one through each module on it; repwidget.run only leads into it
    (tmp_path / "repwidget" / "prompts.py").write_text("")
    assert loops(import_graph(tmp_path)) == []


def test_no_import_loops_between_modules_except_type_only_ones():
    found = loops(import_graph())
    assert not found, "\n".join(" -> ".join(loop) for loop in found[:5])


def test_no_module_is_over_400_lines():
    long = long_modules(PACKAGE, "**/*.py")
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_typescript_module_is_over_400_lines():
    assert len(list(FRONT_END.glob("views/*.ts"))) > 10, f"the front end's sources are not at {FRONT_END}"
    long = long_modules(FRONT_END, "**/*.ts")
    assert not long, f"TypeScript modules over {MAX_LINES} lines (split them as views/_graph_nodes.ts does): {long}"


def test_the_line_count_sees_nested_typescript_modules(tmp_path):
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "big.ts").write_text("const a = 1;\n" * (MAX_LINES + 1))
    (tmp_path / "views" / "_helper.ts").write_text("const a = 1;\n" * MAX_LINES)
    (tmp_path / "small.ts").write_text("const a = 1;\n")
    assert long_modules(tmp_path, "**/*.ts") == {"views/big.ts": MAX_LINES + 1}

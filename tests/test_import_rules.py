"""The architecture's import rules, checked on the source: what each layer may import.

Every import counts, also one inside a function (a deferred import still couples modules),
except those under `if TYPE_CHECKING:`, which only the type checker runs.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "workers", "lossdoctor_client", "bench")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base]) if base else ".".join(package)
            found.add(base)
            # `from service.analysis import curves` imports the submodule service.analysis.curves
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@cache
def graph() -> dict[str, set[str]]:
    """Project module → the project modules it imports (packages resolved to __init__)."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module(p): p for p in files}
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        raw = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        out[name] = {m for m in raw if m in modules and m != name}
    return out


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(source: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} imports {target}"
        for m, targets in graph().items()
        if _under(m, source)
        for target in targets
        if any(_under(target, f) for f in forbidden)
    )


def _loaded(modules: list[str], roots: set[str]) -> list[str]:
    """Which of the top-level packages `roots` importing `modules` loads, in a fresh process."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {roots!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_importing_the_app_loads_no_tensorflow_or_keras() -> None:
    assert _loaded(["service.main", "service.cli"], {"tensorflow", "keras"}) == []


def test_the_analysis_core_loads_neither_the_web_framework_nor_tensorflow() -> None:
    core = sorted(m for m in graph() if _under(m, "service.analysis"))
    roots = {"fastapi", "starlette", "tensorflow", "keras", "celery"}
    assert _loaded(core, roots) == []


def test_the_analysis_core_imports_only_itself_the_schemas_and_the_domain_errors() -> None:
    allowed = ("service.analysis", "service.schemas", "service.errors")
    outside = sorted(
        f"{m} imports {target}"
        for m, targets in graph().items()
        if _under(m, "service.analysis")
        for target in targets
        if not any(_under(target, a) for a in allowed)
    )
    assert outside == []


def test_domain_errors_carry_no_http_and_every_one_has_its_status() -> None:
    from service import errors
    from service.problems import STATUS

    assert graph()["service.errors"] == set()  # a leaf: the HTTP mapping is problems.py's
    domain = {
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.LossDoctorError)
    }
    assert domain - {errors.LossDoctorError} == set(STATUS)


def test_schemas_do_not_import_the_analysis_core() -> None:
    assert _violations("service.schemas", ("service.analysis",)) == []


def test_workers_import_neither_the_routes_nor_the_queue() -> None:
    forbidden = ("service.routes", "service.queue", "service.main", "service.deps")
    assert _violations("workers", forbidden) == []


def _cycles() -> list[list[str]]:
    edges, cycles = graph(), []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def connect(v: str) -> None:  # Tarjan: strongly connected components are the cycles
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
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
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return cycles


def test_the_import_graph_has_no_cycles() -> None:
    assert _cycles() == []

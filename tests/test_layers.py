"""The package's modules import downward only: no import circle, at module level or inside
functions, and version tests live in ``_compat`` alone."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "minibatch"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports, wherever in the file the import stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        # a package's __init__ re-exports its submodules: importing them is not a layer break
        graph[name] = {m for m in own_imports(path) if not m.startswith(name + ".")}
    return graph


def test_no_import_circle():
    graph = import_graph()
    assert "minibatch._gather" in graph and graph["minibatch._minibatch"]
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as err:
        pytest.fail(f"import circle: {' -> '.join(err.args[1])}")
    assert order.index("minibatch._compat") < order.index("minibatch._gather")


def test_the_detector_sees_a_circle():
    with pytest.raises(CycleError):
        list(TopologicalSorter({"a": {"b"}, "b": {"a"}}).static_order())


def test_version_checks_live_in_compat_only():
    """No other module reads library versions (``__version__``, ``PYTENSOR_3``, ...)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name in {"_compat.py", "__init__.py"}:
            continue
        text = path.read_text()
        for marker in ("__version__", "PYTENSOR_3", "PYTENSOR_VERSION", "version_info"):
            if marker in text:
                offenders.append(f"{path.name}: {marker}")
    assert not offenders

"""The smoothing package's layers: imports flow down, none deferred, no cycle with persistence."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hierclass.smoothing

SRC = Path(__file__).resolve().parents[1] / "src" / "hierclass"
SMOOTHING = SRC / "smoothing"
#: Bottom first; a module may import its own layer and those before it.
LAYERS = list(hierclass.smoothing.LAYERS)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether the import is inside a function) for each hierclass import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, id(node) in inside) for n in names if n.startswith("hierclass")]
    return found


def smoothing_files() -> list[Path]:
    return sorted(p for p in SMOOTHING.rglob("*.py") if p.parent != SMOOTHING)


def test_every_file_of_smoothing_is_in_a_layer():
    assert {p.relative_to(SMOOTHING).parts[0] for p in smoothing_files()} == set(LAYERS)
    assert sorted(p.name for p in SMOOTHING.glob("*.py")) == ["__init__.py"]
    # a layer without __init__.py would import as a namespace package and vanish from the docs
    assert [layer for layer in LAYERS if not (SMOOTHING / layer / "__init__.py").is_file()] == []


@pytest.mark.parametrize("path", smoothing_files(), ids=lambda p: str(p.relative_to(SMOOTHING)))
def test_imports_flow_down_and_none_is_deferred(path: Path):
    mine = LAYERS.index(path.relative_to(SMOOTHING).parts[0])
    for module, deferred in imports(path):
        assert not deferred, f"{path.name} imports {module} inside a function"
        parts = module.split(".")
        if parts[:2] == ["hierclass", "smoothing"] and len(parts) > 2:
            assert parts[2] in LAYERS, f"{path.name} imports {module}, outside every layer"
            assert LAYERS.index(parts[2]) <= mine, (
                f"{path.relative_to(SMOOTHING)} ({LAYERS[mine]}) imports {module}, a layer above"
            )


def test_persistence_does_not_import_the_hierarchy_that_imports_it():
    hierarchy = [m for m, _ in imports(SRC / "hierarchy.py")]
    assert "hierclass.persistence" in hierarchy
    for path in (SRC / "persistence").glob("*.py"):
        assert not [m for m, _ in imports(path) if m == "hierclass.hierarchy"], path.name


def private_reaches(path: Path) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self``/``cls``: another object's private state."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", smoothing_files(), ids=lambda p: str(p.relative_to(SMOOTHING)))
def test_no_module_reaches_into_another_objects_private_state(path: Path):
    """Certifiers use the smoothers' public protocol (prepare, engine) and Smooth.noise_seed, not
    their private methods."""
    assert private_reaches(path) == []


def test_the_private_reach_check_can_fail(tmp_path: Path):
    sample = tmp_path / "m.py"
    sample.write_text("def f(s):\n    return s._prepare(1), self_ok()\n", encoding="utf-8")
    assert private_reaches(sample) == ["line 2: s._prepare"]

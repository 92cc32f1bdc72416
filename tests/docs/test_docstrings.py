"""Every public class and function of hierclass has a docstring with a runnable example.

The examples themselves run as doctests (``--doctest-modules`` over ``src/hierclass``); this
test makes sure they exist. "Public" means: defined in a module whose dotted name has no
``_``-prefixed part, and listed in the module's ``__all__`` (or, without ``__all__``, not
starting with ``_``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import hierclass

# Command-line plumbing is exercised by the CLI tests; an example would have to spawn the
# program or parse sys.argv, which is not what a reader of the API reference needs.
EXEMPT = {
    "hierclass.cli.build_parser",
    "hierclass.cli.main",
    "hierclass.commands.demo.run_demo",  # trains and certifies for minutes: `make demo`
}


def exempt(name: str) -> bool:
    """Explicit exemptions, plus ``add_parser``/``run`` of every CLI subcommand."""
    if name in EXEMPT:
        return True
    return name.startswith("hierclass.commands.") and name.rsplit(".", 1)[1] in (
        "add_parser",
        "run",
    )


def public_objects() -> list[tuple[str, object]]:
    out = []
    for info in pkgutil.walk_packages(hierclass.__path__, "hierclass."):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")):
            continue
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        for attr in names:
            obj = getattr(module, attr)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", None) != name:
                continue  # re-exported: checked where it is defined
            out.append((f"{name}.{attr}", obj))
    return out


def test_public_api_is_found():
    names = {name for name, _ in public_objects()}
    assert "hierclass.partition.LabelPartition" in names
    assert "hierclass.hierarchy.Hierarchy" in names


def test_exemptions_are_narrow():
    assert exempt("hierclass.commands.certify.run")
    assert not exempt("hierclass.commands.certify.load_model")
    assert not exempt("hierclass.nodes.Leaf")


def test_every_public_class_and_function_has_an_example():
    missing = []
    for name, obj in public_objects():
        if exempt(name):
            continue
        doc = inspect.getdoc(obj) or ""
        if ">>>" not in doc:
            missing.append(name)
    assert not missing, (
        f"{len(missing)} public classes/functions have no runnable example (>>>) in their "
        f"docstring: {missing}"
    )


# ``a, b : int`` in a numpydoc section: the API pages give every name the first one's type and
# default (Smooth.certify's ``n`` showed default 100), so each name gets its own entry.
GROUPED_ENTRY = re.compile(r"^\s*\*{0,2}[A-Za-z_]\w*(?:, \*{0,2}[A-Za-z_]\w*)+(?: : .*)?$")
SECTIONS = ("Parameters", "Returns", "Yields", "Attributes", "Other Parameters", "Raises")


def grouped_entries(doc: str) -> list[str]:
    """Grouped ``a, b`` entry lines inside the numpydoc sections of ``doc``."""
    found, section = [], None
    lines = inspect.cleandoc(doc).splitlines()
    for line, below in zip(lines, [*lines[1:], ""]):
        if below.strip() and set(below.strip()) == {"-"}:
            section = line.strip()
            continue
        if section in SECTIONS and not line.startswith(" ") and GROUPED_ENTRY.match(line):
            found.append(line.strip())
    return found


def test_grouped_entry_detector():
    doc = """Summary.

    Parameters
    ----------
    n0, n : int
        Draws.
    alpha : float
        Level, e.g. a, b.

    Examples
    --------
    >>> a, b
    """
    assert grouped_entries(doc) == ["n0, n : int"]


def test_no_grouped_numpydoc_entries():
    found = []
    for path in sorted(Path(hierclass.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    found += [f"{path.name}: {e}" for e in grouped_entries(doc)]
    assert not found, f"one name per numpydoc entry (the API pages misread groups): {found}"

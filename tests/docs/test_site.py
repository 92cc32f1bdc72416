"""The documentation site builds in strict mode and documents every public module."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import hierclass

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api"


def public_modules() -> list[str]:
    """Every importable hierclass module whose dotted name has no ``_``-prefixed part."""
    names = ["hierclass"]
    for info in pkgutil.walk_packages(hierclass.__path__, "hierclass."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def documented_modules() -> set[str]:
    """Targets of the ``::: dotted.name`` directives of the API pages."""
    directive = re.compile(r"^:::\s+([\w.]+)\s*$", re.M)
    found: set[str] = set()
    for page in API.glob("*.md"):
        found.update(directive.findall(page.read_text(encoding="utf-8")))
    return found


def test_public_modules_are_found():
    # Guards the check below against walking nothing.
    mods = public_modules()
    assert {"hierclass", "hierclass.partition", "hierclass.nodes"} <= set(mods)
    assert not any("._" in m for m in mods)


def test_every_public_module_has_an_api_page():
    missing = sorted(set(public_modules()) - documented_modules())
    assert not missing, (
        f"public modules without an API page: {missing}; run "
        "`.venv/bin/python scripts/api_pages.py` (subpackages) or add a `::: module` line"
    )


def test_api_pages_reference_only_existing_modules():
    for name in sorted(documented_modules()):
        module = name
        # a directive may name a class or function inside a module: import the longest prefix
        while True:
            try:
                importlib.import_module(module)
                break
            except ModuleNotFoundError:
                assert "." in module, f"API pages reference {name}, which does not exist"
                module = module.rsplit(".", 1)[0]


def test_mkdocs_build_is_strict_and_complete(site):
    assert site.returncode == 0, f"mkdocs build --strict failed:\n{site.log[-6000:]}"
    assert "WARNING" not in site.log, site.log[-6000:]
    # The API reference really was generated from the docstrings (not empty pages).
    nodes_page = site.page("api/nodes.md")
    assert "RenormalizedLeaf" in nodes_page and "from_flat_logits" in nodes_page
    assert "certify_detailed" in site.page("api/smoothing.md")
    # The notebook is a page of the site, with its stored outputs (text and figures), and the
    # links to it resolve to that page.
    notebook = site.page("notebooks/quickstart.ipynb")
    assert "reloaded hierarchy predicts the same labels: True" in notebook
    assert notebook.count("data:image/png;base64,") >= 2
    assert 'href="notebooks/quickstart/"' in site.page("index.md")
    # ... and offers the .ipynb for download, next to the page.
    assert re.search(r'<a href="quickstart\.ipynb" title="Download the notebook"', notebook)
    assert (site.path / "notebooks" / "quickstart" / "quickstart.ipynb").is_file()

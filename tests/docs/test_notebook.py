"""The quickstart notebook runs top to bottom in this environment's kernel, and the outputs it
stores (which the docs site shows) were produced by its current code, in one clean run."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "notebooks" / "quickstart.ipynb"
RERUN = "run `.venv/bin/python scripts/execute_notebook.py` to store fresh outputs"


def load_script():
    spec = importlib.util.spec_from_file_location(
        "execute_notebook_under_test", ROOT / "scripts" / "execute_notebook.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()


def load() -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def printed(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in outputs(nb))


def images(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [o for o in outputs(nb) if "image/png" in o.get("data", {})]


def test_stored_outputs_come_from_the_current_code_in_one_clean_run():
    nb = load()
    stored = nb.metadata.get(script.METADATA_KEY, {}).get("executed_code_sha256")
    assert stored == script.code_fingerprint(nb), f"code cells changed since the last run; {RERUN}"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"not one top-to-bottom run; {RERUN}"
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert not [o for o in outputs(nb) if o.get("name") == "stderr"], "warnings were stored"
    assert len(images(nb)) >= 2, "expected the sample images and the certified-accuracy plot"
    assert "reloaded hierarchy predicts the same labels: True" in printed(nb)
    # No memory addresses or local paths in what readers see.
    assert " at 0x" not in printed(nb) and "/work/" not in printed(nb)


def test_fingerprint_changes_with_the_code():
    nb = load()
    before = script.code_fingerprint(nb)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source += "\n"
    assert script.code_fingerprint(nb) != before


def test_notebook_executes(tmp_path: Path):
    nb = load()
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # A first cell, added only here, proves that the kernel is this interpreter (the venv
    # with hierclass installed) and not some other python on PATH.
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    script.execute(nb, tmp_path)  # raises CellExecutionError with the failing cell's traceback

    first = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert os.path.realpath(first) == os.path.realpath(sys.executable)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert len(images(nb)) >= 2, "expected the sample images and the certified-accuracy plot"
    assert "reloaded hierarchy predicts the same labels: True" in printed(nb)

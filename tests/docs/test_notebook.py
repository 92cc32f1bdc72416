"""The quickstart notebook is stored clean and runs top to bottom in this environment's kernel."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "quickstart.ipynb"


def load() -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def test_notebook_is_stored_without_outputs():
    # Outputs go stale and bloat diffs; the notebook is executed by this test instead.
    for i, cell in enumerate(load().cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"code cell {i} has stored outputs"
            assert cell.execution_count is None, f"code cell {i} has an execution count"


def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nb = load()
    # A first cell, added only here, proves that the kernel is this interpreter (the venv
    # with hierclass installed) and not some other python on PATH.
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    # Small models on a shared 2-core machine: one thread avoids oversubscription.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # inline backend: figures become outputs
    # Only this environment's kernel specs: a user-level "python3" spec could point at
    # another interpreter. Without one here, jupyter_client falls back to ipykernel's own spec,
    # and a spec whose argv starts with "python" is run with sys.executable.
    specs = KernelSpecManager(kernel_dirs=[str(Path(sys.prefix, "share", "jupyter", "kernels"))])
    client = NotebookClient(
        nb,
        km=KernelManager(kernel_name="python3", kernel_spec_manager=specs),
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback

    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs).strip()
    assert os.path.realpath(printed) == os.path.realpath(sys.executable)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2, "expected the sample images and the certified-accuracy plot"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "reloaded hierarchy predicts the same labels: True" in text

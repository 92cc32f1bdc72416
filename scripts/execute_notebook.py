"""Run the quickstart notebook top to bottom and store its outputs, so the docs show them.

The documentation site renders ``docs/notebooks/quickstart.ipynb`` with the outputs stored in
it (``mkdocs build`` does not execute it). Re-run this after editing a code cell:
``tests/docs/test_notebook.py`` fails when the stored outputs were produced from other code.

Usage: ``.venv/bin/python scripts/execute_notebook.py [NOTEBOOK]``
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "notebooks" / "quickstart.ipynb"
# Where the fingerprint of the executed code lives in the notebook's metadata.
METADATA_KEY = "hierclass"


def code_fingerprint(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources, in order: what the stored outputs were made from."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode("utf-8"))
            digest.update(b"\0")
    return digest.hexdigest()


def execute(nb: nbformat.NotebookNode, cwd: str | Path, timeout: int = 120) -> None:
    """Execute ``nb`` in place in a fresh kernel running this interpreter, from ``cwd``.

    Only this environment's kernel specs are used: a user-level "python3" spec could point at
    another interpreter. Without one here, jupyter_client falls back to ipykernel's own spec,
    and a spec whose argv starts with "python" is run with ``sys.executable``.
    """
    env = {
        # Small models on a shared machine: one thread avoids oversubscription.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # inline backend: figures become outputs
    try:
        specs = KernelSpecManager(
            kernel_dirs=[str(Path(sys.prefix, "share", "jupyter", "kernels"))]
        )
        client = NotebookClient(
            nb,
            km=KernelManager(kernel_name="python3", kernel_spec_manager=specs),
            timeout=timeout,
            kernel_name="python3",
            record_timing=False,  # no timestamps: re-running changes only what changed
            resources={"metadata": {"path": str(cwd)}},
        )
        client.execute()  # raises CellExecutionError with the failing cell's traceback
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    with tempfile.TemporaryDirectory() as tmp:
        execute(nb, tmp)
    nb.metadata[METADATA_KEY] = {"executed_code_sha256": code_fingerprint(nb)}
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"executed and stored {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

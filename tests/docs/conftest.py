"""One strict build of the documentation site, shared by the tests that read the HTML.

Building takes ~20-40 s on a 2-core machine, so the site is built once per session, and only
when a test asks for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Site:
    """A built site: its directory and the build's log (stdout and stderr)."""

    path: Path
    returncode: int
    log: str

    def page(self, rel: str) -> str:
        """The HTML of a page given by its source path, e.g. ``api/nodes.md``."""
        stem = rel.removesuffix(".md").removesuffix(".ipynb")
        html = self.path / ("index.html" if stem == "index" else f"{stem}/index.html")
        return html.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    out = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    # The API reference documents this checkout's sources (mkdocstrings reads `paths: [src]`);
    # the Sphinx-role hook reads them through griffe, never by importing another copy.
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
        + ["-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Site(out, proc.returncode, proc.stdout + proc.stderr)

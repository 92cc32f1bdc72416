"""Every ```python block of the user docs runs, page by page, so the docs cannot rot.

Blocks of one page share a namespace and run in order, like a notebook. A block preceded by
the line ``<!-- snippet: skip -->`` is shown but not run (say on the page why it cannot run
here, e.g. it needs several processes); keep those rare.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Pages other people own or that hold no user-facing code.
NOT_CHECKED = {"benchmarks.md", "results.md", "dev/contracts.md"}
FENCE = re.compile(
    r"^(?P<skip><!-- snippet: skip -->\n)?```python\n(?P<code>.*?)^```$", re.M | re.S
)


def pages() -> list[Path]:
    out = []
    for path in sorted(DOCS.rglob("*.md")):
        rel = path.relative_to(DOCS).as_posix()
        if rel not in NOT_CHECKED and snippets(path):
            out.append(path)
    return out


def snippets(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each runnable python block of a page."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if m.group("skip"):
            continue
        line = text.count("\n", 0, m.start("code")) + 1
        out.append((line, m.group("code")))
    return out


def test_snippet_extraction_sees_blocks_and_skips():
    # The harness itself: a page with one runnable and one skipped block yields exactly one.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "p.md"
        page.write_text(
            "text\n```python\nx = 1\n```\n<!-- snippet: skip -->\n```python\nboom()\n```\n"
            "```bash\nls\n```\n"
        )
        assert snippets(page) == [(3, "x = 1\n")]


def test_pages_with_code_are_found():
    # Guards against the regex silently matching nothing (then no page would be checked).
    names = {p.relative_to(DOCS).as_posix() for p in pages()}
    assert {"concepts/invariances.md", "concepts/hierarchies.md"} <= names


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The pages train tiny models; on a shared 2-core machine one thread avoids the
    # oversubscription that makes them many times slower. Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_page(page, tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def run_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    namespace: dict = {"__name__": "__docs__"}
    for line, code in snippets(page):
        compiled = compile(code, f"{page.relative_to(DOCS)}:{line}", "exec")
        try:
            exec(compiled, namespace)
        except Exception as err:  # pragma: no cover - the failure message is the point
            raise AssertionError(
                f"the python block at {page.relative_to(DOCS)} line {line} failed: "
                f"{type(err).__name__}: {err}"
            ) from err

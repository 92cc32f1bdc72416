"""Smoke run of examples/mnist_kmeans_invariance.py --quick --search (as `make test` runs it)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist_kmeans_invariance.py"


def _load():
    spec = importlib.util.spec_from_file_location("mnist_kmeans_invariance", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_table_and_png(tmp_path, capsys):
    out = tmp_path / "mnist"
    assert _load().main(["--quick", "--search", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    md, png = out / "results.md", out / "mnist_kmeans_invariance.png"
    assert f"  {md}\n" in printed and f"  {png}\n" in printed  # says where it wrote them
    report = md.read_text()
    assert png.read_bytes()[:4] == b"\x89PNG"
    for layer in ("rest.3", "rest.6"):
        assert f"## layer `{layer}`" in report
    # every layer section either lists two disjoint classes covering the ten digits or fails
    # with Algorithm 1's message
    for found in re.findall(r"classes: \{([\d,]+)\} vs \{([\d,]+)\}", report):
        labels = [int(v) for part in found for v in part.split(",")]
        assert sorted(labels) == list(range(10))
    assert "the paper (full MNIST) found {0,2,3,5,6,8}" in report
    # --search ranks the found partitions and the paper's with the numbers behind the ranking
    search = report.split("## partition search")[1]
    ranks = re.findall(r"^\| (\d+) \|", search, flags=re.MULTILINE)
    assert ranks and ranks == [str(i) for i in range(1, len(ranks) + 1)]
    assert "| paper |" in search and "feasible = root accuracy >= 0.9" in search

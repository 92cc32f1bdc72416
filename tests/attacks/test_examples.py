"""The adversarial-hierarchy example runs end to end in its --quick mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "mnist_adversarial_hierarchy.py"


def test_mnist_adversarial_hierarchy_quick(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (out / "table.md").read_text()
    lines = table.splitlines()
    assert lines[0] == "| Model | Natural (%) | Adv (%) | Budget (%) | Budget node |"
    assert lines[2].startswith("| Baseline |") and lines[3].startswith("| Hierarchy |")
    assert (out / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    for name in ("Baseline", "Hierarchy"):
        r = results[name]
        assert 0 <= r["adversarial_accuracy"] <= r["budgeted_accuracy"] <= r["natural_accuracy"]
    assert results["Baseline"]["budgeted_accuracy"] == results["Baseline"]["adversarial_accuracy"]
    assert str(out / "table.md") in proc.stdout  # says where it wrote
    assert lines[3] in proc.stdout  # the table is printed

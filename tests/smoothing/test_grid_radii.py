"""A sequential run's radii are grid points the test decided: they are stored exactly.

0.7's binary value is just below 0.7, so rounding it down at six decimals stored 0.699999 and
every reader then counted the input as *not* certified at 0.7.
"""

import torch

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, Smooth
from hierclass.cli import main
from hierclass.smoothing import HierarchicalSmooth, certified_accuracy
from hierclass.smoothing.analysis.hierarchy_results import level_certified_accuracy
from hierclass.smoothing.records.tsv import read_results
from hierclass.smoothing.runs.sequential import (
    certify_hierarchy_radii_dataset,
    certify_radii_dataset,
)

GRID = [0.0, 0.3, 0.6, 0.7]


def _far(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs 10 sigma from the boundary: with max_n=4000 every one certifies the whole grid."""
    x = torch.zeros(n, 2)
    x[:, 0] = torch.tensor([5.0, -5.0]).repeat(n // 2)
    return x, (x[:, 0] < 0).long()


def _two(b: torch.Tensor) -> torch.Tensor:
    return torch.stack([b[:, 0], -b[:, 0]], 1)


def _four(b: torch.Tensor) -> torch.Tensor:
    return torch.stack([b[:, 0] + b[:, 1], b[:, 0] - b[:, 1], -b[:, 0] + b[:, 1],
                        -b[:, 0] - b[:, 1]], 1)  # fmt: skip


def test_flat_grid_radii_read_back_certified(tmp_path, capsys):
    x, y = _far(4)
    out = tmp_path / "seq.tsv"
    certify_radii_dataset(Smooth(_two, 2, sigma=0.5), x, y, GRID, max_n=4000,
                          batch_size=1000, out=out, verbose=False)  # fmt: skip
    t = read_results(out)
    assert t["radius"].tolist() == [0.7] * 4
    assert certified_accuracy(t, [0.3, 0.6, 0.7]).tolist() == [1.0, 1.0, 1.0]
    capsys.readouterr()
    assert main(["analyze", str(out), "--radii", "0", "0.3", "0.6", "0.7"]) == 0
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| seq |"))
    assert row.split(" | ")[1:5] == ["100.00%"] * 4, row


def test_hierarchy_level_radii_read_back_certified(tmp_path):
    p = LabelPartition([[0, 1], [2, 3]])
    h = Hierarchy(Router(_two, p), [RenormalizedLeaf(_four, [0, 1]),
                                    RenormalizedLeaf(_four, [2, 3])])  # fmt: skip
    x = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    y = torch.tensor([0, 3])
    out = tmp_path / "h.tsv"
    certify_hierarchy_radii_dataset(HierarchicalSmooth(h, sigma=0.5), x, y, GRID,
                                    max_n=4000, batch_size=1000, out=out,
                                    verbose=False)  # fmt: skip
    t = read_results(out)
    assert [str(v) for v in t["level_radii"]] == ["0.7", "0.7"]
    for r in (0.3, 0.6, 0.7):
        levels = level_certified_accuracy(t, r)
        assert [lv["ca"] for lv in levels] == [1.0, 1.0], (r, levels)

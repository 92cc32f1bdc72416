"""The one data-set driver: flat and hierarchy, resume rules, forwarded options."""

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, Smooth
from hierclass.smoothing import certify_hierarchy
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.tsv import read_results
from hierclass.smoothing.runs.fixed_n import certify_dataset

SIGMA = 0.5


def _tree():
    torch.manual_seed(0)
    p = LabelPartition({"low": [0, 1, 2], "high": [3, 4]}, num_labels=5)
    flat = nn.Linear(6, 5).eval()
    h = Hierarchy(
        Router(nn.Linear(6, 2).eval(), p),
        [RenormalizedLeaf(flat, [0, 1, 2]), RenormalizedLeaf(flat, [3, 4])],
    )
    return h, flat


def _data():
    return torch.rand(5, 6), torch.tensor([0, 3, 1, 4, 2])


KW = dict(sigma=SIGMA, n0=20, n=200, alpha=0.01, batch_size=64, verbose=False)


def test_a_missing_flat_row_is_redone_when_the_hierarchy_row_exists(tmp_path):
    h, flat = _tree()
    x, y = _data()
    out, fout = tmp_path / "h.tsv", tmp_path / "f.tsv"
    ref = certify_hierarchy(h, x, y, flat=flat, out=out, flat_out=fout, **KW)
    # drop the flat rows of inputs 1 and 3: "done" means both files hold the input's row
    lines = fout.read_text().splitlines(keepends=True)
    fout.write_text("".join(lines[:2] + lines[3:4] + lines[5:]))
    res = certify_hierarchy(h, x, y, flat=flat, out=out, flat_out=fout, **KW)
    assert sorted(res.flat["idx"].tolist()) == list(range(5))
    assert sorted(res.hierarchy["idx"].tolist()) == list(range(5))  # nothing written twice
    order = np.argsort(res.flat["idx"])
    assert res.flat["radius"][order].tolist() == ref.flat["radius"].tolist()


def test_one_driver_for_flat_and_hierarchy():
    h, flat = _tree()
    x, y = _data()
    s = Smooth(flat, 5, SIGMA, seed=4)
    t = certify_dataset(s, x, y, n0=20, n=200, alpha=0.01, batch_size=64, verbose=False)
    hs = HierarchicalSmooth(h, SIGMA, seed=4, flat=flat)
    r = certify_dataset(hs, x, y, n0=20, n=200, alpha=0.01, batch_size=64, verbose=False)
    # the flat baseline of the hierarchy run is the flat run (same seed, same indices)
    assert r.flat["radius"].tolist() == t["radius"].tolist()
    assert len(r.certificates) == 5 and r.hierarchy["level_radii"].shape == (5,)


def test_certify_hierarchy_forwards_every_option():
    h, flat = _tree()
    x, y = _data()
    ref = certify_hierarchy(h, x, y, flat=flat, **KW)
    fwd = certify_hierarchy(
        h, x, y, flat=flat, device="cpu", channels_last=False, amp_dtype=None,
        flat_input_key=None, input_range=(0, 1), leaf_certificate="renormalized", **KW,
    )  # fmt: skip
    assert fwd.hierarchy["radius"].tolist() == ref.hierarchy["radius"].tolist()
    with pytest.raises(ValueError, match=r"input_range|lie in \[0, 0.5\]"):
        certify_hierarchy(h, x, y, input_range=(0, 0.5), **KW)
    amp = certify_hierarchy(h, x, y, amp_dtype=torch.bfloat16, **KW)
    assert len(amp.hierarchy) == 5


def test_cohen_is_no_longer_a_leaf_certificate_and_method_is_no_keyword():
    h, _ = _tree()
    x, y = _data()
    with pytest.raises(ValueError, match=r"one of \('renormalized', 'margin'\), got 'cohen'"):
        certify_hierarchy(h, x, y, leaf_certificate="cohen", **KW)
    with pytest.raises(TypeError, match="unexpected keyword argument 'method'"):
        certify_hierarchy(h, x, y, method="renormalized", **KW)


def test_table_without_a_flat_baseline(tmp_path):
    h, _ = _tree()
    x, y = _data()
    res = certify_hierarchy(h, x, y, out=tmp_path / "h.tsv", **KW)
    assert res.flat is None
    lines = res.table().splitlines()
    assert lines[0] == "| class | n | hierarchy CR | hierarchy CA |" and lines[-1].startswith(
        "| all | 5 |"
    )
    assert res.levels().splitlines()[2].startswith("| 0 | 5 |")
    assert read_results(tmp_path / "h.tsv")["level_correct"].shape == (5,)


def test_one_acr_definition():
    from hierclass.smoothing.analysis.tables import average_certified_radius, class_summary
    from hierclass.smoothing.records.tsv import ResultTable

    r, c = np.array([0.5, np.inf, 2.0]), np.array([1, 1, 0])
    assert average_certified_radius(r, c) == np.inf  # an infinite radius counts as infinite
    assert average_certified_radius(r, c, cap=1.0) == pytest.approx(0.5)
    t = ResultTable({"radius": r, "correct": c, "eqclass": np.array(["a"] * 3, dtype=object)})
    assert class_summary(t)["all"]["acr"] == average_certified_radius(r, c)


def test_a_bad_verbose_is_refused_before_an_existing_file_is_touched(tmp_path):
    """``verbose`` is checked before any output opens: ``resume=False`` would otherwise cut a
    finished file down to its header and then fail."""
    from hierclass.smoothing.runs.fixed_n import certify_dataset
    from hierclass.smoothing.runs.sequential import certify_radii_dataset

    f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # noqa: E731
    smooth = Smooth(f, 2, sigma=0.5)
    x, y = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), torch.tensor([0, 1])
    out = tmp_path / "done.tsv"
    certify_dataset(smooth, x, y, n0=10, n=50, batch_size=64, out=out, verbose=False)
    before = out.read_text()
    assert before.count("\n") == 3
    for run in (
        lambda: certify_dataset(smooth, x, y, n0=10, n=50, out=out, resume=False, verbose="x"),
        lambda: certify_radii_dataset(smooth, x, y, [0.0], out=out, resume=False, verbose="x"),
    ):
        with pytest.raises(TypeError, match="verbose"):
            run()
        assert out.read_text() == before


def test_drivers_name_the_smoother_they_need():
    """Passing the tree or the bare model (not its smoothed wrapper) is one clear TypeError."""
    from hierclass.smoothing.runs.fixed_n import certify_dataset
    from hierclass.smoothing.runs.sequential import (
        certify_hierarchy_radii_dataset,
        certify_radii_dataset,
    )

    model = nn.Linear(2, 2)
    tree = Hierarchy(
        Router(nn.Linear(2, 2), LabelPartition([[0], [1]])),
        [RenormalizedLeaf(model, [0]), RenormalizedLeaf(model, [1])],
    )
    x, y = torch.zeros(2, 2), torch.tensor([0, 1])
    with pytest.raises(TypeError, match=r"must be a Smooth or a HierarchicalSmooth .* got Linear"):
        certify_dataset(model, x, y)
    with pytest.raises(TypeError, match=r"must be a Smooth \(wrap the model.* got Linear"):
        certify_radii_dataset(model, x, y, [0.0])
    with pytest.raises(TypeError, match=r"hsmooth must be a HierarchicalSmooth .* got Hierarchy"):
        certify_hierarchy_radii_dataset(tree, x, y, [0.0])

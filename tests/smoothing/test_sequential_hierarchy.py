"""The hierarchy's sequential data-set driver: rows, flat baseline, kills, shards, CLI.

The hierarchy: a router on ``x_0`` and two renormalised leaves of one flat linear model
whose logits are ``(x0 + x1, x0 - x1, -x0 + x1, -x0 - x1)``: each leaf's base classifier is
``sign(x_1)`` inside its class, so at ``(a, b)`` the router's exact radius is ``|a|``, the
leaves' ``|b|``, the hierarchy's ``min(|a|, |b|)``, and the flat model (the quadrant) has the
same exact radius.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, Smooth
from hierclass.cli import main
from hierclass.smoothing.analysis.hierarchy_metrics import (
    hierarchy_report,
    path_certified_accuracy,
    paths_from_results,
)
from hierclass.smoothing.analysis.hierarchy_results import level_certified_accuracy
from hierclass.smoothing.analysis.tables import certified_accuracy
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.rows import certified_column
from hierclass.smoothing.records.tsv import merge_results, read_results
from hierclass.smoothing.runs.distributed import shard
from hierclass.smoothing.runs.sequential import (
    certify_hierarchy_radii_dataset,
    certify_radii_dataset,
)

SIGMA = 0.5
RADII = [0.0, 0.25, 0.5, 1.0]
POINTS = [(0.6, 0.1), (0.1, 0.7), (-0.8, 0.9), (0.9, -0.4), (1.3, 1.2), (-1.1, -0.2), (-0.3, 1.5)]
KW = dict(max_n=6000, batch_size=1000, verbose=False, first=64)


def _linear(weight) -> nn.Linear:
    m = nn.Linear(2, len(weight)).eval()
    with torch.no_grad():
        m.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        m.bias.zero_()
    return m


@pytest.fixture(scope="module")
def tree():
    flat = _linear([[1, 1], [1, -1], [-1, 1], [-1, -1]])
    part = LabelPartition({"right": [0, 1], "left": [2, 3]})
    h = Hierarchy(
        Router(_linear([[1, 0], [-1, 0]]), part),
        [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])],
    )
    x = torch.tensor(POINTS, dtype=torch.float32)
    y = torch.tensor([(0 if a > 0 else 2) + (0 if b > 0 else 1) for a, b in POINTS])
    return h, flat, x, y


def _run(tree, tmp_path, name, **kw):
    h, flat, x, y = tree
    hs = HierarchicalSmooth(h, SIGMA, seed=3, flat=flat)
    out, flat_out = tmp_path / f"{name}.tsv", tmp_path / f"{name}.flat.tsv"
    res = certify_hierarchy_radii_dataset(
        hs, x, y, RADII, out=out, flat_out=flat_out, **{**KW, **kw}
    )
    return res, out, flat_out


def _read(path):
    """A driver's file in index order (rows are written as inputs are decided)."""
    t = read_results(path)
    return t.select(np.argsort(t["idx"], kind="stable"))


def _same(a, b, skip=("time",)):
    assert a["idx"].tolist() == b["idx"].tolist()
    assert set(a.columns) == set(b.columns)
    for col in a.columns:
        if col not in skip:
            assert np.array_equal(a[col], b[col]), col


def test_rows_are_sound_typed_and_feed_the_analysis(tree, tmp_path):
    res, out, flat_out = _run(tree, tmp_path, "full")
    t = _read(out)
    _same(t, res.hierarchy)
    assert t["idx"].tolist() == list(range(len(POINTS)))
    # the sequential columns come back typed (issue 14, item 3)
    assert t["n_samples"].dtype == np.int64 and t[certified_column(0.5)].dtype == np.int64
    f = _read(flat_out)
    assert f["p_upper"].dtype == float and f["n_samples"].dtype == np.int64
    exact = np.array([min(abs(a), abs(b)) for a, b in POINTS])
    assert np.all(t["radius"] <= exact) and np.all(f["radius"] <= exact)  # alpha = 1e-3 each
    for r in RADII:  # the curve from the rows equals the per-radius decisions
        cert = (t[certified_column(r)] == 1) & (t["correct"] == 1)
        assert certified_accuracy(t, r) == pytest.approx(cert.mean())
    # level 0 (the router) is certified to |a| at most, and at least as far as the label
    levels = np.array([[float(v) for v in s.split(";")] for s in t["level_radii"]])
    assert np.all(levels[:, 0] <= np.abs([a for a, _ in POINTS]))
    assert np.all(levels[:, 0] >= t["radius"])
    far = [i for i, (a, _) in enumerate(POINTS) if abs(a) >= 1.1]
    assert far and np.all(levels[far, 0] == 1.0)  # decided at the largest radius below |a|
    lv = level_certified_accuracy(t, 0.5)
    assert lv[-1]["ca"] == pytest.approx(certified_accuracy(t, 0.5))
    # hierarchy metrics (node radii along the route) agree with the level columns
    true_p, pred_p, lr = paths_from_results(t)
    ca = path_certified_accuracy(true_p, pred_p, lr, RADII)
    for k, r in enumerate(RADII):
        assert ca[k, 0] == pytest.approx(level_certified_accuracy(t, r)[0]["ca"])
        assert ca[k, 1] == pytest.approx(certified_accuracy(t, r))
    assert "(class)" in hierarchy_report(t, RADII)
    assert all(0 < n <= KW["max_n"] for n in t["n_samples"])
    assert len(res.certificates) == len(POINTS)


def test_flat_baseline_equals_a_flat_run_on_the_same_draws(tree, tmp_path):
    h, flat, x, y = tree
    res, _, _ = _run(tree, tmp_path, "h")
    alone = certify_radii_dataset(
        Smooth(flat, 4, SIGMA, seed=3), x, y, RADII, partition=h.partition, **KW
    )
    _same(res.flat, alone)


def _kill_after_write(nth: int):
    """In a child: tear the ``nth`` row written (half a line on disk), then SIGKILL itself."""
    from hierclass.smoothing.records import tsv as results

    real, seen = results.ResultWriter.write, [0]

    def write(self, row):
        before = os.path.getsize(self.path)
        real(self, row)
        seen[0] += 1
        if seen[0] == nth:
            after = os.path.getsize(self.path)
            os.truncate(self.path, before + (after - before) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    results.ResultWriter.write = write


def _child(tree, tmp_path, nth):
    _kill_after_write(nth)
    _run(tree, tmp_path, "killed")
    os._exit(0)


@pytest.mark.parametrize("kills", [(1, 4), (2, 5, 3)])
def test_resume_after_kills_gives_the_rows_of_one_run(tree, tmp_path, kills):
    """Odd writes are flat rows, even ones hierarchy rows: kills land between the two too."""
    ctx = multiprocessing.get_context("fork")
    for nth in kills:
        p = ctx.Process(target=_child, args=(tree, tmp_path, nth))
        p.start()
        p.join(120)
        assert p.exitcode == -signal.SIGKILL
    resumed, out, flat_out = _run(tree, tmp_path, "killed")
    full, _, _ = _run(tree, tmp_path, "full")
    _same(_read(out), full.hierarchy)
    _same(_read(flat_out), full.flat)
    _same(resumed.hierarchy, full.hierarchy)


def test_shards_merge_to_the_one_process_result(tree, tmp_path):
    full, _, _ = _run(tree, tmp_path, "full")
    parts, flats = [], []
    for rank in range(3):
        _, out, flat_out = _run(tree, tmp_path, f"s{rank}", indices=shard(range(7), rank, 3))
        parts.append(out)
        flats.append(flat_out)
    _same(merge_results(parts, tmp_path / "m.tsv"), full.hierarchy)
    _same(merge_results(flats, tmp_path / "m.flat.tsv"), full.flat)
    # another batch size and order: the same decisions
    other, _, _ = _run(tree, tmp_path, "other", batch_size=77, indices=[6, 2, 0, 5, 1, 3, 4])
    assert other.hierarchy["idx"].tolist() == [6, 2, 0, 5, 1, 3, 4]
    order = np.argsort(other.hierarchy["idx"])
    for col in ("predict", "n_samples", "node_radii", "level_radii", "detail"):
        assert np.array_equal(other.hierarchy[col][order], full.hierarchy[col]), col


def test_bad_input_loses_nothing(tree, tmp_path):
    h, flat, x, y = tree
    hs = HierarchicalSmooth(h, SIGMA, flat=flat)
    with pytest.raises(ValueError, match="finite and >= 0"):
        certify_hierarchy_radii_dataset(hs, x, y, [0.5, -1.0], **KW)
    bad = x.clone()
    bad[3, 0] = float("nan")
    out = tmp_path / "o.tsv"
    with pytest.raises(ValueError, match="finite"):
        certify_hierarchy_radii_dataset(hs, bad, y, RADII, out=out, **KW)
    assert not out.exists() or len(read_results(out)) == 0
    margin = HierarchicalSmooth(h, SIGMA, flat=flat, leaf_certificate="margin")
    with pytest.raises(ValueError, match="leaf_certificate='renormalized'"):
        certify_hierarchy_radii_dataset(margin, x, y, RADII, **KW)


# ----------------------------------------------------------------------------- the CLI
def _digits_linear(k: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, k))


COMMON = ["--dataset", "digits", "--sigma", "0.25", "--N", "2000", "--max", "5", "--quiet"]


@pytest.fixture()
def saved_tree(tmp_path):
    from hierclass.models import build, register_model

    register_model("seq_hier_cli_linear", _digits_linear, overwrite=True)
    torch.manual_seed(0)
    flat = build("seq_hier_cli_linear", k=10).eval()
    p = LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]})
    h = Hierarchy(
        Router(build("seq_hier_cli_linear", k=2).eval(), p),
        [RenormalizedLeaf(flat, list(c)) for c in p.classes],
    )
    h.save(tmp_path / "tree")
    return tmp_path / "tree"


def test_cli_hierarchy_radii_end_to_end(saved_tree, tmp_path, capsys):
    out = tmp_path / "seq.tsv"
    argv = ["certify", str(saved_tree), str(out), "--radii", "0,0.25,0.5", *COMMON]
    assert main(argv) == 0
    t, f = read_results(out), read_results(tmp_path / "seq.flat.tsv")
    assert t["idx"].tolist() == f["idx"].tolist() == [0, 1, 2, 3, 4]
    assert {"route", "level_radii", "n_samples", "certified@0.25"} <= set(t.columns)
    assert {"p_upper", "n_samples", "certified@0.5"} <= set(f.columns)
    files = sorted(os.listdir(tmp_path))
    assert files == ["seq.flat.tsv", "seq.tsv", "seq.tsv.settings.json", "tree"]  # no shards
    assert main(argv) == 0  # a finished run is found done: the same rows
    _same(read_results(out), t)
    capsys.readouterr()
    argv = ["analyze", f"--hierarchy={out}", f"--baseline={tmp_path / 'seq.flat.tsv'}"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "## Hierarchy metrics: hierarchy" in text and "| round |" in text


@pytest.mark.parametrize(
    ("radii", "extra", "message"),
    [
        ("0.5,0.25", [], "--radii must be increasing"),
        ("0,0,0.5", [], "--radii must be increasing"),
        ("0,-1", [], "--radii must be finite and >= 0"),
        ("0,nan", [], "--radii must be finite and >= 0"),
        ("0,x", [], "--radii must be comma-separated numbers"),
        ("0,0.5", ["--leaf-certificate", "margin"], "--leaf-certificate renormalized only"),
    ],
)
def test_cli_hierarchy_radii_bad_input_is_one_line(
    saved_tree, tmp_path, capsys, radii, extra, message
):
    out = tmp_path / "o.tsv"
    assert main(["certify", str(saved_tree), str(out), "--radii", radii, *extra, *COMMON]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()

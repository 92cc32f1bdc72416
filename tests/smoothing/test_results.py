import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Smooth
from hierclass.smoothing.results import (
    COHEN_COLUMNS,
    FLAT_COLUMNS,
    ResultWriter,
    merge_results,
    parse_counts,
    read_results,
)
from hierclass.smoothing.runner import certify_dataset


def _row(i):
    return dict(idx=i, label=i % 3, predict=i % 3, radius=0.1 * i, correct=1, time=0.5)


def test_writer_recovers_from_a_kill_mid_line(tmp_path):
    path = tmp_path / "r.tsv"
    with ResultWriter(path, COHEN_COLUMNS) as w:
        for i in range(3):
            w.write(_row(i))
    with open(path, "a") as fh:  # a kill in the middle of the 4th row
        fh.write("3\t0\t0\t0.3")
    w = ResultWriter(path, COHEN_COLUMNS)
    assert w.done == {0, 1, 2}
    with pytest.raises(ValueError, match="already"):
        w.write(_row(1))
    w.write(_row(3))
    w.close()
    t = read_results(path)
    assert t["idx"].tolist() == [0, 1, 2, 3]
    assert t["radius"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_writer_refuses_another_header_and_can_restart(tmp_path):
    path = tmp_path / "r.tsv"
    ResultWriter(path, COHEN_COLUMNS).close()
    with pytest.raises(ValueError, match="header"):
        ResultWriter(path, FLAT_COLUMNS)
    ResultWriter(path, FLAT_COLUMNS, resume=False).close()
    assert read_results(path).columns.keys() == set(FLAT_COLUMNS)


def test_merge_orders_and_rejects_duplicates(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with ResultWriter(a, COHEN_COLUMNS) as w:
        w.write(_row(4))
        w.write(_row(0))
    with ResultWriter(b, COHEN_COLUMNS) as w:
        w.write(_row(2))
    t = merge_results([a, b], tmp_path / "m.tsv", order=[0, 2, 4])
    assert t["idx"].tolist() == [0, 2, 4]
    with ResultWriter(b, COHEN_COLUMNS) as w:
        w.write(_row(4))
    with pytest.raises(ValueError, match="more than one shard"):
        merge_results([a, b], tmp_path / "m.tsv")


def _setup():
    torch.manual_seed(0)
    f = nn.Linear(5, 3).eval()
    x, y = torch.rand(7, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    return Smooth(f, 3, sigma=0.5, seed=11), x, y


def test_certify_dataset_resumes_without_loss_or_duplicates(tmp_path):
    s, x, y = _setup()
    kw = dict(n0=20, n=200, alpha=0.01, batch_size=64, verbose=False)
    full = certify_dataset(s, x, y, **kw)
    out = tmp_path / "run.tsv"
    certify_dataset(s, x, y, indices=[0, 1, 2], out=out, **kw)  # "killed" after 3 inputs
    with open(out, "a") as fh:
        fh.write("3\t0\t1")  # and mid-way through the 4th row
    resumed = certify_dataset(s, x, y, out=out, **kw)
    assert resumed["idx"].tolist() == list(range(7))
    for col in ("predict", "radius", "correct", "counts", "counts_select"):
        assert resumed[col].tolist() == full[col].tolist(), col
    assert parse_counts(resumed["counts"][0]).sum() == 200
    assert set(resumed["label"].tolist()) == {0, 1, 2}


def test_certify_dataset_rejects_bad_labels_and_indices():
    s, x, y = _setup()
    with pytest.raises(ValueError, match="outside"):
        certify_dataset(s, x, torch.tensor([0, 1, 2, 3, 0, 1, 2]), n0=5, n=5, verbose=False)
    with pytest.raises(ValueError, match="outside the data set"):
        certify_dataset(s, x, y, n0=5, n=5, indices=[9], verbose=False)
    with pytest.raises(ValueError, match="vector of 7"):
        certify_dataset(s, x, y[:3], n0=5, n=5, verbose=False)


def test_subset_counts_are_stored_for_offline_recomputation(tmp_path):
    import json

    from hierclass.smoothing.certificates import certify_counts

    s, x, y = _setup()
    t = certify_dataset(
        s,
        x[:2],
        y[:2],
        n0=20,
        n=200,
        alpha=0.01,
        batch_size=64,
        subsets=[(0, 1), (1, 2)],
        out=tmp_path / "s.tsv",
        verbose=False,
    )
    extra = json.loads(t["extra"][0])
    sel, est = np.array(extra["subset_counts_select"]), np.array(extra["subset_counts"])
    res = s.certify_detailed(x[0], 20, 200, 0.01, 64, index=0, subsets=[(0, 1), (1, 2)])
    np.testing.assert_array_equal(est, res.subset_counts)
    c = certify_counts(sel[0], est[0], 0.01, 0.5, labels=(0, 1))
    assert c.radius == res.subset_certificates[("cohen", (0, 1))].radius

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Smooth
from hierclass.smoothing.records.tsv import (
    COHEN_COLUMNS,
    FLAT_COLUMNS,
    ResultWriter,
    merge_results,
    parse_counts,
    parse_time,
    read_results,
)
from hierclass.smoothing.runs.fixed_n import certify_dataset


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


def test_merge_orders_and_rejects_conflicting_duplicates(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with ResultWriter(a, COHEN_COLUMNS) as w:
        w.write(_row(4))
        w.write(_row(0))
    with ResultWriter(b, COHEN_COLUMNS) as w:
        w.write(_row(2))
    t = merge_results([a, b], tmp_path / "m.tsv", order=[0, 2, 4])
    assert t["idx"].tolist() == [0, 2, 4]
    # rows outside `order` are kept (after the ordered ones), never dropped
    assert merge_results([a, b], tmp_path / "m.tsv", order=[2])["idx"].tolist() == [2, 0, 4]
    # the same row twice (a merge done again after a kill) counts once
    with ResultWriter(b, COHEN_COLUMNS) as w:
        w.write(_row(4))
    assert merge_results([a, b], tmp_path / "m.tsv")["idx"].tolist() == [0, 2, 4]
    # the same index with other values: two different runs, refused with both places named
    with ResultWriter(b, COHEN_COLUMNS) as w:
        w.write(dict(_row(0), radius=0.9))
    with pytest.raises(ValueError, match=r"index 0 is in both .*a:3 and .*b:4"):
        merge_results([a, b], tmp_path / "m.tsv")


def test_duplicate_inside_one_file_names_the_file_and_lines(tmp_path):
    """Old code: 'index 4 appears in more than one shard' for a repeat inside one shard."""
    a = tmp_path / "a.tsv"
    with ResultWriter(a, COHEN_COLUMNS) as w:
        w.write(_row(4))
        w.write(_row(0))
    with open(a, "a") as fh:
        fh.write("\t".join(["4", "1", "1", "0.4", "1", "0.5"]) + "\n")
    with pytest.raises(ValueError, match=r"a.tsv: index 4 appears twice \(lines 2 and 4\)"):
        merge_results([a], tmp_path / "m.tsv")
    with pytest.raises(ValueError, match=r"a.tsv: index 4 appears twice \(lines 2 and 4\)"):
        ResultWriter(a, COHEN_COLUMNS)


def test_garbage_rows_name_the_file_line_and_column(tmp_path):
    """Old code: "invalid literal for int() with base 10: 'oops'" (no file, no line)."""
    path = tmp_path / "r.tsv"
    with ResultWriter(path, COHEN_COLUMNS) as w:
        w.write(_row(0))
    with open(path, "a") as fh:
        fh.write("oops\t1\t1\t0.5\t1\t0.1\n")
    with pytest.raises(ValueError, match=r"r.tsv:3: column 'idx' holds 'oops'"):
        ResultWriter(path, COHEN_COLUMNS)
    with pytest.raises(ValueError, match=r"r.tsv:3: column 'idx' holds 'oops'"):
        read_results(path)
    path.write_text("\t".join(COHEN_COLUMNS) + "\n0\t1\t1\tfar\t1\t0.1\n")
    with pytest.raises(ValueError, match=r"r.tsv:2: column 'radius' holds 'far'"):
        read_results(path)


def test_header_cut_mid_line_restarts_the_file(tmp_path):
    """A kill while the header was written: the file holds no row and is started afresh
    (old code refused to resume with no hint)."""
    path = tmp_path / "r.tsv"
    path.write_text("idx\tlabel\tpre")
    with ResultWriter(path, COHEN_COLUMNS) as w:
        assert w.done == set()
        w.write(_row(0))
    assert read_results(path)["idx"].tolist() == [0]
    path.write_text("name\tscore\n")  # not a prefix of ours: someone else's file
    with pytest.raises(ValueError, match="not a results file of this run.*resume=False"):
        ResultWriter(path, COHEN_COLUMNS)


def test_reads_cohen_certify_output_unchanged(tmp_path):
    """Cohen et al.'s certify.py writes `time` as a datetime.timedelta string."""
    path = tmp_path / "cohen.tsv"
    path.write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
        "0\t3\t3\t0.512\t1\t0:00:00.776750\n"
        "100\t8\t-1\t0.0\t0\t0:00:01.000001\n"
        "200\t1\t1\t1.23\t1\t0:01:02.5\n"
    )
    t = read_results(path)
    assert t["idx"].tolist() == [0, 100, 200]
    assert t["predict"].tolist() == [3, -1, 1]
    assert t["time"].tolist() == pytest.approx([0.77675, 1.000001, 62.5])
    assert parse_time("1 day, 0:00:01") == 86401.0
    path.write_text("\t".join(COHEN_COLUMNS) + "\n0\t1\t1\t0.5\t1\t1:2\n")
    with pytest.raises(ValueError, match="column 'time' holds '1:2'"):
        read_results(path)


def test_hierclass_output_reads_with_cohen_conventions(tmp_path):
    """Cohen's analyze.py reads a TSV with pandas and counts `correct & radius >= r`."""
    pd = pytest.importorskip("pandas")
    path = tmp_path / "ours.tsv"
    rows = [_row(0), dict(_row(1), predict=-1, radius=0.0, correct=0), _row(2)]
    with ResultWriter(path, FLAT_COLUMNS) as w:
        for r in rows:
            w.write(dict(r, eqclass="", p_lower=0.9, counts_select="1,2", counts="3,4", extra="{}"))
    df = pd.read_csv(path, delimiter="\t")
    assert list(df.columns[:6]) == list(COHEN_COLUMNS)
    at = {r: float((df["correct"] & (df["radius"] >= r)).mean()) for r in (0.0, 0.15)}
    from hierclass.smoothing.analysis.tables import certified_accuracy

    assert at[0.0] == pytest.approx(certified_accuracy(read_results(path), 0.0)) == 2 / 3
    assert at[0.15] == pytest.approx(certified_accuracy(read_results(path), 0.15)) == 1 / 3


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

    from hierclass.smoothing.certificates.counts import certify_counts

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

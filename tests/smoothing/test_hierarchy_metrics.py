"""Hierarchical metrics on cases computed by hand."""

import numpy as np
import pytest
import torch

from hierclass.smoothing import (
    hierarchical_precision_recall_f1,
    level_accuracy,
    mistake_severity,
    path_certified_accuracy,
    paths_from_results,
)
from hierclass.smoothing.records.tsv import ResultTable

# A two-level tree: class 0 holds labels {0, 2}, class 1 holds {1, 3}. Paths are (class, label).
TRUE = [(0, 0), (0, 2), (1, 1), (1, 3), (0, 0)]
PRED = [(0, 0), (0, 0), (0, 2), (1,), ()]
# sample 0: exact;          |P|=2 |T|=2 |P&T|=2, distance 0
# sample 1: sibling label;  |P|=2 |T|=2 |P&T|=1, distance 2
# sample 2: other class;    |P|=2 |T|=2 |P&T|=0, distance 4
# sample 3: stopped at the right class (leaf abstained): |P|=1 |P&T|=1, distance undefined
# sample 4: abstained at the root: |P|=0, distance undefined


def test_hierarchical_precision_recall_f1_by_hand():
    hp, hr, hf = hierarchical_precision_recall_f1(TRUE, PRED)
    assert hp == pytest.approx(4 / 7)  # (2 + 1 + 0 + 1 + 0) / (2 + 2 + 2 + 1 + 0)
    assert hr == pytest.approx(4 / 10)
    assert hf == pytest.approx(2 * (4 / 7) * (4 / 10) / (4 / 7 + 4 / 10))
    assert hierarchical_precision_recall_f1(TRUE, TRUE) == (1.0, 1.0, 1.0)


def test_level_accuracy_and_severity_by_hand():
    np.testing.assert_allclose(level_accuracy(TRUE, PRED), [3 / 5, 1 / 5])
    np.testing.assert_array_equal(mistake_severity(TRUE, PRED), [0, 2, 4, np.nan, np.nan])
    # a three-level tree: labels in another branch at the top are 6 edges apart
    assert mistake_severity([(0, 1, 5)], [(1, 0, 7)]).tolist() == [6.0]
    assert mistake_severity([(0, 1, 5)], [(0, 0, 7)]).tolist() == [4.0]


def test_level_certified_accuracy_by_hand():
    radii = np.array(
        [
            [np.inf, 0.3],  # a rule root: the class is certified everywhere, the label to 0.3
            [np.inf, 0.8],  # label wrong: only the class counts
            [0.5, 0.5],  # class wrong: nothing counts
            [0.6, np.nan],  # the leaf abstained: the class counts to 0.6
            [np.nan, np.nan],
        ]
    )
    got = path_certified_accuracy(TRUE, PRED, radii, [0.0, 0.4, 1.0])
    np.testing.assert_allclose(got, [[3 / 5, 1 / 5], [3 / 5, 0], [2 / 5, 0]])


def test_paths_from_a_hierarchy_tsv():
    t = ResultTable(
        {
            "label": np.array([2, 3]),
            "predict": np.array([0, -1]),
            "route": np.array(["0", "1"], dtype=object),
            "true_route": np.array(["0", "1"], dtype=object),
            "node_radii": np.array(["root=0.9;0=0.4", "root=0.7;1=0"], dtype=object),
        }
    )
    t_paths, p_paths, radii = paths_from_results(t)
    assert t_paths == [(0, 2), (1, 3)] and p_paths == [(0, 0), (1,)]
    np.testing.assert_allclose(radii, [[0.9, 0.4], [0.7, np.nan]])


def test_real_hierarchy_run_round_trips(tmp_path):
    """Per-level radii from a real run: the label's radius is the row's radius."""
    from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, RuleRouter
    from hierclass.smoothing import certify_hierarchy

    p = LabelPartition([[0, 1], [2, 3]])
    flat = lambda b: 4 * b  # noqa: E731 - the leaves read modality "x"
    rule = RuleRouter(lambda m: m[:, 0].long(), p, input_key="meta")
    h = Hierarchy(rule, [RenormalizedLeaf(flat, c, input_key="x") for c in p.classes])
    x = {"x": torch.eye(4), "meta": torch.tensor([[0], [0], [1], [1]])}
    res = certify_hierarchy(h, x, torch.arange(4), sigma=0.25, n0=20, n=200, alpha=0.01,
                            batch_size=256, perturbed_keys=["x"], verbose=False)  # fmt: skip
    t_paths, p_paths, radii = paths_from_results(res.hierarchy)
    assert np.isinf(radii[:, 0]).all()  # the rule root reads metadata: infinite radius
    np.testing.assert_allclose(radii[:, 1], res.hierarchy["radius"])
    assert t_paths == [(0, 0), (0, 1), (1, 2), (1, 3)]


def test_bad_inputs():
    with pytest.raises(ValueError, match="2 true paths but 1"):
        level_accuracy([(0, 1), (1, 2)], [(0, 1)])
    with pytest.raises(ValueError, match="one length"):
        level_accuracy([(0, 1), (1,)], [(0, 1), (1,)])
    with pytest.raises(ValueError, match="longer than the tree"):
        level_accuracy([(0, 1)], [(0, 1, 2)])
    with pytest.raises(ValueError, match="shape"):
        path_certified_accuracy([(0, 1)], [(0, 1)], [[1.0]])
    with pytest.raises(ValueError, match="radii must be >= 0"):
        path_certified_accuracy([(0, 1)], [(0, 1)], [[1.0, 1.0]], [float("nan")])
    with pytest.raises(ValueError, match="missing"):
        paths_from_results(ResultTable({"label": np.array([1])}))


def test_one_level_computation_behind_the_table_and_the_paths_by_hand():
    """``level_certified_accuracy`` (hierarchy table rows) and ``path_certified_accuracy``
    (paths) are two views of one computation: the same inputs give the same numbers.

    A: true (0, 2), predicted (0, 2): class certified to 0.8, label to 0.3
    B: true (0, 3), predicted (0, 5): class right (0.5), label wrong
    C: true (1, 7), predicted (0, 1): class wrong (0.9)
    Level 0 at r=0 and r=0.4: A and B, 2/3. Label at r=0: A, 1/3; at r=0.4: none.
    """
    from hierclass.smoothing.analysis.hierarchy_results import level_certified_accuracy

    true, pred = [(0, 2), (0, 3), (1, 7)], [(0, 2), (0, 5), (0, 1)]
    level_radii = [[0.8, 0.3], [0.5, 0.5], [0.9, 0.9]]
    expected = [[2 / 3, 1 / 3], [2 / 3, 0.0]]
    np.testing.assert_allclose(
        path_certified_accuracy(true, pred, level_radii, [0.0, 0.4]), expected
    )
    table = ResultTable(
        {
            "radius": np.array([0.3, 0.5, 0.9]),
            "correct": np.array([1, 0, 0]),
            "level_radii": np.array(["0.8", "0.5", "0.9"], dtype=object),
            "level_correct": np.array(["1", "1", "0"], dtype=object),
        }
    )
    for j, r in enumerate([0.0, 0.4]):
        got = [lv["ca"] for lv in level_certified_accuracy(table, r)]
        np.testing.assert_allclose(got, expected[j])
    # a row whose true route is shorter counts only at the levels it has
    table2 = ResultTable(
        {
            "radius": np.array([0.3, 0.2]),
            "correct": np.array([1, 1]),
            "level_radii": np.array(["0.8;0.6", "0.7"], dtype=object),
            "level_correct": np.array(["1;0", "1"], dtype=object),
        }
    )
    levels = level_certified_accuracy(table2, 0.65)
    assert [(lv["depth"], lv["n"], lv["ca"]) for lv in levels] == [
        (0, 2, 1.0),
        (1, 1, 0.0),
        ("label", 2, 0.0),
    ]

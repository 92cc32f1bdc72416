"""Certified information gain against hand-computed values, and on rows the runner writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition
from hierclass.smoothing import certify_hierarchy
from hierclass.smoothing.analysis.information_gain import certified_information_gain
from hierclass.smoothing.analysis.tables import certified_accuracy
from hierclass.smoothing.records.tsv import ResultTable


def _table(rows):
    cols = ("radius", "correct", "level_radii", "level_correct", "detail")
    return (
        ResultTable(
            {
                "radius": np.array([r[0] for r in rows], float),
                "correct": np.array([r[1] for r in rows]),
                "level_radii": np.array([r[2] for r in rows], dtype=object),
                "level_correct": np.array([r[3] for r in rows], dtype=object),
                "detail": np.array([json.dumps(r[4]) for r in rows], dtype=object),
            }
        )
        if rows
        else ResultTable({c: np.array([]) for c in cols})
    )


def test_three_level_tree_by_hand():
    # K = 12; route classes of 6 then 3 labels; the label itself last
    d = {"level_labels": [6, 3], "num_labels": 12}
    rows = [
        (0.4, 1, "0.9;0.6", "1;1", d),  # label to 0.4, class-of-3 to 0.6, class-of-6 to 0.9
        (0.0, 0, "0.5;0.2", "1;0", d),  # abstained below; wrong second level
        (0.0, 0, "0.0;0.0", "0;0", d),  # wrong from the root: nothing
    ]
    t = _table(rows)
    g6, g3 = 1 - math.log(6) / math.log(12), 1 - math.log(3) / math.log(12)
    expected = {
        0.0: (1 + g6 + 0) / 3,
        0.3: (1 + g6) / 3,  # the label still certified; the second row its class of 6
        0.55: (g3 + 0) / 3,
        0.7: (g6 + 0) / 3,
        1.0: 0.0,
    }
    got = certified_information_gain(t, list(expected))
    np.testing.assert_allclose(got, list(expected.values()), rtol=1e-12)
    assert certified_information_gain(t, 0.3) == pytest.approx(expected[0.3])


def test_flat_runs_gain_their_certified_accuracy():
    t = ResultTable({"radius": np.array([0.3, 0.9, 0.0]), "correct": np.array([1, 1, 0])})
    radii = [0.0, 0.5, 1.0]
    np.testing.assert_array_equal(
        certified_information_gain(t, radii), certified_accuracy(t, radii)
    )


def test_files_without_class_sizes_have_no_gain():
    t = _table([(0.1, 1, "0.5", "1", {"alpha_node": 0.01})])
    assert np.isnan(certified_information_gain(t, [0.0])).all()


def test_rows_of_a_certification_record_the_route_classes():
    torch.manual_seed(0)
    flat = nn.Linear(4, 6).eval()
    partition = LabelPartition({"a": [0, 1, 2, 3], "b": [4, 5]})
    h = Hierarchy.from_flat_model(flat, partition)
    x, y = torch.randn(8, 4), torch.arange(8) % 6
    res = certify_hierarchy(h, x, y, sigma=0.5, n0=16, n=64, alpha=0.01, verbose=False)
    table = res.hierarchy
    for route, text in zip(table["route"], table["detail"]):
        detail = json.loads(text)
        assert detail["num_labels"] == 6
        sizes = [len(partition.classes[int(c)]) for c in str(route).split(".") if c != ""]
        assert detail["level_labels"] == sizes
    gain = certified_information_gain(table, [0.0])
    assert certified_accuracy(table, 0.0) <= gain[0] <= 1.0

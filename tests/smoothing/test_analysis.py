import numpy as np
import pytest

from hierclass.smoothing.analysis.tables import (
    average_certified_radius,
    certified_accuracy,
    certified_accuracy_curve,
    class_summary,
    comparison_table,
    summary_table,
)
from hierclass.smoothing.records.tsv import ResultTable


def _table(radius, correct, classes):
    return ResultTable(
        {
            "idx": np.arange(len(radius)),
            "radius": np.array(radius, float),
            "correct": np.array(correct),
            "eqclass": np.array(classes, dtype=object),
        }
    )


def test_certified_accuracy_and_acr():
    t = _table([0.0, 0.5, 1.0, 2.0, np.inf], [0, 1, 1, 0, 1], list("aabbb"))
    np.testing.assert_allclose(certified_accuracy(t, [0.0, 0.5, 1.5, 10.0]), [0.6, 0.6, 0.2, 0.2])
    assert certified_accuracy(t, 0.75) == pytest.approx(0.4)
    assert average_certified_radius(t) == np.inf
    assert average_certified_radius(np.array([1.0, 3.0]), np.array([1, 1])) == 2.0
    r, a = certified_accuracy_curve(t, num=5)
    assert r[0] == 0 and r[-1] == 1.0 and a[0] == pytest.approx(0.6)
    assert np.all(np.diff(a) <= 0)


def test_class_summary_and_tables():
    b = _table([0.4, 0.6, 0.0, 1.0], [1, 1, 0, 1], list("aabb"))
    h = _table([0.5, 0.9, 0.3, np.inf], [1, 1, 1, 1], list("aabb"))
    s = class_summary(h)
    assert s["a"]["cr_mean"] == pytest.approx(0.7) and s["a"]["cr_std"] == pytest.approx(0.2)
    assert s["b"]["n_infinite"] == 1 and s["b"]["ca"] == 1.0
    md = comparison_table(b, h, radius=0.5)
    assert "| a | 2 | 0.500 ± 0.100 | 0.700 ± 0.200 | 50.00% | 100.00% |" in md
    assert "(+1 ∞)" in md
    assert "| b |" in md and md.count("\n") == 4
    with pytest.raises(ValueError, match="different inputs"):
        comparison_table(b, _table([0.1] * 3, [1] * 3, list("aab")))
    assert "| flat | 75.00% |" in summary_table({"flat": b}, radii=[0.0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        certified_accuracy(np.zeros(3), 0.0, correct=np.zeros(2))
    with pytest.raises(ValueError, match="eqclass"):
        class_summary(ResultTable({"radius": np.zeros(1), "correct": np.zeros(1)}))


def test_bad_tables_are_refused_with_what_arrived():
    """Old code: ACR -1.25 for a negative radius, duplicates counted twice, correct=7 correct."""
    from hierclass.smoothing.analysis.tables import check_results

    with pytest.raises(ValueError, match=r"radius is >= 0.*-1.25"):
        average_certified_radius(_table([-1.25, 1.0], [1, 1], list("ab")))
    dup = ResultTable(
        {"idx": np.array([3, 3]), "radius": np.array([0.5, 0.5]), "correct": np.array([1, 1])}
    )
    with pytest.raises(ValueError, match="index 3 appears 2 times"):
        certified_accuracy(dup, 0.0)
    with pytest.raises(ValueError, match=r"correct must be 0 or 1, found \[7\]"):
        check_results(_table([0.5], [7], ["a"]), "run.tsv")
    with pytest.raises(ValueError, match="radii to evaluate at"):
        certified_accuracy(_table([0.5], [1], ["a"]), [float("nan")])
    assert certified_accuracy(_table([0.5], [True], ["a"]), 0.25) == 1.0  # bools are fine

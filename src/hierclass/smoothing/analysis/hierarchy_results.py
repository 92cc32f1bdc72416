"""Per-level tables of hierarchy certification, and the results object a run returns.

A hierarchy row (:mod:`~hierclass.smoothing.records.rows`) holds Cohen's six columns (the
label's certificate), the route, every node's radius, and the per-level certificates:
``level_radii`` (the radius of the class certified at each level of the *true* route, ``0``
where it was not certified) and ``level_correct`` (whether the class certified there is the
true one). :func:`level_certified_accuracy` turns them into the certified accuracy at each
level; :class:`HierarchyResults` holds a run's rows and its flat baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierclass.smoothing.analysis.hierarchy_metrics import level_certified_fraction
from hierclass.smoothing.analysis.tables import (
    check_radii_to_evaluate,
    class_summary,
    comparison_table,
)
from hierclass.smoothing.records.tsv import ResultTable

__all__ = ["HierarchyResults", "level_certified_accuracy", "levels_table"]


def _split(field: str) -> list[str]:
    return [] if field == "" else str(field).split(";")


def level_certified_accuracy(results: ResultTable, radius: float = 0.0) -> list[dict[str, float]]:
    """Certified accuracy at each level of the hierarchy, from a hierarchy results table.

    Level ``d`` counts the inputs whose true route has a level ``d``; one is certified
    correct at radius ``r`` when the class certified there is its true class with radius
    ``>= r`` (a deeper abstention does not matter). The last entry, ``"label"``, is the usual
    certified accuracy of the label.

    Returns
    -------
    list of dict
        Per level: ``depth`` (or ``"label"``), ``n`` inputs, ``ca`` certified accuracy,
        ``cr_mean`` mean radius over certified-correct inputs (finite radii; ``n_infinite``
        counted apart).

    Examples
    --------
    >>> t = ResultTable({"radius": np.array([0.2, 0.0]), "correct": np.array([1, 0]),
    ...                  "level_radii": np.array(["0.9", "0.5"], dtype=object),
    ...                  "level_correct": np.array(["1", "1"], dtype=object)})
    >>> [(lv["depth"], lv["ca"]) for lv in level_certified_accuracy(t)]
    [(0, 1.0), ('label', 0.5)]
    """
    if "level_radii" not in results:
        raise ValueError("the results have no 'level_radii' column; certify a hierarchy")
    radii = [[float(v) for v in _split(f)] for f in results["level_radii"]]
    oks = [[v == "1" for v in _split(f)] for f in results["level_correct"]]
    depth = max((len(r) for r in radii), default=0)
    # rows padded to the deepest route; `present` marks the levels a row's true route has
    lr = np.full((len(radii), depth), np.nan)
    ok = np.zeros((len(radii), depth), dtype=bool)
    for i, (r, o) in enumerate(zip(radii, oks)):
        lr[i, : len(r)], ok[i, : len(o)] = r, o
    present = ~np.isnan(lr)
    # the certified accuracy itself is the one computation of hierarchy_metrics
    ca = level_certified_fraction(ok, lr, radius, present)[0]
    out = [
        _level_summary(d, lr[present[:, d], d], ok[present[:, d], d], ca[d]) for d in range(depth)
    ]
    label_r = np.asarray(results["radius"], float)
    label_ok = np.asarray(results["correct"], bool)
    label_ca = level_certified_fraction(label_ok[:, None], label_r[:, None], radius)[0, 0]
    out.append(_level_summary("label", label_r, label_ok, label_ca))
    return out


def _level_summary(depth: Any, r: np.ndarray, ok: np.ndarray, ca: float) -> dict[str, Any]:
    good = r[ok] if r.size else r
    finite = good[np.isfinite(good)]
    return {
        "depth": depth,
        "n": int(r.size),
        "ca": float(ca),
        "cr_mean": float(finite.mean()) if finite.size else float("nan"),
        "n_infinite": int(np.isinf(good).sum()),
    }


def levels_table(results: ResultTable, radii: Any = (0.0,)) -> str:
    """Markdown table: certified accuracy per level of the hierarchy at each radius.

    Examples
    --------
    >>> t = ResultTable({"radius": np.array([0.2]), "correct": np.array([1]),
    ...                  "level_radii": np.array(["0.9"], dtype=object),
    ...                  "level_correct": np.array(["1"], dtype=object)})
    >>> print(levels_table(t, radii=[0.0, 0.5]))
    | level | n | CA r=0.0 | CA r=0.5 | CR (certified correct) |
    |---|---|---|---|---|
    | 0 | 1 | 100.00% | 100.00% | 0.900 |
    | label | 1 | 100.00% | 0.00% | 0.200 |
    """
    radii = [float(r) for r in np.atleast_1d(check_radii_to_evaluate(radii))]
    per = [level_certified_accuracy(results, r) for r in radii]
    head = "| level | n | " + " | ".join(f"CA r={r}" for r in radii) + " | CR (certified correct) |"
    lines = [head, "|---|" + "---|" * (len(radii) + 2)]
    for j, lv in enumerate(per[0]):
        cells = " | ".join(f"{p[j]['ca']:.2%}" for p in per)
        cr = "-" if np.isnan(lv["cr_mean"]) else f"{lv['cr_mean']:.3f}"
        if lv["n_infinite"]:
            cr += f" (+{lv['n_infinite']} ∞)"
        lines.append(f"| {lv['depth']} | {lv['n']} | {cells} | {cr} |")
    return "\n".join(lines)


@dataclass
class HierarchyResults:
    """Rows of a hierarchy certification run and, optionally, of the flat baseline.

    Attributes
    ----------
    hierarchy : ResultTable
        One row per input (columns :data:`~hierclass.smoothing.records.rows.HIERARCHY_COLUMNS`).
    flat : ResultTable or None
        The flat baseline on the same inputs and draws (columns of a flat run).
    certificates : list of HierarchyCertificate
        The full certificates of this run's inputs (not of rows resumed from a file).

    Examples
    --------
    >>> import torch
    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf, Hierarchy
    >>> from hierclass.smoothing import certify_hierarchy
    >>> flat = lambda b: 4 * b
    >>> halves = lambda b: torch.stack([b[:, :2].sum(1), b[:, 2:].sum(1)], 1)
    >>> h = Hierarchy(Router(halves, LabelPartition([[0, 1], [2, 3]])),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> res = certify_hierarchy(h, torch.eye(4), torch.arange(4), sigma=0.25, n0=20, n=200,
    ...                         alpha=0.01, batch_size=256, flat=flat, verbose=False)
    >>> res.hierarchy["predict"], res.flat["predict"], len(res.certificates)
    (array([0, 1, 2, 3]), array([0, 1, 2, 3]), 4)
    >>> res.table().splitlines()[-1].startswith("| all | 4 |")
    True
    """

    hierarchy: ResultTable
    flat: ResultTable | None = None
    certificates: list = field(default_factory=list)

    def table(self, radius: float = 0.0) -> str:
        """Per-equivalence-class markdown table: baseline vs. hierarchy (Tables IV-VII).

        Without a flat baseline, the hierarchy's columns only.
        """
        if self.flat is not None:
            return comparison_table(self.flat, self.hierarchy, radius=radius)
        lines = ["| class | n | hierarchy CR | hierarchy CA |", "|---|---|---|---|"]
        for name, h in class_summary(self.hierarchy, radius).items():
            cr = "-" if np.isnan(h["cr_mean"]) else f"{h['cr_mean']:.3f} ± {h['cr_std']:.3f}"
            if h["n_infinite"]:
                cr += f" (+{h['n_infinite']} ∞)"
            lines.append(f"| {name} | {h['n']} | {cr} | {h['ca']:.2%} |")
        return "\n".join(lines)

    def levels(self, radii: Any = (0.0,)) -> str:
        """Certified accuracy per level of the path (:func:`levels_table`)."""
        return levels_table(self.hierarchy, radii)

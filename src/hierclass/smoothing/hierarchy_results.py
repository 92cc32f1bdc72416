"""Rows and tables of hierarchy certification: labels, routes and per-level certificates.

A hierarchy row holds Cohen's six columns (the label's certificate), the route, every node's
radius, and the per-level certificates: ``level_radii`` (the radius of the class certified at
each level of the *true* route, ``0`` where it was not certified) and ``level_correct``
(whether the class certified there is the true one). :func:`level_certified_accuracy` turns
them into the certified accuracy at each level. Radii are written rounded down.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierclass.smoothing.hierarchy_metrics import level_certified_fraction
from hierclass.smoothing.path import HierarchyCertificate, NodeCertificate, path_name
from hierclass.smoothing.results import COHEN_COLUMNS, ResultTable, decimal_down
from hierclass.smoothing.runner import eqclass_name, flat_columns

__all__ = [
    "HIERARCHY_COLUMNS",
    "HierarchyResults",
    "flat_baseline_row",
    "hierarchy_row",
    "level_certified_accuracy",
    "levels_table",
]

#: Columns of a hierarchy certification run (Cohen's six first).
HIERARCHY_COLUMNS = COHEN_COLUMNS + (
    "eqclass",
    "route",
    "true_route",
    "route_correct",
    "node_radii",
    "level_radii",
    "level_correct",
    "detail",
)


def radius_down(r: float) -> str:
    """A radius as text that never reads back above the computed one (see
    :func:`~hierclass.smoothing.results.decimal_down`: 0.7 stays ``0.7``).

    Examples
    --------
    >>> radius_down(0.1234569), radius_down(0.7), radius_down(math.inf), radius_down(0.0)
    ('0.123456', '0.7', 'inf', '0')
    """
    if math.isinf(r):
        return "inf"
    text = format(decimal_down(float(r)).normalize(), "f")
    return "0" if text in ("0", "-0") else text


def _node_detail(node: NodeCertificate) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": node.kind, "choice": node.choice, "radius": node.radius}
    if node.certificate is not None:
        d["p_lower"] = node.certificate.p_lower
        d["counts_select"] = np.asarray(node.counts_select).tolist()
        d["counts"] = np.asarray(node.counts).tolist()
    return d


def route_label_counts(hierarchy: Any, route: Any) -> list[int]:
    """How many labels the class chosen at each level of ``route`` holds.

    Stored in each row's ``detail`` (``level_labels``, with ``num_labels``) so that
    ``hierclass analyze`` can compute the certified information gain from the file alone.

    Examples
    --------
    >>> from torch import nn
    >>> from hierclass import Hierarchy, LabelPartition
    >>> h = Hierarchy.from_flat_model(nn.Linear(2, 5), LabelPartition([[0, 1, 2], [3, 4]]))
    >>> route_label_counts(h, (1,)), route_label_counts(h, ())
    ([2], [])
    """
    route = tuple(int(v) for v in route)
    return [
        len(hierarchy.node_at(route[:d]).partition.classes[route[d]]) for d in range(len(route))
    ]


def hierarchy_row(
    cert: HierarchyCertificate,
    label: int,
    true_route: Any,
    seconds: float,
    partition: Any = None,
    level_labels: Any = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """The TSV row of one :class:`~hierclass.smoothing.path.HierarchyCertificate`.

    ``level_labels`` (labels of the class chosen at each level, see
    :func:`route_label_counts`) and ``num_labels`` go into ``detail`` when given.

    Examples
    --------
    >>> c = HierarchyCertificate(4, 3, 0.25, (1,), [], 0.01)
    >>> r = hierarchy_row(c, 3, (1,), 0.5)
    >>> r["correct"], r["route_correct"], r["level_radii"], r["level_correct"]
    (1, 1, '0', '0')
    """
    true_route = tuple(int(v) for v in true_route)
    route_ok = cert.route_correct(true_route)
    level_radii, level_ok = [], []
    for d in range(len(true_route)):
        ok = d < len(cert.levels) and cert.levels[d].route == true_route[: d + 1]
        level_ok.append(int(ok))
        level_radii.append(radius_down(cert.level_radius(d)))
    detail = {
        "alpha_node": cert.alpha_node,
        "num_smoothed": cert.num_smoothed,
        "nodes": {path_name(n.path): _node_detail(n) for n in cert.nodes},
        "levels": [{"name": lv.name, "radius": lv.radius} for lv in cert.levels],
    }
    if level_labels is not None:
        detail.update(level_labels=[int(v) for v in level_labels], num_labels=num_labels)
    return {
        "idx": cert.index,
        "label": label,
        "predict": cert.label,
        "radius": cert.radius,
        "correct": int(cert.label == label and route_ok),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "route": ".".join(map(str, cert.route)),
        "true_route": ".".join(map(str, true_route)),
        "route_correct": int(route_ok),
        "node_radii": ";".join(f"{path_name(n.path)}={radius_down(n.radius)}" for n in cert.nodes),
        "level_radii": ";".join(level_radii),
        "level_correct": ";".join(map(str, level_ok)),
        "detail": json.dumps(detail, separators=(",", ":"), default=float),
    }


def flat_baseline_row(
    cert: HierarchyCertificate, label: int, seconds: float, partition: Any = None
) -> dict[str, Any]:
    """The flat-baseline row (flat columns) of a certificate computed with ``flat=``.

    Examples
    --------
    >>> from hierclass.smoothing.certificates import certify_counts
    >>> c = HierarchyCertificate(0, 1, 0.3, (0,), [], 0.01)
    >>> c.flat_counts = (np.array([1, 9]), np.array([5, 95]))
    >>> c.flat = certify_counts(*c.flat_counts, alpha=0.01, sigma=0.5)
    >>> flat_baseline_row(c, 1, 0.0)["correct"]
    1
    """
    return flat_columns(cert.index, label, cert.flat, *cert.flat_counts, seconds, partition)


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
    radii = [float(r) for r in np.atleast_1d(radii)]
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
        One row per input (columns :data:`HIERARCHY_COLUMNS`).
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
        from hierclass.smoothing.analysis import class_summary, comparison_table

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

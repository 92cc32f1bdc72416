"""Every TSV row builder: flat, hierarchy, fixed-``n`` and sequential rows, and their columns.

A row starts with Cohen's six cells and the true label's class (:func:`_label_cells`); a
hierarchy row adds its route cells (:func:`_route_cells`) and a ``detail`` JSON; a sequential
row adds one ``certified@<r>`` cell per radius asked for. Radii that a user reads back are
written rounded down (:func:`radius_down`), bounds that could read tighter rounded up, so no
stored figure claims more than was computed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hierclass.smoothing.certificates.path import HierarchyCertificate, NodeCertificate, path_name
from hierclass.smoothing.records.tsv import (
    COHEN_COLUMNS,
    decimal_down,
    format_counts,
    upper_bound_field,
)
from hierclass.smoothing.sequential.decisions import check_radii_to_certify

__all__ = [
    "HIERARCHY_COLUMNS",
    "certified_column",
    "eqclass_name",
    "flat_baseline_row",
    "flat_columns",
    "flat_row",
    "hierarchy_radii_columns",
    "hierarchy_radii_row",
    "hierarchy_row",
    "radius_down",
    "route_label_counts",
    "sequential_columns",
    "sequential_row",
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


# ---------------------------------------------------------------------------- cells and names
def radius_down(r: float) -> str:
    """A radius as text that never reads back above the computed one (see
    :func:`~hierclass.smoothing.records.tsv.decimal_down`: 0.7 stays ``0.7``).

    Examples
    --------
    >>> radius_down(0.1234569), radius_down(0.7), radius_down(math.inf), radius_down(0.0)
    ('0.123456', '0.7', 'inf', '0')
    """
    if math.isinf(r):
        return "inf"
    text = format(decimal_down(float(r)).normalize(), "f")
    return "0" if text in ("0", "-0") else text


def eqclass_name(partition: Any, label: int) -> str:
    """Name of ``label``'s equivalence class, or ``""`` without a partition.

    Examples
    --------
    >>> from hierclass import LabelPartition
    >>> p = LabelPartition({"pair": [0, 1], "single": [2]})
    >>> eqclass_name(p, 2), eqclass_name(None, 2)
    ('single', '')
    """
    if partition is None:
        return ""
    return str(partition.names[int(partition.class_of(int(label)))])


def certified_column(radius: float) -> str:
    """Name of the 0/1 column holding the decision at ``radius``.

    Examples
    --------
    >>> certified_column(0.25), certified_column(1.0)
    ('certified@0.25', 'certified@1')
    """
    return f"certified@{float(radius):g}"


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


def _label_cells(
    index: int, label: int, predict: int, radius: float, correct: bool, seconds: float, partition
) -> dict[str, Any]:
    """Cohen's six cells and the true label's class: the start of every row."""
    return {
        "idx": index,
        "label": label,
        "predict": predict,
        "radius": radius,
        "correct": int(correct),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
    }


def _route_cells(
    route: Sequence[int],
    true_route: tuple,
    route_ok: bool,
    level_radii: list,
    level_ok: list,
    nodes: list,
) -> dict[str, Any]:
    """The route, per-node and per-level cells of a hierarchy row (radii already as text)."""
    return {
        "route": ".".join(map(str, route)),
        "true_route": ".".join(map(str, true_route)),
        "route_correct": int(route_ok),
        "node_radii": ";".join(nodes),
        "level_radii": ";".join(level_radii),
        "level_correct": ";".join(map(str, level_ok)),
    }


def _detail(detail: dict[str, Any], level_labels: Any, num_labels: int | None) -> str:
    """The ``detail`` JSON of a hierarchy row, with the label counts when given."""
    if level_labels is not None:
        detail.update(level_labels=[int(v) for v in level_labels], num_labels=num_labels)
    return json.dumps(detail, separators=(",", ":"), default=float)


def _certified_cells(radii: Sequence[float], certified: Sequence[bool]) -> dict[str, int]:
    return {certified_column(r): int(bool(c)) for r, c in zip(radii, certified)}


def _certified_columns(radii: Sequence[float]) -> tuple[str, ...]:
    r = check_radii_to_certify(radii)
    names = tuple(certified_column(v) for v in r)
    if len(set(names)) != len(names):
        raise ValueError(f"radii {r.tolist()} are too close to name their columns apart")
    return names


# ---------------------------------------------------------------------------- fixed-n rows
def flat_row(res: Any, label: int, seconds: float, partition: Any = None) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.flat.result.SmoothResult`.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> s = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=0.5)
    >>> (res,) = s.certify_many([torch.tensor([3.0])], n0=10, n=100, alpha=0.01)
    >>> row = flat_row(res, label=0, seconds=0.25)
    >>> row["predict"], row["correct"], row["time"], row["counts"]
    (0, 1, 0.25, '100,0')
    """
    extra: dict[str, Any] = {}
    if res.subsets:
        extra["subsets"] = [list(s) for s in res.subsets]
        extra["subset_counts_select"] = np.asarray(res.subset_counts_select).tolist()
        extra["subset_counts"] = np.asarray(res.subset_counts).tolist()
    return flat_columns(
        res.index, label, res.certificate, res.counts_select, res.counts, seconds, partition, extra
    )


def flat_columns(
    index: int,
    label: int,
    cert: Any,
    counts_select: Any,
    counts: Any,
    seconds: float,
    partition: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A row of the flat columns: Cohen's six, the class, the bound, the votes and ``extra``.

    Shared by flat runs and by a hierarchy's flat baseline.

    Examples
    --------
    >>> from hierclass.smoothing.certificates.counts import certify_counts
    >>> sel, est = np.array([2, 8]), np.array([10, 90])
    >>> row = flat_columns(7, 1, certify_counts(sel, est, alpha=0.01, sigma=0.5), sel, est, 0.1)
    >>> row["idx"], row["predict"], row["correct"], row["counts_select"], row["extra"]
    (7, 1, 1, '2,8', '{}')
    """
    row = _label_cells(
        index, label, cert.label, cert.radius, cert.label == label, seconds, partition
    )
    row.update(
        p_lower=cert.p_lower,
        counts_select=format_counts(counts_select),
        counts=format_counts(counts),
        extra=json.dumps(extra, separators=(",", ":")) if extra else "{}",
    )
    return row


def flat_baseline_row(
    cert: HierarchyCertificate, label: int, seconds: float, partition: Any = None
) -> dict[str, Any]:
    """The flat-baseline row (flat columns) of a certificate computed with ``flat=``.

    Examples
    --------
    >>> from hierclass.smoothing.certificates.counts import certify_counts
    >>> c = HierarchyCertificate(0, 1, 0.3, (0,), [], 0.01)
    >>> c.flat_counts = (np.array([1, 9]), np.array([5, 95]))
    >>> c.flat = certify_counts(*c.flat_counts, alpha=0.01, sigma=0.5)
    >>> flat_baseline_row(c, 1, 0.0)["correct"]
    1
    """
    return flat_columns(cert.index, label, cert.flat, *cert.flat_counts, seconds, partition)


def _node_detail(node: NodeCertificate) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": node.kind, "choice": node.choice, "radius": node.radius}
    if node.certificate is not None:
        d["p_lower"] = node.certificate.p_lower
        d["counts_select"] = np.asarray(node.counts_select).tolist()
        d["counts"] = np.asarray(node.counts).tolist()
    return d


def hierarchy_row(
    cert: HierarchyCertificate,
    label: int,
    true_route: Any,
    seconds: float,
    partition: Any = None,
    level_labels: Any = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """The TSV row of one :class:`~hierclass.smoothing.certificates.path.HierarchyCertificate`.

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
    nodes = [f"{path_name(n.path)}={radius_down(n.radius)}" for n in cert.nodes]
    detail = {
        "alpha_node": cert.alpha_node,
        "num_smoothed": cert.num_smoothed,
        "nodes": {path_name(n.path): _node_detail(n) for n in cert.nodes},
        "levels": [{"name": lv.name, "radius": lv.radius} for lv in cert.levels],
    }
    row = _label_cells(
        cert.index, label, cert.label, cert.radius, cert.label == label and route_ok, seconds,
        partition,
    )  # fmt: skip
    row.update(_route_cells(cert.route, true_route, route_ok, level_radii, level_ok, nodes))
    row["detail"] = _detail(detail, level_labels, num_labels)
    return row


# ---------------------------------------------------------------------------- sequential rows
def sequential_columns(radii: Sequence[float]) -> tuple[str, ...]:
    """Columns of a sequential run at ``radii``.

    Examples
    --------
    >>> sequential_columns([0, 0.5])[6:]
    ('eqclass', 'p_lower', 'p_upper', 'n_samples', 'counts_select', 'counts', 'extra', \
'certified@0', 'certified@0.5')
    """
    base = ("eqclass", "p_lower", "p_upper", "n_samples", "counts_select", "counts", "extra")
    return COHEN_COLUMNS + base + _certified_columns(radii)


def hierarchy_radii_columns(radii: Sequence[float]) -> tuple[str, ...]:
    """Columns of a hierarchy's sequential run at ``radii``.

    Examples
    --------
    >>> hierarchy_radii_columns([0, 0.5])[-4:]
    ('n_samples', 'detail', 'certified@0', 'certified@0.5')
    """
    base = tuple(c for c in HIERARCHY_COLUMNS if c != "detail")
    return base + ("n_samples", "detail") + _certified_columns(radii)


def sequential_row(res: Any, label: int, seconds: float, partition: Any = None) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.sequential.sessions.RadiiResult`.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> s = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=0.5)
    >>> res = s.certify_radii(torch.tensor([1.0]), [0.0, 0.5], max_n=5000, index=0)
    >>> row = sequential_row(res, label=0, seconds=0.1)
    >>> row["correct"], row["certified@0.5"], row["n_samples"] == res.n_samples
    (1, 1, True)

    With label subsets, ``extra`` holds their results (``ABSTAIN`` is -1). Within {1, 2}
    label 2 wins wherever ``x_0 > 0``, so at ``x_0 = 1`` it is certified to radius 0.5:

    >>> s3 = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0], 0 * b[:, 0]], 1), 3, sigma=0.5)
    >>> res = s3.certify_radii(torch.tensor([1.0]), [0.0, 0.5], max_n=5000, index=0,
    ...                        subsets=[[1, 2]])
    >>> extra = json.loads(sequential_row(res, label=0, seconds=0.1)["extra"])
    >>> extra["subset_labels"], extra["subset_certified"]
    ([2], [[1, 1]])
    """
    row = _label_cells(res.index, label, res.label, res.radius, res.label == label, seconds,
                       partition)  # fmt: skip
    row.update(
        p_lower=res.p_lower,
        p_upper=upper_bound_field(res.p_upper),  # rounded up: never tighter than computed
        n_samples=res.n_samples,
        counts_select=format_counts(res.counts_select),
        counts=format_counts(res.counts),
        extra=json.dumps(_subset_extra(res), separators=(",", ":")),
    )
    row.update(_certified_cells(res.radii, res.certified))
    return row


def _subset_extra(res: Any) -> dict[str, Any]:
    """The label subsets' results of a sequential row (empty without subsets)."""
    if not res.subsets:
        return {}
    return {
        "subsets": [[int(v) for v in s] for s in res.subsets],
        "subset_labels": np.asarray(res.subset_labels).astype(int).tolist(),
        "subset_certified": np.asarray(res.subset_certified).astype(int).tolist(),
        "subset_p_lower": [float(v) for v in res.subset_p_lower],
    }


def _radii_node_detail(res: Any, j: int, path: tuple, kind: str, out: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind, "choice": out}
    if kind == "smoothed":
        bin_, counts_select, counts = res.node_counts[path]
        d.update(
            bin=int(bin_),
            counts_select=np.asarray(counts_select).tolist(),
            counts=np.asarray(counts).tolist(),
            certified=res.node_certified[j].astype(int).tolist(),
        )
    return d


def hierarchy_radii_row(
    res: Any,
    label: int,
    true_route: Any,
    seconds: float,
    partition: Any = None,
    level_labels: Any = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.hierarchy.sequential.PathRadiiResult`.

    ``level_labels`` and ``num_labels`` go into ``detail`` as in :func:`hierarchy_row`.

    ``node_radii`` and ``level_radii`` hold each node's and each level's largest certified
    radius among the radii asked for (``inf`` for a node that reads nothing perturbed), so
    the hierarchy metrics of ``hierclass analyze`` are exact at those radii.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.smoothing import HierarchicalSmooth
    >>> from hierclass.smoothing.hierarchy.sequential import certify_hierarchy_radii_many
    >>> two = lambda i: (lambda b: torch.stack([-b[:, i], b[:, i]], 1))
    >>> h = Hierarchy(Router(two(0), LabelPartition([[0, 1], [2, 3]])),
    ...               [Leaf(two(1), [0, 1]), Leaf(two(1), [2, 3])])
    >>> (res,) = certify_hierarchy_radii_many(HierarchicalSmooth(h, sigma=0.5),
    ...                                       [torch.tensor([2.0, 1.0])], [0.5, 1.5], indices=[0])
    >>> row = hierarchy_radii_row(res, label=3, true_route=(1,), seconds=0.0)
    >>> row["route"], row["level_radii"], row["radius"], row["correct"]  # class to 1.5
    ('1', '1.5', 0.5, 1)
    """
    true_route = tuple(int(v) for v in true_route)
    route_ok = tuple(res.route) == true_route
    level_radii, level_ok = [], []
    for d in range(len(true_route)):
        level_ok.append(int(tuple(res.route[: d + 1]) == true_route[: d + 1]))
        level_radii.append(radius_down(res.level_radius(d)))
    nodes = [
        f"{path_name(p)}={radius_down(res.node_radius(j))}"
        for j, (p, _kind, _out) in enumerate(res.nodes)
    ]
    detail = {
        "alpha_node": res.alpha_node,
        "num_smoothed": res.num_smoothed,
        "nodes": {
            path_name(p): _radii_node_detail(res, j, p, kind, out)
            for j, (p, kind, out) in enumerate(res.nodes)
        },
        "node_p_lower": list(res.node_p_lower),
    }
    row = _label_cells(
        res.index, label, res.label, res.radius, res.label == label and route_ok, seconds,
        partition,
    )  # fmt: skip
    row.update(_route_cells(res.route, true_route, route_ok, level_radii, level_ok, nodes))
    row["n_samples"] = res.n_samples
    row["detail"] = _detail(detail, level_labels, num_labels)
    row.update(_certified_cells(res.radii, res.certified))
    return row

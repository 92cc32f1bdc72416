"""Sequential certification of a data set at given radii, recorded as resumable TSV rows.

The rows follow :mod:`hierclass.smoothing.results` (Cohen's six columns first), so
:func:`~hierclass.smoothing.results.read_results`,
:func:`~hierclass.smoothing.analysis.certified_accuracy` and ``hierclass analyze`` read them
unchanged. ``radius`` is the largest certified radius *among the radii asked for* (a certified
radius, rounded down to the grid), so the certified accuracy at each of those radii is exact;
``p_lower``/``p_upper`` are the confidence-sequence bounds when sampling stopped, ``n_samples``
the estimation draws used and ``certified@<r>`` (0/1) the decision at each radius. With label
``subsets``, ``extra`` (JSON) holds each subset's label, decisions and lower bound.

Hierarchies (:func:`certify_hierarchy_radii_dataset`) write the columns of a fixed-``n``
hierarchy run (:data:`~hierclass.smoothing.hierarchy_results.HIERARCHY_COLUMNS`: route,
per-node and per-level radii, each the largest certified radius among the radii asked for),
``n_samples`` and one ``certified@<r>`` column per radius, so ``hierclass analyze`` prints
their hierarchy metrics too; the flat baseline, certified on the same draws, gets the flat
sequential columns.

Rows are written as inputs are decided (easy inputs overtake hard ones); the returned table,
and a run under :func:`~hierclass.smoothing.distributed.run_sharded`, are ordered like
``indices``. An input's decisions depend only on its index, so a resumed or sharded run
reproduces a one-process run (apart from the ``time`` column). ``time`` is the input's own
sampling time: its share of every batch its draws rode in (packed inputs are each charged
their own rows), never the batch-size probe.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from hierclass.smoothing.confidence_sequences import DEFAULT_LOOK_RATIO
from hierclass.smoothing.prepare import check_dataset_inputs
from hierclass.smoothing.results import (
    COHEN_COLUMNS,
    PathLike,
    ResultTable,
    format_counts,
    upper_bound_field,
)
from hierclass.smoothing.runner import (
    _drive,
    _is_sequence,
    _Output,
    _row_of,
    check_dataset,
    dataset_indices,
    eqclass_name,
    show_progress,
)
from hierclass.smoothing.sequential import RadiiResult, certify_radii_many, check_radii

__all__ = [
    "certified_column",
    "certify_hierarchy_radii_dataset",
    "certify_radii_dataset",
    "hierarchy_radii_columns",
    "hierarchy_radii_row",
    "sequential_columns",
    "sequential_row",
]


def certified_column(radius: float) -> str:
    """Name of the 0/1 column holding the decision at ``radius``.

    Examples
    --------
    >>> certified_column(0.25), certified_column(1.0)
    ('certified@0.25', 'certified@1')
    """
    return f"certified@{float(radius):g}"


def _certified_columns(radii: Sequence[float]) -> tuple[str, ...]:
    r = check_radii(radii)
    names = tuple(certified_column(v) for v in r)
    if len(set(names)) != len(names):
        raise ValueError(f"radii {r.tolist()} are too close to name their columns apart")
    return names


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
    from hierclass.smoothing.hierarchy_results import HIERARCHY_COLUMNS

    base = tuple(c for c in HIERARCHY_COLUMNS if c != "detail")
    return base + ("n_samples", "detail") + _certified_columns(radii)


def sequential_row(
    res: RadiiResult, label: int, seconds: float, partition: Any = None
) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.sequential.RadiiResult`.

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
    row = {
        "idx": res.index,
        "label": label,
        "predict": res.label,
        "radius": res.radius,
        "correct": int(res.label == label),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "p_lower": res.p_lower,
        "p_upper": upper_bound_field(res.p_upper),  # rounded up: never tighter than computed
        "n_samples": res.n_samples,
        "counts_select": format_counts(res.counts_select),
        "counts": format_counts(res.counts),
        "extra": json.dumps(_subset_extra(res), separators=(",", ":")),
    }
    for r, c in zip(res.radii, res.certified):
        row[certified_column(r)] = int(bool(c))
    return row


def _subset_extra(res: RadiiResult) -> dict[str, Any]:
    """The label subsets' results of a sequential row (empty without subsets)."""
    if not res.subsets:
        return {}
    return {
        "subsets": [[int(v) for v in s] for s in res.subsets],
        "subset_labels": np.asarray(res.subset_labels).astype(int).tolist(),
        "subset_certified": np.asarray(res.subset_certified).astype(int).tolist(),
        "subset_p_lower": [float(v) for v in res.subset_p_lower],
    }


def hierarchy_radii_row(
    res: Any,
    label: int,
    true_route: Any,
    seconds: float,
    partition: Any = None,
    level_labels: Any = None,
    num_labels: int | None = None,
) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.sequential_path.PathRadiiResult`.

    ``level_labels`` and ``num_labels`` go into ``detail`` as in
    :func:`~hierclass.smoothing.hierarchy_results.hierarchy_row`.

    ``node_radii`` and ``level_radii`` hold each node's and each level's largest certified
    radius among the radii asked for (``inf`` for a node that reads nothing perturbed), so
    the hierarchy metrics of ``hierclass analyze`` are exact at those radii.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.smoothing import HierarchicalSmooth
    >>> from hierclass.smoothing.sequential_path import certify_hierarchy_radii_many
    >>> two = lambda i: (lambda b: torch.stack([-b[:, i], b[:, i]], 1))
    >>> h = Hierarchy(Router(two(0), LabelPartition([[0, 1], [2, 3]])),
    ...               [Leaf(two(1), [0, 1]), Leaf(two(1), [2, 3])])
    >>> (res,) = certify_hierarchy_radii_many(HierarchicalSmooth(h, sigma=0.5),
    ...                                       [torch.tensor([2.0, 1.0])], [0.5, 1.5], indices=[0])
    >>> row = hierarchy_radii_row(res, label=3, true_route=(1,), seconds=0.0)
    >>> row["route"], row["level_radii"], row["radius"], row["correct"]  # class to 1.5
    ('1', '1.5', 0.5, 1)
    """
    from hierclass.smoothing.hierarchy_results import radius_down
    from hierclass.smoothing.path import path_name

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
            path_name(p): {
                "kind": kind,
                "choice": out,
                **(
                    {
                        "bin": int(res.node_counts[p][0]),
                        "counts_select": np.asarray(res.node_counts[p][1]).tolist(),
                        "counts": np.asarray(res.node_counts[p][2]).tolist(),
                        "certified": res.node_certified[j].astype(int).tolist(),
                    }
                    if kind == "smoothed"
                    else {}
                ),
            }
            for j, (p, kind, out) in enumerate(res.nodes)
        },
        "node_p_lower": list(res.node_p_lower),
    }
    if level_labels is not None:
        detail.update(level_labels=[int(v) for v in level_labels], num_labels=num_labels)
    row = {
        "idx": res.index,
        "label": label,
        "predict": res.label,
        "radius": res.radius,
        "correct": int(res.label == label and route_ok),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "route": ".".join(map(str, res.route)),
        "true_route": ".".join(map(str, true_route)),
        "route_correct": int(route_ok),
        "node_radii": ";".join(nodes),
        "level_radii": ";".join(level_radii),
        "level_correct": ";".join(map(str, level_ok)),
        "n_samples": res.n_samples,
        "detail": json.dumps(detail, separators=(",", ":"), default=float),
    }
    for r, c in zip(res.radii, res.certified):
        row[certified_column(r)] = int(bool(c))
    return row


def _ordered(table: ResultTable, order: Sequence[int]) -> ResultTable:
    pos = {int(i): k for k, i in enumerate(table["idx"])}
    perm = np.array([pos[int(i)] for i in order if int(i) in pos], dtype=np.int64)
    return ResultTable({k: v[perm] for k, v in table.columns.items()})


def _check_smoother(obj: Any, name: str, cls: type, how: str) -> None:
    """Refuse anything but the smoothed classifier a driver samples, saying how to build it."""
    if not isinstance(obj, cls):
        raise TypeError(
            f"{name} must be a {cls.__name__} (wrap the model: {how}), got {type(obj).__name__}"
        )


def certify_radii_dataset(
    smooth: Any,
    x: Any,
    y: Any,
    radii: Sequence[float],
    *,
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    indices: Sequence[int] | None = None,
    out: PathLike | None = None,
    resume: bool = True,
    partition: Any = None,
    verbose: bool | None = None,
    subsets: Sequence[Sequence[int]] | None = None,
    first: int = 128,
    ratio: float = DEFAULT_LOOK_RATIO,
) -> ResultTable:
    """Sequentially certify ``x[indices]`` at ``radii`` and record one row per input.

    Each row's certificates hold with probability ``>= 1 - alpha`` jointly over its radii and
    whenever its sampling stopped (see :mod:`hierclass.smoothing.sequential`).

    Parameters
    ----------
    smooth : Smooth
        The smoothed classifier.
    x : Tensor [N, ...] or dict of Tensors
        The data set, inside the classifier's input range (checked once, before sampling).
    y : Tensor [N]
        True labels.
    radii : sequence of float
        The radii of the certified-accuracy curve.
    n0
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.smooth.Smooth.certify_radii>`.
    max_n
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.smooth.Smooth.certify_radii>`.
    alpha
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.smooth.Smooth.certify_radii>`.
    batch_size
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.smooth.Smooth.certify_radii>`.
    indices : sequence of int, optional
        Positions to certify (default: all); a position is also the input's noise index.
    out : path, optional
        TSV file written row by row; resumable.
    resume : bool, default True
        Skip positions already in ``out``.
    partition : LabelPartition, optional
        Fills the ``eqclass`` column.
    verbose : bool, optional
        Progress bar (default: only on a terminal).
    subsets : sequence of label sequences, optional
        Also certify, from the same draws, the classifier restricted to each subset (see
        :func:`~hierclass.smoothing.sequential.certify_radii_many`); written to ``extra``.
    first
        The looks (see :func:`~hierclass.smoothing.confidence_sequences.geometric_looks`).
    ratio
        The looks (see :func:`~hierclass.smoothing.confidence_sequences.geometric_looks`).

    Returns
    -------
    ResultTable
        All rows (resumed ones included), ordered like ``indices``.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> from hierclass.smoothing.analysis import certified_accuracy
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)
    >>> x = torch.tensor([[1.0, 0.0], [0.2, 0.0], [-1.0, 0.0]])
    >>> t = certify_radii_dataset(Smooth(f, 2, sigma=0.5), x, torch.tensor([0, 0, 1]),
    ...                           [0.0, 0.5], max_n=10_000, batch_size=2048, verbose=False)
    >>> t["idx"].tolist(), certified_accuracy(t, [0.0, 0.5]).round(3).tolist()
    ([0, 1, 2], [1.0, 0.667])
    """
    from hierclass.smoothing.smooth import Smooth
    from hierclass.smoothing.subsets import check_subsets

    _check_smoother(smooth, "smooth", Smooth, "Smooth(model, num_classes, sigma)")
    columns = sequential_columns(radii)
    subs = None if subsets is None else check_subsets(subsets, smooth.num_classes)
    x, y, size = check_dataset(x, y, smooth.num_classes)
    if not _is_sequence(x):
        check_dataset_inputs(x, input_range=smooth.input_range)
    todo_all = dataset_indices(size, indices)
    bar_on = show_progress(verbose)  # checked before any output file is opened (or truncated)
    output = _Output(out, columns, resume, lambda r, lab, t: sequential_row(r, lab, t, partition))

    def run(todo: list[int]) -> Iterable[RadiiResult]:
        rows = (_row_of(x, i) for i in todo)
        kw = dict(indices=todo, first=first, ratio=ratio, subsets=subs)
        return (r for r, _ in certify_radii_many(smooth, rows, radii, n0, max_n, alpha,
                                                 batch_size, **kw))  # fmt: skip

    _drive([output], todo_all, run, y, bar_on, "certify_radii")
    return _ordered(output.table(), todo_all)


def certify_hierarchy_radii_dataset(
    hsmooth: Any,
    x: Any,
    y: Any,
    radii: Sequence[float],
    *,
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    indices: Sequence[int] | None = None,
    out: PathLike | None = None,
    flat_out: PathLike | None = None,
    resume: bool = True,
    verbose: bool | None = None,
    first: int = 128,
    ratio: float = DEFAULT_LOOK_RATIO,
) -> Any:
    """Sequentially certify a hierarchy on ``x[indices]`` at ``radii``, one row per input.

    The sequential twin of :func:`~hierclass.smoothing.hierarchical.certify_hierarchy`: each
    path's smoothed nodes run their confidence sequences at ``alpha / k`` (see
    :mod:`hierclass.smoothing.sequential_path`); the label's and every level's certificates
    hold together with probability ``>= 1 - alpha``, whenever sampling stopped. A
    ``HierarchicalSmooth`` built with ``flat=`` also certifies that flat model on the same
    draws (full ``alpha``), written to ``flat_out``.

    Parameters
    ----------
    hsmooth : HierarchicalSmooth
        The smoothed hierarchy (``method="renormalized"``).
    x : Tensor [N, ...] or dict of Tensors
        The data set, inside its range (checked once, before sampling).
    y : Tensor [N]
        True global labels.
    radii
        As in :func:`certify_radii_dataset`.
    n0
        As in :func:`certify_radii_dataset`.
    max_n
        As in :func:`certify_radii_dataset`.
    alpha
        As in :func:`certify_radii_dataset`.
    batch_size
        As in :func:`certify_radii_dataset`.
    first
        As in :func:`certify_radii_dataset`.
    ratio
        As in :func:`certify_radii_dataset`.
    indices : sequence of int, optional
        Positions to certify (default: all); also the noise indices.
    out : path, optional
        TSV files of the hierarchy's rows (:func:`hierarchy_radii_columns`) and of the flat
        baseline's (:func:`sequential_columns`); resumable: an input is done only when every
        requested file has its row.
    flat_out : path, optional
        TSV files of the hierarchy's rows (:func:`hierarchy_radii_columns`) and of the flat
        baseline's (:func:`sequential_columns`); resumable: an input is done only when every
        requested file has its row.
    resume : bool, default True
        Skip positions already done.
    verbose : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    HierarchyResults
        ``.hierarchy`` and ``.flat`` tables ordered like ``indices`` (resumed rows
        included), ``.certificates`` this run's
        :class:`~hierclass.smoothing.sequential_path.PathRadiiResult` s; ``.levels(radii)``
        the certified accuracy per level.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router
    >>> from hierclass.smoothing import HierarchicalSmooth
    >>> flat = lambda b: torch.stack([b[:, 0] + b[:, 1], b[:, 0] - b[:, 1],
    ...                               -b[:, 0] + b[:, 1], -b[:, 0] - b[:, 1]], 1)
    >>> h = Hierarchy(Router(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1),
    ...                      LabelPartition([[0, 1], [2, 3]])),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> hs = HierarchicalSmooth(h, sigma=0.25, flat=flat)
    >>> x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])
    >>> res = certify_hierarchy_radii_dataset(hs, x, torch.tensor([0, 1, 2]), [0.0, 0.25],
    ...                                       max_n=5000, batch_size=1024, verbose=False)
    >>> res.hierarchy["correct"].tolist(), res.flat["certified@0.25"].tolist()
    ([1, 1, 1], [1, 1, 1])
    """
    from hierclass.smoothing.hierarchical import HierarchicalSmooth
    from hierclass.smoothing.hierarchy_results import HierarchyResults, route_label_counts
    from hierclass.smoothing.sequential_path import certify_hierarchy_radii_many

    _check_smoother(hsmooth, "hsmooth", HierarchicalSmooth, "HierarchicalSmooth(tree, sigma)")
    hierarchy = hsmooth.hierarchy
    part = hierarchy.partition
    columns = hierarchy_radii_columns(radii)
    x, y, size = check_dataset(x, y, hierarchy.num_labels)
    if not _is_sequence(x):
        check_dataset_inputs(x, input_range=hsmooth.input_range)
    todo_all = dataset_indices(size, indices)
    bar_on = show_progress(verbose)  # checked before any output file is opened (or truncated)
    outputs = [
        _Output(
            out,
            columns,
            resume,
            lambda r, lab, t: hierarchy_radii_row(
                r, lab, hierarchy.path_of_label(lab), t, part,
                route_label_counts(hierarchy, r.route), hierarchy.num_labels,
            ),  # fmt: skip
        )
    ]
    if hsmooth.flat is not None:
        outputs.append(
            _Output(
                flat_out,
                sequential_columns(radii),
                resume,
                lambda r, lab, t: sequential_row(r.flat, lab, t, part),
            )
        )

    def run(todo: list[int]) -> Iterable[Any]:
        rows = (_row_of(x, i) for i in todo)
        kw = dict(indices=todo, first=first, ratio=ratio)
        return certify_hierarchy_radii_many(hsmooth, rows, radii, n0, max_n, alpha,
                                            batch_size, **kw)  # fmt: skip

    results = _drive(outputs, todo_all, run, y, bar_on, "certify_radii")
    flat = _ordered(outputs[1].table(), todo_all) if len(outputs) > 1 else None
    return HierarchyResults(_ordered(outputs[0].table(), todo_all), flat, results)

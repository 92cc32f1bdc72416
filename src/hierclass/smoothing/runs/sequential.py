"""Sequential certification of a data set at given radii, recorded as resumable TSV rows.

The rows follow :mod:`hierclass.smoothing.records.tsv` (Cohen's six columns first), so
:func:`~hierclass.smoothing.records.tsv.read_results`,
:func:`~hierclass.smoothing.analysis.tables.certified_accuracy` and ``hierclass analyze`` read them
unchanged. ``radius`` is the largest certified radius *among the radii asked for* (a certified
radius, rounded down to the grid), so the certified accuracy at each of those radii is exact;
``p_lower``/``p_upper`` are the confidence-sequence bounds when sampling stopped, ``n_samples``
the estimation draws used and ``certified@<r>`` (0/1) the decision at each radius. With label
``subsets``, ``extra`` (JSON) holds each subset's label, decisions and lower bound.

Hierarchies (:func:`certify_hierarchy_radii_dataset`) write the columns of a fixed-``n``
hierarchy run (:data:`~hierclass.smoothing.records.rows.HIERARCHY_COLUMNS`: route,
per-node and per-level radii, each the largest certified radius among the radii asked for),
``n_samples`` and one ``certified@<r>`` column per radius, so ``hierclass analyze`` prints
their hierarchy metrics too; the flat baseline, certified on the same draws, gets the flat
sequential columns.

Rows are written as inputs are decided (easy inputs overtake hard ones); the returned table,
and a run under :func:`~hierclass.smoothing.runs.distributed.run_sharded`, are ordered like
``indices``. An input's decisions depend only on its index, so a resumed or sharded run
reproduces a one-process run (apart from the ``time`` column). ``time`` is the input's own
sampling time: its share of every batch its draws rode in (packed inputs are each charged
their own rows), never the batch-size probe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hierclass.smoothing.analysis.hierarchy_results import HierarchyResults
from hierclass.smoothing.certificates.confidence_sequences import DEFAULT_LOOK_RATIO
from hierclass.smoothing.certificates.subsets import check_subsets
from hierclass.smoothing.flat.smooth import Smooth
from hierclass.smoothing.hierarchy.sequential import certify_hierarchy_radii_many
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.rows import (
    hierarchy_radii_columns,
    hierarchy_radii_row,
    sequential_columns,
    sequential_row,
)
from hierclass.smoothing.records.tsv import PathLike, ResultTable
from hierclass.smoothing.runs.loop import Output, check_smoother, hierarchy_outputs, run_dataset
from hierclass.smoothing.sequential.sessions import RadiiResult, certify_radii_many

__all__ = ["certify_hierarchy_radii_dataset", "certify_radii_dataset"]


def certify_radii_dataset(
    smooth: Smooth,
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
    whenever its sampling stopped (see :mod:`hierclass.smoothing.sequential.sessions`).

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
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.flat.smooth.Smooth.certify_radii>`.
    max_n
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.flat.smooth.Smooth.certify_radii>`.
    alpha
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.flat.smooth.Smooth.certify_radii>`.
    batch_size
        As in :meth:`Smooth.certify_radii <hierclass.smoothing.flat.smooth.Smooth.certify_radii>`.
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
        :func:`~hierclass.smoothing.sequential.sessions.certify_radii_many`); written to ``extra``.
    first
        The looks (see
        :func:`~hierclass.smoothing.certificates.confidence_sequences.geometric_looks`).
    ratio
        The looks (see
        :func:`~hierclass.smoothing.certificates.confidence_sequences.geometric_looks`).

    Returns
    -------
    ResultTable
        All rows (resumed ones included), ordered like ``indices``.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> from hierclass.smoothing.analysis.tables import certified_accuracy
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)
    >>> x = torch.tensor([[1.0, 0.0], [0.2, 0.0], [-1.0, 0.0]])
    >>> t = certify_radii_dataset(Smooth(f, 2, sigma=0.5), x, torch.tensor([0, 0, 1]),
    ...                           [0.0, 0.5], max_n=10_000, batch_size=2048, verbose=False)
    >>> t["idx"].tolist(), certified_accuracy(t, [0.0, 0.5]).round(3).tolist()
    ([0, 1, 2], [1.0, 0.667])
    """

    check_smoother(smooth, "smooth", (Smooth,), "Smooth(model, num_classes, sigma)")
    columns = sequential_columns(radii)
    subs = None if subsets is None else check_subsets(subsets, smooth.num_classes)
    output = Output(out, columns, lambda r, lab, t: sequential_row(r, lab, t, partition))

    def certify(inputs: Iterable[Any], ids: list[int]) -> Iterable[RadiiResult]:
        kw = dict(indices=ids, first=first, ratio=ratio, subsets=subs)
        return (r for r, _ in certify_radii_many(smooth, inputs, radii, n0, max_n, alpha,
                                                 batch_size, **kw))  # fmt: skip

    run = run_dataset(x, y, [output], certify, num_labels=smooth.num_classes,
                      input_range=smooth.input_range, indices=indices, resume=resume,
                      verbose=verbose, desc="certify_radii")  # fmt: skip
    return run.ordered().tables[0]


def certify_hierarchy_radii_dataset(
    hsmooth: HierarchicalSmooth,
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
) -> HierarchyResults:
    """Sequentially certify a hierarchy on ``x[indices]`` at ``radii``, one row per input.

    The sequential twin of :func:`~hierclass.smoothing.runs.fixed_n.certify_hierarchy`: each
    path's smoothed nodes run their confidence sequences at ``alpha / k`` (see
    :mod:`hierclass.smoothing.hierarchy.sequential`); the label's and every level's certificates
    hold together with probability ``>= 1 - alpha``, whenever sampling stopped. A
    ``HierarchicalSmooth`` built with ``flat=`` also certifies that flat model on the same
    draws (full ``alpha``), written to ``flat_out``.

    Parameters
    ----------
    hsmooth : HierarchicalSmooth
        The smoothed hierarchy (``leaf_certificate="renormalized"``).
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
        TSV file of the hierarchy's rows (:func:`hierarchy_radii_columns`); resumable: an
        input is done only when every requested file has its row.
    flat_out : path, optional
        TSV file of the flat baseline's rows (:func:`sequential_columns`); resumable.
    resume : bool, default True
        Skip positions already done.
    verbose : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    HierarchyResults
        ``.hierarchy`` and ``.flat`` tables ordered like ``indices`` (resumed rows
        included), ``.certificates`` this run's
        :class:`~hierclass.smoothing.hierarchy.sequential.PathRadiiResult` s; ``.levels(radii)``
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

    check_smoother(hsmooth, "hsmooth", (HierarchicalSmooth,), "HierarchicalSmooth(tree, sigma)")
    outputs = hierarchy_outputs(
        hsmooth, out, flat_out, columns=hierarchy_radii_columns(radii), row=hierarchy_radii_row,
        flat_columns=sequential_columns(radii), flat_row=_baseline_row,
    )  # fmt: skip

    def certify(inputs: Iterable[Any], ids: list[int]) -> Iterable[Any]:
        kw = dict(indices=ids, first=first, ratio=ratio)
        return certify_hierarchy_radii_many(hsmooth, inputs, radii, n0, max_n, alpha,
                                            batch_size, **kw)  # fmt: skip

    run = run_dataset(x, y, outputs, certify, num_labels=hsmooth.hierarchy.num_labels,
                      input_range=hsmooth.input_range, indices=indices, resume=resume,
                      verbose=verbose, desc="certify_radii")  # fmt: skip
    return run.ordered().hierarchy_results()


def _baseline_row(result: Any, label: int, seconds: float, partition: Any) -> dict[str, Any]:
    """The flat baseline's sequential row, from its share of a path's result."""
    return sequential_row(result.flat, label, seconds, partition)

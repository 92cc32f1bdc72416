"""Sequential certification of a data set at given radii, recorded as resumable TSV rows.

The rows follow :mod:`hierclass.smoothing.results` (Cohen's six columns first), so
:func:`~hierclass.smoothing.results.read_results`,
:func:`~hierclass.smoothing.analysis.certified_accuracy` and ``hierclass analyze`` read them
unchanged. ``radius`` is the largest certified radius *among the radii asked for* (a certified
radius, rounded down to the grid), so the certified accuracy at each of those radii is exact;
``p_lower``/``p_upper`` are the confidence-sequence bounds when sampling stopped, ``n_samples``
the estimation draws used and ``certified@<r>`` (0/1) the decision at each radius.

Rows are written as inputs are decided (easy inputs overtake hard ones); the returned table,
and a run under :func:`~hierclass.smoothing.distributed.run_sharded`, are ordered like
``indices``. An input's decisions depend only on its index, so a resumed or sharded run
reproduces a one-process run (apart from the ``time`` column).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from hierclass.smoothing.results import (
    COHEN_COLUMNS,
    PathLike,
    ResultTable,
    ResultWriter,
    format_counts,
    read_results,
)
from hierclass.smoothing.runner import (
    _row_of,
    check_dataset,
    dataset_indices,
    eqclass_name,
    show_progress,
)
from hierclass.smoothing.sequential import RadiiResult, certify_radii_many, check_radii

__all__ = ["certified_column", "certify_radii_dataset", "sequential_columns"]


def certified_column(radius: float) -> str:
    """Name of the 0/1 column holding the decision at ``radius``.

    Examples
    --------
    >>> certified_column(0.25), certified_column(1.0)
    ('certified@0.25', 'certified@1')
    """
    return f"certified@{float(radius):g}"


def sequential_columns(radii: Sequence[float]) -> tuple[str, ...]:
    """Columns of a sequential run at ``radii``.

    Examples
    --------
    >>> sequential_columns([0, 0.5])[6:]
    ('eqclass', 'p_lower', 'p_upper', 'n_samples', 'counts_select', 'counts', \
'certified@0', 'certified@0.5')
    """
    r = check_radii(radii)
    names = tuple(certified_column(v) for v in r)
    if len(set(names)) != len(names):
        raise ValueError(f"radii {r.tolist()} are too close to name their columns apart")
    base = ("eqclass", "p_lower", "p_upper", "n_samples", "counts_select", "counts")
    return COHEN_COLUMNS + base + names


def sequential_row(
    res: RadiiResult, label: int, seconds: float, partition: Any = None
) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.sequential.RadiiResult`."""
    row = {
        "idx": res.index,
        "label": label,
        "predict": res.label,
        "radius": res.radius,
        "correct": int(res.label == label),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "p_lower": res.p_lower,
        "p_upper": res.p_upper,
        "n_samples": res.n_samples,
        "counts_select": format_counts(res.counts_select),
        "counts": format_counts(res.counts),
    }
    for r, c in zip(res.radii, res.certified):
        row[certified_column(r)] = int(bool(c))
    return row


def _ordered(table: ResultTable, order: Sequence[int]) -> ResultTable:
    pos = {int(i): k for k, i in enumerate(table["idx"])}
    perm = np.array([pos[int(i)] for i in order if int(i) in pos], dtype=np.int64)
    return ResultTable({k: v[perm] for k, v in table.columns.items()})


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
    first: int = 128,
    ratio: float = 1.5,
) -> ResultTable:
    """Sequentially certify ``x[indices]`` at ``radii`` and record one row per input.

    Each row's certificates hold with probability ``>= 1 - alpha`` jointly over its radii and
    whenever its sampling stopped (see :mod:`hierclass.smoothing.sequential`).

    Parameters
    ----------
    smooth : Smooth
        The smoothed classifier.
    x : Tensor [N, ...] or dict of Tensors
        The data set.
    y : Tensor [N]
        True labels.
    radii : sequence of float
        The radii of the certified-accuracy curve.
    n0, max_n, alpha, batch_size
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
    first, ratio
        The look schedule (see
        :class:`~hierclass.smoothing.confidence_sequences.GeometricSchedule`).

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
    columns = sequential_columns(radii)
    x, y, size = check_dataset(x, y, smooth.num_classes)
    todo_all = dataset_indices(size, indices)
    writer = ResultWriter(out, columns, resume=resume) if out is not None else None
    rows: list[dict[str, Any]] = []
    try:
        todo = [i for i in todo_all if writer is None or i not in writer.done]
        bar = tqdm(total=len(todo), disable=not show_progress(verbose), desc="certify_radii")
        results = certify_radii_many(
            smooth,
            (_row_of(x, i) for i in todo),
            radii,
            n0,
            max_n,
            alpha,
            batch_size,
            indices=todo,
            first=first,
            ratio=ratio,
        )
        tick = time.perf_counter()
        for res, _ in results:
            now = time.perf_counter()
            row = sequential_row(res, int(y[res.index]), now - tick, partition)
            tick = now
            if writer is not None:
                writer.write(row)
            rows.append(row)
            bar.update(1)
        bar.close()
    finally:
        if writer is not None:
            writer.close()
    table = read_results(out) if out is not None else ResultTable.from_rows(rows, columns)
    return _ordered(table, todo_all)

"""Certify a data set with a :class:`Smooth`, writing resumable TSV records."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hierclass.smoothing.results import (
    FLAT_COLUMNS,
    PathLike,
    ResultTable,
    ResultWriter,
    format_counts,
    read_results,
)
from hierclass.smoothing.smooth import BatchSize, Smooth

__all__ = ["certify_dataset", "dataset_indices"]


def show_progress(verbose: bool | None) -> bool:
    """Progress bars: on when asked, else only on an interactive terminal."""
    if verbose is not None:
        return bool(verbose)
    return sys.stderr.isatty()


def check_dataset(x: Any, y: Any, num_labels: int) -> tuple[Any, torch.Tensor, int]:
    """Validate a data set ``(x [N, ...] or dict, y [N])`` for certification."""
    from hierclass.batch import batch_size

    n = batch_size(x)
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"y must be a vector of {n} labels, got shape {list(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer labels, got dtype {y.dtype}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_labels):
        bad = sorted({int(v) for v in y.tolist() if not 0 <= v < num_labels})[:10]
        raise ValueError(f"labels {bad} are outside the classifier's labels 0..{num_labels - 1}")
    return x, y.long(), n


def dataset_indices(
    n: int,
    indices: Sequence[int] | None = None,
    *,
    skip: int = 1,
    max_count: int | None = None,
) -> list[int]:
    """The data set positions to certify: ``indices`` or every ``skip``-th, at most ``max_count``.

    Examples
    --------
    >>> dataset_indices(10, skip=3), dataset_indices(10, max_count=2)
    ([0, 3, 6, 9], [0, 1])
    """
    if indices is None:
        if skip < 1:
            raise ValueError(f"skip must be >= 1, got {skip}")
        out = list(range(0, n, skip))
    else:
        out = [int(i) for i in indices]
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise ValueError(f"indices {bad[:10]} are outside the data set 0..{n - 1}")
        if len(set(out)) != len(out):
            raise ValueError("indices must not repeat")
    if max_count is not None:
        if max_count < 0:
            raise ValueError(f"max_count must be >= 0, got {max_count}")
        out = out[:max_count]
    return out


def _row_of(x: Any, i: int) -> Any:
    if isinstance(x, torch.Tensor):
        return x[i]
    return {k: v[i] for k, v in x.items()}


def certify_dataset(
    smooth: Smooth,
    x: Any,
    y: Any,
    *,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: BatchSize = 1000,
    indices: Sequence[int] | None = None,
    out: PathLike | None = None,
    resume: bool = True,
    partition: Any = None,
    subsets: Sequence[Sequence[int]] | None = None,
    verbose: bool | None = None,
) -> ResultTable:
    """Certify the inputs ``x[indices]`` and record one row each (Cohen's ``certify.py``).

    Parameters
    ----------
    smooth : Smooth
        The smoothed classifier.
    x : Tensor [N, ...] or dict of Tensors
        The data set, inputs in [0, 1].
    y : Tensor [N]
        True labels.
    n0, n, alpha, batch_size
        As in :meth:`Smooth.certify`; ``batch_size="auto"`` probes once.
    indices : sequence of int, optional
        Positions to certify (default: all). A position is also the sample's noise index,
        so any subset or shard of a data set reproduces the one-process result.
    out : path, optional
        TSV file written row by row (see :class:`~hierclass.smoothing.results.ResultWriter`).
    resume : bool, default True
        Skip positions already in ``out`` (a killed run continues where it stopped).
    partition : LabelPartition, optional
        Fills the ``eqclass`` column with each true label's equivalence class name.
    subsets : sequence of label sequences, optional
        Also store the restricted counts per subset (in the ``extra`` column, as JSON).
    verbose : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    ResultTable
        Every row of ``out`` (resumed rows included), or of this run when ``out`` is None.

    Examples
    --------
    >>> f = torch.nn.Linear(4, 3).eval()
    >>> s = Smooth(f, num_classes=3, sigma=0.25)
    >>> t = certify_dataset(s, torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]), n0=10, n=100,
    ...                     batch_size=256, verbose=False)
    >>> t["idx"].tolist(), t["radius"].shape
    ([0, 1, 2, 3, 4], (5,))
    """
    x, y, size = check_dataset(x, y, smooth.num_classes)
    todo = dataset_indices(size, indices)
    writer = ResultWriter(out, FLAT_COLUMNS, resume=resume) if out is not None else None
    rows: list[dict[str, Any]] = []
    try:
        if writer is not None:
            todo = [i for i in todo if i not in writer.done]
        bar = tqdm(total=len(todo), disable=not show_progress(verbose), desc="certify")
        results = smooth.certify_many(
            (_row_of(x, i) for i in todo),
            n0,
            n,
            alpha,
            batch_size,
            indices=todo,
            subsets=subsets,
            methods=("cohen",),
        )
        tick = time.perf_counter()
        for res in results:
            now = time.perf_counter()
            label = int(y[res.index])
            row = flat_row(res, label, now - tick, partition)
            tick = now
            if writer is not None:
                writer.write(row)
            rows.append(row)
            bar.update(1)
        bar.close()
    finally:
        if writer is not None:
            writer.close()
    if out is not None:
        return read_results(out)
    return ResultTable.from_rows(rows, FLAT_COLUMNS)


def eqclass_name(partition: Any, label: int) -> str:
    """Name of ``label``'s equivalence class, or ``""`` without a partition."""
    if partition is None:
        return ""
    return str(partition.names[int(partition.class_of(int(label)))])


def flat_row(res: Any, label: int, seconds: float, partition: Any = None) -> dict[str, Any]:
    """The TSV row of a :class:`~hierclass.smoothing.smooth.SmoothResult`."""
    cert = res.certificate
    extra: dict[str, Any] = {}
    if res.subsets:
        extra["subsets"] = [list(s) for s in res.subsets]
        extra["subset_counts_select"] = np.asarray(res.subset_counts_select).tolist()
        extra["subset_counts"] = np.asarray(res.subset_counts).tolist()
    return {
        "idx": res.index,
        "label": label,
        "predict": cert.label,
        "radius": cert.radius,
        "correct": int(cert.label == label),
        "time": round(seconds, 4),
        "eqclass": eqclass_name(partition, label),
        "p_lower": cert.p_lower,
        "counts_select": format_counts(res.counts_select),
        "counts": format_counts(res.counts),
        "extra": json.dumps(extra, separators=(",", ":")) if extra else "{}",
    }

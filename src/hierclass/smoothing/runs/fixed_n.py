"""The one data-set driver: certify a data set (flat or hierarchy), writing resumable TSVs.

:func:`certify_dataset` drives a :class:`~hierclass.Smooth` or a
:class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`; :func:`certify_hierarchy` builds
the latter from a hierarchy and its options and runs it. Each row's ``time`` is the input's own
sampling time (its share of the batches its draws rode in, never the batch-size probe).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hierclass._utils.progress import show_progress  # the one progress-bar policy
from hierclass.batch import batch_size as inputs_in  # `batch_size` is a parameter here
from hierclass.inputs import InputRange
from hierclass.smoothing.analysis.hierarchy_results import HierarchyResults
from hierclass.smoothing.engine.prepare import BatchSize, check_dataset_inputs
from hierclass.smoothing.flat.smooth import Smooth
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.rows import (
    HIERARCHY_COLUMNS,
    flat_baseline_row,
    flat_row,
    hierarchy_row,
    route_label_counts,
)
from hierclass.smoothing.records.tsv import (
    FLAT_COLUMNS,
    PathLike,
    ResultTable,
    ResultWriter,
    format_counts,
    read_results,
)

__all__ = ["certify_dataset", "certify_hierarchy", "dataset_indices"]


def _is_sequence(x: Any) -> bool:
    """Inputs read one at a time (``len`` and ``x[i]``, e.g. ``hierclass.data.LazyInputs``)."""
    return not isinstance(x, (torch.Tensor, Mapping)) and hasattr(x, "__getitem__")


def check_dataset(x: Any, y: Any, num_labels: int) -> tuple[Any, torch.Tensor, int]:
    """Validate a data set ``(x [N, ...], dict of them, or a sequence of N inputs; y [N])``.

    A sequence (such as :class:`hierclass.data.LazyInputs`) is not read here: each input is
    read, and checked, when it is certified.
    """
    n = len(x) if _is_sequence(x) else inputs_in(x)
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
    if isinstance(x, Mapping):
        return {k: v[i] for k, v in x.items()}
    return x[i]


class _Output:
    """One TSV output of a run: its writer (or in-memory rows) and how to make its rows."""

    def __init__(self, path: PathLike | None, columns: Sequence[str], resume: bool, make_row):
        self.path = path
        self.columns = tuple(columns)
        self.writer = ResultWriter(path, columns, resume=resume) if path is not None else None
        self.make_row = make_row
        self.rows: list[dict[str, Any]] = []

    @property
    def done(self) -> set[int]:
        return set() if self.writer is None else self.writer.done

    def add(self, result: Any, label: int, seconds: float) -> None:
        row = self.make_row(result, label, seconds)
        if self.writer is not None and row["idx"] not in self.writer.done:
            self.writer.write(row)
        self.rows.append(row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def table(self) -> ResultTable:
        if self.path is not None:
            return read_results(self.path)
        return ResultTable.from_rows(self.rows, self.columns)


def certify_dataset(
    smooth: Any,
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
    flat_out: PathLike | None = None,
    verbose: bool | None = None,
) -> Any:
    """Certify the inputs ``x[indices]`` and record one row each (Cohen's ``certify.py``).

    The one resumable data-set driver, for a flat :class:`~hierclass.Smooth` and for a
    :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth` alike.

    Parameters
    ----------
    smooth : Smooth or HierarchicalSmooth
        The smoothed classifier (flat) or hierarchy.
    x : Tensor [N, ...] or dict of Tensors
        The data set, inside the classifier's input range (image-shaped: [0, 1]); checked
        once, before any sampling.
    y : Tensor [N]
        True labels.
    n0
        As in :meth:`Smooth.certify`; ``batch_size="auto"`` probes once.
    n
        As in :meth:`Smooth.certify`; ``batch_size="auto"`` probes once.
    alpha
        As in :meth:`Smooth.certify`; ``batch_size="auto"`` probes once.
    batch_size
        As in :meth:`Smooth.certify`; ``batch_size="auto"`` probes once.
    indices : sequence of int, optional
        Positions to certify (default: all). A position is also the sample's noise index,
        so any subset or shard of a data set reproduces the one-process result.
    out : path, optional
        TSV file written row by row (see :class:`~hierclass.smoothing.records.tsv.ResultWriter`).
    resume : bool, default True
        Skip positions already done (a killed run continues where it stopped). With several
        outputs (a hierarchy and its flat baseline) a position is done only when every
        output has its row; a missing row is redone and written where it is missing.
    partition : LabelPartition, optional
        Fills the ``eqclass`` column (flat runs; a hierarchy uses its own partition).
    subsets : sequence of label sequences, optional
        Flat runs: also store the restricted counts per subset (``extra`` column, JSON).
    flat_out : path, optional
        Hierarchy runs with a flat baseline: TSV file of the baseline's rows.
    verbose : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    ResultTable or HierarchyResults
        Every row of ``out`` (resumed rows included), or of this run when ``out`` is None;
        for a hierarchy, a :class:`~hierclass.smoothing.analysis.hierarchy_results.HierarchyResults`.

    Examples
    --------
    >>> from hierclass import Smooth
    >>> f = torch.nn.Linear(4, 3).eval()
    >>> s = Smooth(f, num_classes=3, sigma=0.25)
    >>> t = certify_dataset(s, torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]), n0=10, n=100,
    ...                     batch_size=256, verbose=False)
    >>> t["idx"].tolist(), t["radius"].shape
    ([0, 1, 2, 3, 4], (5,))
    """
    if not isinstance(smooth, Smooth | HierarchicalSmooth):
        raise TypeError(
            "smooth must be a Smooth or a HierarchicalSmooth (wrap the model: Smooth(model, "
            f"num_classes, sigma), or a tree: HierarchicalSmooth(tree, sigma)), got "
            f"{type(smooth).__name__}"
        )
    hierarchy = getattr(smooth, "hierarchy", None)
    num_labels = smooth.num_classes if hierarchy is None else hierarchy.num_labels
    x, y, size = check_dataset(x, y, num_labels)
    if not _is_sequence(x):
        check_dataset_inputs(x, input_range=smooth.input_range)
    todo = dataset_indices(size, indices)
    bar_on = show_progress(verbose)  # checked before any output file is opened (or truncated)
    outputs: list[_Output] = []
    try:
        if hierarchy is None:
            outputs.append(
                _Output(out, FLAT_COLUMNS, resume, lambda r, lab, t: flat_row(r, lab, t, partition))
            )
            certify_many = lambda rows, ids: smooth.certify_many(  # noqa: E731
                rows, n0, n, alpha, batch_size, indices=ids, subsets=subsets, bounds=("cohen",)
            )
        else:
            part = hierarchy.partition
            outputs.append(
                _Output(
                    out,
                    HIERARCHY_COLUMNS,
                    resume,
                    lambda c, lab, t: hierarchy_row(
                        c, lab, hierarchy.path_of_label(lab), t, part,
                        route_label_counts(hierarchy, c.route), hierarchy.num_labels,
                    ),  # fmt: skip
                )
            )
            if smooth.flat is not None:
                outputs.append(
                    _Output(
                        flat_out,
                        FLAT_COLUMNS,
                        resume,
                        lambda c, lab, t: flat_baseline_row(c, lab, t, part),
                    )
                )
            certify_many = lambda rows, ids: smooth.certify_many(  # noqa: E731
                rows, n0, n, alpha, batch_size, indices=ids
            )
        # an input's time is its own sampling (res.seconds): its share of every batch its
        # draws rode in, never the batch-size probe nor the inputs packed beside it
        run = lambda ids: certify_many((_row_of(x, i) for i in ids), ids)  # noqa: E731
        results = _drive(outputs, todo, run, y, bar_on, "certify")
    finally:
        for o in outputs:  # also when opening a later output failed
            o.close()
    if hierarchy is None:
        return outputs[0].table()
    flat_table = outputs[1].table() if len(outputs) > 1 else None
    return HierarchyResults(outputs[0].table(), flat_table, results)


def _drive(
    outputs: list[_Output], todo_all: list[int], run, y: Any, bar_on: bool, desc: str
) -> list:
    """The loop of every data-set driver (fixed-n and sequential): resume, certify, write rows.

    ``run(todo)`` yields results with ``.index`` and ``.seconds``; each output's ``add``
    writes the row it is missing. An index is done only when every written output has its
    row; the first output (the main one) is written last, so a kill between two writes
    leaves it missing and a resumed run redoes the input.
    """
    try:
        written = [o for o in outputs if o.writer is not None]
        todo = list(todo_all)
        if written:
            done = set.intersection(*(o.done for o in written))
            todo = [i for i in todo if i not in done]
        bar = tqdm(total=len(todo), disable=not bar_on, desc=desc)
        results = []
        for res in run(todo):
            label = int(y[res.index])
            for o in reversed(outputs):
                o.add(res, label, res.seconds)
            results.append(res)
            bar.update(1)
        bar.close()
    finally:
        for o in outputs:
            o.close()
    return results


def certify_hierarchy(
    hierarchy: Any,
    x: Any,
    y: Any,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: BatchSize = 1000,
    seed: int = 0,
    perturbed_keys: Sequence[str] | None = None,
    flat: Any = None,
    flat_input_key: str | None = None,
    leaf_certificate: str = "renormalized",
    device: str | torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool | None = None,
    input_range: InputRange = None,
    indices: Sequence[int] | None = None,
    out: PathLike | None = None,
    flat_out: PathLike | None = None,
    resume: bool = True,
    verbose: bool | None = None,
) -> HierarchyResults:
    """Certify a hierarchy on a data set, optionally against a flat baseline on the same draws.

    A thin wrapper: builds :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth` with
    every option and runs the one data-set driver, :func:`certify_dataset`.

    Parameters
    ----------
    hierarchy : Hierarchy
        The tree to certify (models in ``eval`` mode).
    x : Tensor [N, ...] or dict of Tensors
        Inputs, inside their range (image-shaped: [0, 1]).
    y : Tensor [N]
        True global labels.
    sigma
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    n0
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    n
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    alpha
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    batch_size
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    seed
        As in :class:`~hierclass.Smooth`; ``alpha`` is split across each path's smoothed
        nodes. The flat baseline is certified at the full ``alpha``.
    perturbed_keys
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    flat
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    flat_input_key
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    leaf_certificate
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    device
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    amp_dtype
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    channels_last
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    input_range
        As in :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.
    indices : sequence of int, optional
        Positions of ``x`` to certify (default all); also the noise indices.
    out : path, optional
        TSV files for the hierarchy and flat rows (resumable; an input counts as done only
        when every requested file has its row).
    flat_out : path, optional
        TSV files for the hierarchy and flat rows (resumable; an input counts as done only
        when every requested file has its row).
    resume : bool
        Skip positions already done.
    verbose : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    HierarchyResults
        ``.hierarchy`` and ``.flat`` tables; ``.table()`` the per-class comparison,
        ``.levels()`` the certified accuracy per level.

    Examples
    --------
    >>> from torch import nn
    >>> from hierclass import LabelPartition, Router, RenormalizedLeaf, Hierarchy
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> flat = nn.Linear(4, 4).eval()
    >>> h = Hierarchy(Router(nn.Linear(4, 2).eval(), p),
    ...               [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])
    >>> res = certify_hierarchy(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 3, 0, 2]),
    ...                         sigma=0.25, n0=20, n=200, alpha=0.01, batch_size=256, flat=flat,
    ...                         verbose=False)
    >>> len(res.hierarchy), len(res.flat)
    (6, 6)
    >>> print(res.table().splitlines()[0])  # doctest: +ELLIPSIS
    | class | n | baseline CR | hierarchy CR | baseline CA | hierarchy CA |
    """

    hs = HierarchicalSmooth(
        hierarchy,
        sigma,
        seed=seed,
        perturbed_keys=perturbed_keys,
        leaf_certificate=leaf_certificate,
        flat=flat,
        flat_input_key=flat_input_key,
        device=device,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        input_range=input_range,
    )
    return certify_dataset(
        hs,
        x,
        y,
        n0=n0,
        n=n,
        alpha=alpha,
        batch_size=batch_size,
        indices=indices,
        out=out,
        flat_out=flat_out,
        resume=resume,
        verbose=verbose,
    )

"""Certify a data set with a fixed number of draws (flat or hierarchy), writing resumable TSVs.

:func:`certify_dataset` drives a :class:`~hierclass.Smooth` or a
:class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`; :func:`certify_hierarchy`
builds the latter from a hierarchy and its options and runs it. The checks, the outputs and the
loop are :mod:`~hierclass.smoothing.runs.loop`'s. Each row's ``time`` is the input's own
sampling time (its share of the batches its draws rode in, never the batch-size probe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from hierclass.inputs import InputRange
from hierclass.smoothing.analysis.hierarchy_results import HierarchyResults
from hierclass.smoothing.engine.prepare import BatchSize
from hierclass.smoothing.flat.smooth import Smooth
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.rows import (
    HIERARCHY_COLUMNS,
    flat_baseline_row,
    flat_row,
    hierarchy_row,
)
from hierclass.smoothing.records.tsv import FLAT_COLUMNS, PathLike, ResultTable
from hierclass.smoothing.runs.loop import (
    DatasetRun,
    Output,
    check_smoother,
    hierarchy_outputs,
    run_dataset,
)

__all__ = ["certify_dataset", "certify_hierarchy"]

#: How to build what :func:`certify_dataset` samples, in its ``TypeError``.
_BUILD = "Smooth(model, num_classes, sigma), or a tree: HierarchicalSmooth(tree, sigma)"


def certify_dataset(
    smooth: Smooth | HierarchicalSmooth,
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
) -> ResultTable | HierarchyResults:
    """Certify the inputs ``x[indices]`` and record one row each (Cohen's ``certify.py``).

    The resumable fixed-``n`` driver, for a flat :class:`~hierclass.Smooth` and for a
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
        for a hierarchy, a
        :class:`~hierclass.smoothing.analysis.hierarchy_results.HierarchyResults`.

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
    check_smoother(smooth, "smooth", (Smooth, HierarchicalSmooth), _BUILD)
    run = partial(run_dataset, x, y, input_range=smooth.input_range, indices=indices,
                  resume=resume, verbose=verbose, desc="certify")  # fmt: skip
    draws = (n0, n, alpha, batch_size)
    if isinstance(smooth, HierarchicalSmooth):
        return _certify_tree(smooth, draws, out, flat_out, run).hierarchy_results()
    return _certify_flat(smooth, draws, out, partition, subsets, run).tables[0]


#: ``run(outputs, certify, num_labels=...)``: :func:`run_dataset` over one call's data set.
_Run = Callable[..., DatasetRun]


def _certify_flat(
    smooth: Smooth, draws: tuple, out: PathLike | None, partition: Any, subsets: Any, run: _Run
) -> DatasetRun:
    """A flat run: Cohen's rows (``extra``: each label subset's counts) in ``out``."""
    output = Output(out, FLAT_COLUMNS, lambda r, lab, t: flat_row(r, lab, t, partition))

    def certify(inputs: Any, ids: list[int]) -> Any:
        return smooth.certify_many(inputs, *draws, indices=ids, subsets=subsets, bounds=("cohen",))

    return run([output], certify, num_labels=smooth.num_classes)


def _certify_tree(
    hsmooth: HierarchicalSmooth, draws: tuple, out: PathLike | None, flat_out: Any, run: _Run
) -> DatasetRun:
    """A hierarchy run: its rows in ``out``, its flat baseline's (if any) in ``flat_out``."""
    outputs = hierarchy_outputs(
        hsmooth, out, flat_out, columns=HIERARCHY_COLUMNS, row=hierarchy_row,
        flat_columns=FLAT_COLUMNS, flat_row=flat_baseline_row,
    )  # fmt: skip

    def certify(inputs: Any, ids: list[int]) -> Any:
        return hsmooth.certify_many(inputs, *draws, indices=ids)

    return run(outputs, certify, num_labels=hsmooth.hierarchy.num_labels)


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

    A thin wrapper: builds :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`
    with every option and runs :func:`certify_dataset`.

    Parameters
    ----------
    hierarchy : Hierarchy
        The tree to certify (models in ``eval`` mode).
    x : Tensor [N, ...] or dict of Tensors
        Inputs, inside their range (image-shaped: [0, 1]).
    y : Tensor [N]
        True global labels.
    sigma
        As in :class:`~hierclass.Smooth`.
    n0
        As in :class:`~hierclass.Smooth`, for each smoothed node.
    n
        As in :class:`~hierclass.Smooth`, for each smoothed node.
    alpha
        Split across each path's smoothed nodes; the flat baseline is certified at the
        full ``alpha``.
    batch_size
        As in :class:`~hierclass.Smooth`.
    seed
        As in :class:`~hierclass.Smooth`.
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
        TSV file of the hierarchy's rows (resumable, as in :func:`certify_dataset`).
    flat_out : path, optional
        TSV file of the flat baseline's rows (resumable, as in :func:`certify_dataset`).
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
        hierarchy, sigma, seed=seed, perturbed_keys=perturbed_keys,
        leaf_certificate=leaf_certificate, flat=flat, flat_input_key=flat_input_key,
        device=device, amp_dtype=amp_dtype, channels_last=channels_last, input_range=input_range,
    )  # fmt: skip
    return certify_dataset(
        hs, x, y, n0=n0, n=n, alpha=alpha, batch_size=batch_size, indices=indices, out=out,
        flat_out=flat_out, resume=resume, verbose=verbose,
    )  # fmt: skip

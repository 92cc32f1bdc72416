"""One input's flat certificate and label-subset certificates, from its votes.

:func:`smooth_result` is the pure step after sampling in :meth:`hierclass.Smooth.certify_many`:
Cohen's certificate from the selection and estimation counts, and, for each label subset, the
base-renormalised (``"cohen"``) and restricted-margin (``"margin"``) certificates (see
:mod:`hierclass.smoothing.certificates.counts` for why each is sound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierclass.smoothing.certificates.counts import Certificate, certify_counts_checked

__all__ = ["SmoothResult", "smooth_result"]


@dataclass
class SmoothResult:
    """Everything one certification of one input produced.

    Attributes
    ----------
    index : int
        The input's noise index (its position in the data set).
    certificate : Certificate
        The flat certificate (Cohen's ``certify``).
    counts_select : ndarray of int, shape [num_classes]
        Flat votes on the ``n0`` selection and ``n`` estimation draws.
    counts : ndarray of int, shape [num_classes]
        Flat votes on the ``n0`` selection and ``n`` estimation draws.
    subsets : tuple of tuple of int
        The label subsets recorded alongside.
    subset_counts_select : ndarray of int, shape [num_subsets, num_classes]
        Votes of the base classifier restricted to each subset (``argmax_{c in L}``).
    subset_counts : ndarray of int, shape [num_subsets, num_classes]
        Votes of the base classifier restricted to each subset (``argmax_{c in L}``).
    subset_certificates : dict
        ``(bound, subset) -> Certificate`` for the requested bounds (``"cohen"``,
        ``"margin"``).
    seconds : float
        Wall time spent sampling this input (its share of the batches its draws rode in).

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> s = Smooth(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), 2, sigma=0.5)
    >>> r = s.certify_detailed(torch.tensor([1.0, 0.0]), n0=50, n=500, alpha=0.001,
    ...                        batch_size=256)
    >>> int(r.counts_select.sum()), int(r.counts.sum())
    (50, 500)
    >>> r.label, r.radius == r.certificate.radius > 0
    (0, True)
    """

    index: int
    certificate: Certificate
    counts_select: np.ndarray
    counts: np.ndarray
    subsets: tuple[tuple[int, ...], ...] = ()
    subset_counts_select: np.ndarray | None = None
    subset_counts: np.ndarray | None = None
    subset_certificates: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def label(self) -> int:
        """The flat prediction (``Smooth.ABSTAIN`` when abstaining)."""
        return self.certificate.label

    @property
    def radius(self) -> float:
        """The flat certified radius."""
        return self.certificate.radius


def smooth_result(
    task: Any,
    alpha: float,
    sigma: float,
    subsets: tuple[tuple[int, ...], ...] = (),
    head: Any = None,
    bounds: Sequence[str] = ("cohen", "margin"),
) -> SmoothResult:
    """The :class:`SmoothResult` of a sampled task (``task.counts``: selection, estimation).

    ``head`` (a :class:`~hierclass.smoothing.certificates.subsets.SubsetHead`) decodes the
    restricted votes when ``subsets`` are given. ``alpha``, ``sigma``, ``subsets`` and
    ``bounds`` are the caller's, validated once per run (``Smooth.certify_many``), not per
    input.

    Examples
    --------
    >>> from hierclass.smoothing.engine.sampling import Task
    >>> t = Task(None, 3, [], counts=[[np.array([2, 98])], [np.array([10, 990])]])
    >>> r = smooth_result(t, alpha=0.001, sigma=0.5)
    >>> r.index, r.label, r.radius > 0
    (3, 1, True)
    """
    sel, est = task.counts
    cert = certify_counts_checked(sel[0], est[0], alpha, sigma, None, "cohen")
    res = SmoothResult(task.index, cert, sel[0], est[0], seconds=task.seconds)
    if subsets:
        s_sel = head.decode(sel[1])
        s_est = head.decode(est[1])
        res.subsets = subsets
        res.subset_counts_select, res.subset_counts = s_sel, s_est
        for j, L in enumerate(subsets):
            if "cohen" in bounds:
                res.subset_certificates[("cohen", L)] = certify_counts_checked(
                    s_sel[j], s_est[j], alpha, sigma, L, "cohen"
                )
            if "margin" in bounds:
                res.subset_certificates[("margin", L)] = certify_counts_checked(
                    sel[0], est[0], alpha, sigma, L, "margin"
                )
    return res

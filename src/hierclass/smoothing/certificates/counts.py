"""Certificates computed from count vectors: Cohen's bound and the restricted margin bound.

Both functions are pure: they take the counts a sampling run stored and return a
:class:`Certificate`, so any certificate can be recomputed offline without resampling.

Why each is sound
-----------------
*Cohen (base renormalisation).* ``counts`` are the votes of one deterministic base classifier
``f`` on Gaussian noise. For a label subset ``L``, ``f_L(x) = argmax_{c in L} logits_c(x)`` is
again a deterministic base classifier (the flat softmax renormalised over ``L`` has the same
argmax), so its smoothed version obeys Cohen's Theorem 1: with ``pA_lower`` a ``1 - alpha``
lower bound on ``P(f_L(x + eps) = c_A)``, the smoothed ``f_L`` is constant within
``sigma * Phi^-1(pA_lower)``. The selection ``c_A`` comes from *separate* samples (``n0``).

*Restricted margin.* For the flat base classifier ``f`` with ``p_c = P(f(x + eps) = c)``, the
restricted smoothed classifier ``g_L(x) = argmax_{c in L} p_c(x)`` is constant within
``sigma / 2 * (Phi^-1(pA_lower) - Phi^-1(pB_upper))`` whenever ``pA_lower <= p_A`` and
``pB_upper >= p_c`` for every other ``c in L`` (Theorem 1 of Cohen et al., applied label by
label; it is the paper's ``H_{c,alpha}(x, L)`` argument, §IV-B). Those ``|L|`` bounds must hold
together, so each is taken at level ``alpha / |L|`` (union bound). ``pB_upper`` is also capped
by ``1 - pA_lower``, which holds on the same event. Labels outside ``L`` are ignored, so the
radius never shrinks when ``L`` shrinks.

What is *not* a certificate: dividing the estimated probabilities by their sum over ``L`` and
plugging the ratios into a radius formula. The ratio of two estimates has no Clopper-Pearson
guarantee and can overstate the radius; nothing here computes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierclass.smoothing.certificates.bounds import (  # the kernels: arguments checked here
    _cohen,
    _cp_lower,
    _cp_upper,
    _margin,
    check_alpha,
    check_sigma,
)

__all__ = [
    "ABSTAIN",
    "BOUNDS",
    "Certificate",
    "check_bound",
    "certify_counts",
    "certify_counts_checked",
]

#: The label a smoothed classifier returns when it abstains (as ``Smooth.ABSTAIN``).
ABSTAIN = -1
#: The bounds a certificate is computed with: ``"cohen"`` (Cohen's one-sided bound on the
#: selected label of the base classifier restricted to ``L``, i.e. base renormalisation) and
#: ``"margin"`` (the restricted margin on the flat counts).
BOUNDS = ("cohen", "margin")


@dataclass(frozen=True)
class Certificate:
    """A certified prediction of a smoothed classifier at one input.

    Attributes
    ----------
    label : int
        Predicted (global) label, or ``ABSTAIN`` (-1).
    radius : float
        Certified L2 radius (0 when abstaining, ``inf`` for a constant classifier).
    p_lower : float
        Lower confidence bound on the top label's probability (nan if not estimated).
    p_upper : float
        Upper bound used for the runner-up (``"margin"``; nan for ``"cohen"``).
    bound : str
        The bound it was computed with, ``"cohen"`` or ``"margin"``.
    labels : tuple of int or None
        The label subset certified within (None: all labels).
    alpha : float
        Failure probability and noise level the certificate is valid for.
    sigma : float
        Failure probability and noise level the certificate is valid for.

    Examples
    --------
    Certificates come from :func:`certify_counts` (or from ``Smooth.certify_detailed``):

    >>> c = certify_counts([0, 99, 1], [5, 990, 5], alpha=0.001, sigma=0.25)
    >>> c.label, c.abstained, c.radius > 0, c.bound
    (1, False, True, 'cohen')
    >>> tie = certify_counts([50, 50, 0], [500, 500, 0], alpha=0.001, sigma=0.25)
    >>> tie.label == ABSTAIN, tie.abstained, tie.radius
    (True, True, 0.0)
    """

    label: int
    radius: float
    p_lower: float
    p_upper: float
    bound: str
    labels: tuple[int, ...] | None
    alpha: float
    sigma: float
    counts_select: np.ndarray = field(repr=False, compare=False, default=None)
    counts: np.ndarray = field(repr=False, compare=False, default=None)

    @property
    def abstained(self) -> bool:
        """True when the smoothed classifier abstains."""
        return self.label == ABSTAIN


def _restrict(labels: Sequence[int] | None, num: int) -> np.ndarray:
    if labels is None:
        return np.arange(num)
    lab = np.asarray(list(labels), dtype=np.int64)
    if lab.size == 0:
        raise ValueError("a label subset must be non-empty, got an empty subset")
    if lab.min() < 0 or lab.max() >= num:
        bad = sorted({int(v) for v in lab if v < 0 or v >= num})
        raise ValueError(f"labels {bad} are outside the classifier's labels 0..{num - 1}")
    if np.unique(lab).size != lab.size:
        raise ValueError(f"a label subset must not repeat labels, got {lab.tolist()}")
    return lab


def certify_counts(
    counts_select: Sequence[int],
    counts: Sequence[int],
    alpha: float,
    sigma: float,
    *,
    labels: Sequence[int] | None = None,
    bound: str = "cohen",
) -> Certificate:
    """Certify from count vectors (selection counts from ``n0`` draws, estimation from ``n``).

    Parameters
    ----------
    counts_select : array of int, shape [num_labels]
        Votes on the ``n0`` selection draws, used only to pick the top label ``c_A``.
    counts : array of int, shape [num_labels]
        Votes on the ``n`` fresh estimation draws (``n = counts.sum()``).
    alpha : float
        Failure probability of the certificate, in (0, 1).
    sigma : float
        Noise level of the smoothing.
    labels : sequence of int, optional
        Certify within this label subset ``L`` (default: all labels).
        With ``bound="cohen"`` the counts must be those of the base classifier restricted to
        ``L`` (``argmax_{c in L}`` of the logits, as ``Smooth`` records per subset); with
        ``bound="margin"`` they are the flat classifier's counts.
    bound : {"cohen", "margin"}
        The bound on the counts: Cohen's one-sided bound on the selected label, or the
        restricted margin. See the module docstring for why each is sound.

    Returns
    -------
    Certificate
        A one-label subset gives that label with an infinite radius (a constant classifier).

    Examples
    --------
    >>> c = certify_counts([2, 95, 3], [10, 980, 10], alpha=0.001, sigma=0.5)
    >>> c.label, round(c.radius, 3)
    (1, 0.889)
    >>> m = certify_counts([2, 95, 3], [10, 980, 10], 0.001, 0.5, bound="margin")
    >>> m.radius > c.radius
    True
    """
    alpha = check_alpha(alpha)
    sigma = check_sigma(sigma)
    check_bound(bound)
    return certify_counts_checked(counts_select, counts, alpha, sigma, labels, bound)


def check_bound(bound: str) -> str:
    """Validate a bound (one of :data:`BOUNDS`).

    Examples
    --------
    >>> check_bound("margin")
    'margin'
    """
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    return bound


def certify_counts_checked(
    counts_select: Sequence[int], counts: Sequence[int], alpha: float, sigma: float,
    labels: Sequence[int] | None, bound: str,
) -> Certificate:  # fmt: skip
    """:func:`certify_counts` for callers that validated ``alpha``, ``sigma`` and ``bound``.

    A loop over inputs, label subsets or a path's nodes checks those once at its boundary and
    calls this; the counts and ``labels``, which differ per call, are still checked here.

    Examples
    --------
    >>> certify_counts_checked([2, 95, 3], [10, 980, 10], 0.001, 0.5, None, "cohen").label
    1
    """
    cs, ce = _count_vectors(counts_select, counts)
    lab = _restrict(labels, cs.size)
    subset = None if labels is None else tuple(int(v) for v in lab)

    def cert(label: int, radius: float, p_a: float, p_b: float) -> Certificate:
        return Certificate(label, radius, p_a, p_b, bound, subset, alpha, sigma, cs, ce)

    if lab.size == 1:  # the restricted classifier is constant: nothing can change it
        return cert(int(lab[0]), math.inf, 1.0, 0.0)
    n = int(ce.sum())
    if n < 1:
        raise ValueError("counts must hold at least one estimation draw (n >= 1)")
    if int(cs.sum()) == 0:
        raise ValueError("counts_select must hold at least one selection draw (n0 >= 1)")
    # ties: the smallest label, like numpy's argmax over the full vector
    c_a = int(lab[np.argmax(cs[lab])])
    if bound == "cohen":
        p_a = float(_cp_lower(ce[c_a], np.int64(n), alpha))
        if p_a < 0.5:
            return cert(ABSTAIN, 0.0, p_a, math.nan)
        return cert(c_a, float(_cohen(p_a, sigma)) if p_a > 0.5 else 0.0, p_a, math.nan)
    each = alpha / lab.size  # |L| simultaneous bounds: A's lower, every other label's upper
    p_a = float(_cp_lower(ce[c_a], np.int64(n), each))
    others = lab[lab != c_a]
    p_b = float(np.max(_cp_upper(ce[others], np.full(others.size, n), each)))
    p_b = min(p_b, 1.0 - p_a)
    if p_a <= p_b:
        return cert(ABSTAIN, 0.0, p_a, p_b)
    return cert(c_a, float(_margin(p_a, p_b, sigma)), p_a, p_b)


def _count_vectors(counts_select: Any, counts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both count vectors as int64 ``[num_labels]``, non-negative and of equal length."""
    cs = np.asarray(counts_select, dtype=np.int64)
    ce = np.asarray(counts, dtype=np.int64)
    if cs.ndim != 1 or ce.shape != cs.shape:
        raise ValueError(
            f"counts_select and counts must be 1-d vectors of equal length, got shapes "
            f"{cs.shape} and {ce.shape}"
        )
    if (cs < 0).any() or (ce < 0).any():
        raise ValueError("counts must be >= 0")
    return cs, ce

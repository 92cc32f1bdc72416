"""Confidence bounds and radius formulas of randomized smoothing (Cohen et al., 2019).

Everything here is a pure function of counts, so any certificate can be recomputed offline
from the count vectors a certification run stores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest, norm
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "check_alpha",
    "check_sigma",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "cohen_radius",
    "margin_radius",
    "top_two_pvalue",
]


def check_sigma(sigma: float) -> float:
    """Validate a noise level: a finite float > 0.

    Examples
    --------
    >>> check_sigma(0.25)
    0.25
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)):
        raise TypeError(f"sigma must be a positive float, got {type(sigma).__name__}")
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite float > 0, got {sigma}")
    return sigma


def check_alpha(alpha: float) -> float:
    """Validate a failure probability: a float in the open interval (0, 1).

    Examples
    --------
    >>> check_alpha(0.001)
    0.001
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha must be a float in (0, 1), got {type(alpha).__name__}")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in the open interval (0, 1), got {alpha}")
    return alpha


def _check_counts(k, n) -> tuple[np.ndarray, np.ndarray]:
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    if not (np.issubdtype(k_arr.dtype, np.integer) and np.issubdtype(n_arr.dtype, np.integer)):
        raise TypeError(f"counts must be integers, got dtypes {k_arr.dtype} and {n_arr.dtype}")
    if np.any(n_arr < 1):
        raise ValueError(f"the number of samples n must be >= 1, got {n}")
    if np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError(f"counts must lie in [0, n], got k={k} for n={n}")
    return k_arr, n_arr


def clopper_pearson_lower(k, n, alpha: float):
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound on a binomial proportion.

    This is the lower end of statsmodels' two-sided ``proportion_confint(k, n, alpha=2 *
    alpha, method="beta")``, exactly as in Cohen et al.'s ``_lower_confidence_bound``.

    Parameters
    ----------
    k : int or array of int
        Successes (e.g. how many noisy samples the base classifier labelled ``c_A``).
    n : int or array of int
        Trials, ``>= 1``.
    alpha : float
        Failure probability of the bound, in (0, 1).

    Returns
    -------
    float or ndarray
        ``p_lower`` with ``P(p < p_lower) <= alpha``; same shape as ``k``.

    Examples
    --------
    >>> round(clopper_pearson_lower(990, 1000, 0.001), 4)
    0.976
    >>> clopper_pearson_lower(0, 10, 0.05)
    0.0
    """
    k_arr, n_arr = _check_counts(k, n)
    return _cp_lower(k_arr, n_arr, check_alpha(alpha))


def _cp_lower(k: np.ndarray, n: np.ndarray, alpha: float):
    """:func:`clopper_pearson_lower` on validated arguments (the kernel callers loop over)."""
    lower = proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]
    lower = np.where(k == 0, 0.0, lower)  # statsmodels returns nan for k == 0 in old releases
    return float(lower) if np.ndim(lower) == 0 else lower


def clopper_pearson_upper(k, n, alpha: float):
    """One-sided ``1 - alpha`` Clopper-Pearson upper bound on a binomial proportion.

    Parameters
    ----------
    k : int or array of int
        Successes and trials (``n >= 1``).
    n : int or array of int
        Successes and trials (``n >= 1``).
    alpha : float
        Failure probability of the bound, in (0, 1).

    Returns
    -------
    float or ndarray
        ``p_upper`` with ``P(p > p_upper) <= alpha``.

    Examples
    --------
    >>> round(clopper_pearson_upper(0, 1000, 0.001), 5)
    0.0069
    >>> clopper_pearson_upper(10, 10, 0.05)
    1.0
    """
    k_arr, n_arr = _check_counts(k, n)
    return _cp_upper(k_arr, n_arr, check_alpha(alpha))


def _cp_upper(k: np.ndarray, n: np.ndarray, alpha: float):
    """:func:`clopper_pearson_upper` on validated arguments."""
    upper = proportion_confint(k, n, alpha=2 * alpha, method="beta")[1]
    upper = np.where(k == n, 1.0, upper)
    return float(upper) if np.ndim(upper) == 0 else upper


def cohen_radius(p_lower, sigma: float):
    """Cohen et al.'s certified radius ``sigma * Phi^-1(p_lower)`` (Theorem 1, ``pB = 1 - pA``).

    Returns ``0`` where ``p_lower <= 1/2`` (the smoothed classifier abstains there) and
    ``inf`` where ``p_lower == 1``.

    Examples
    --------
    >>> round(cohen_radius(0.9, 0.5), 4)
    0.6408
    >>> cohen_radius(0.4, 0.5)
    0.0
    """
    return _cohen(p_lower, check_sigma(sigma))


def _cohen(p_lower, sigma: float):
    """:func:`cohen_radius` for a validated ``sigma``."""
    p = np.asarray(p_lower, dtype=float)
    with np.errstate(divide="ignore"):
        r = np.where(p > 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)
    return float(r) if r.ndim == 0 else r


def margin_radius(p_a_lower, p_b_upper, sigma: float):
    """The margin radius ``sigma / 2 * (Phi^-1(pA_lower) - Phi^-1(pB_upper))`` (Theorem 1).

    Sound when ``pA_lower`` lower-bounds the top label's probability and ``pB_upper``
    upper-bounds *every* other competing label's probability, simultaneously. Returns ``0``
    where the margin is not positive.

    Examples
    --------
    >>> round(margin_radius(0.9, 0.1, 0.5), 4)
    0.6408
    >>> margin_radius(0.3, 0.4, 0.5)
    0.0
    """
    return _margin(p_a_lower, p_b_upper, check_sigma(sigma))


def _margin(p_a_lower, p_b_upper, sigma: float):
    """:func:`margin_radius` for a validated ``sigma``."""
    pa = np.asarray(p_a_lower, dtype=float)
    pb = np.asarray(p_b_upper, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 0.5 * sigma * (norm.ppf(pa) - norm.ppf(pb))
    r = np.where(pa > pb, r, 0.0)
    r = np.where(np.isnan(r), np.inf, r)  # pa == 1 and pb == 0: inf - (-inf)
    return float(r) if r.ndim == 0 else r


def top_two_pvalue(counts: Sequence[int]) -> tuple[int, float]:
    """Cohen's ``predict`` test: the top label and the binomial p-value of top vs. runner-up.

    Parameters
    ----------
    counts : sequence of int
        Count vector over labels.

    Returns
    -------
    (int, float)
        The top label (ties: the smallest label) and ``binomtest(nA, nA + nB, 0.5).pvalue``.

    Examples
    --------
    >>> top_two_pvalue([3, 90, 7])[0]
    1
    """
    c = np.asarray(counts)
    if c.ndim != 1 or c.size < 1:
        raise ValueError(f"counts must be a non-empty 1-d vector, got shape {c.shape}")
    order = np.argsort(-c, kind="stable")
    n_a = int(c[order[0]])
    n_b = int(c[order[1]]) if c.size > 1 else 0
    if n_a + n_b == 0:
        return int(order[0]), 1.0
    return int(order[0]), float(binomtest(n_a, n_a + n_b, 0.5).pvalue)

"""Exact behaviour of sequential certification for a known ``pA``: what it certifies, how often.

For a base classifier whose ``pA`` is known (a linear model at a known distance, or an input
whose ``pA`` was estimated by a long fixed-``n`` run), the probability that the library's rule
certifies a radius is computed exactly, by dynamic programming over the success count look by
look. The certify and refute regions of each look are count intervals (the rule is monotone
in the count), found by bisection, so a run to ``max_n = 100,000`` takes well under a
second per radius. The test suite checks the guarantee against these numbers; the
benchmarks use them to compare sequential and fixed-``n`` certified accuracy without the
noise of a small sample of inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import binom

from hierclass.smoothing.certificates.bounds import clopper_pearson_lower
from hierclass.smoothing.sequential.decisions import CERTIFIED, REFUTED, decide

__all__ = [
    "certify_probability",
    "decision_counts",
    "fixed_n_certify_count",
    "fixed_n_certify_probability",
]


def _first(pred, lo: int, hi: int) -> int:
    """The smallest ``s`` in ``[lo, hi]`` with ``pred(s)`` (``hi + 1`` if none); ``pred``
    must be monotone (False, then True)."""
    if not pred(hi):
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


# decision_counts is pure; callers ask for the same rule and threshold at many p. An entry
# keeps its sequence alive, so the sequence's id cannot be reused by another object.
_COUNTS: dict = {}
_COUNTS_MAX = 512


def decision_counts(
    sequence: Any, looks: np.ndarray, threshold: float, final_alpha: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per look, the count from which the rule certifies ``threshold`` and the count up to
    which it refutes it.

    Returns ``(certify_from, refute_to)``: at look ``k`` (``n = looks[k]`` draws, ``s``
    successes) the rule certifies iff ``s >= certify_from[k]`` and refutes iff
    ``s <= refute_to[k]`` (``n + 1`` and ``-1`` when it never does).

    Examples
    --------
    >>> from hierclass.smoothing.certificates.confidence_sequences import MixtureSequence
    >>> up, down = decision_counts(MixtureSequence(0.01), np.array([100, 200]), 0.5)
    >>> up.tolist(), down.tolist()
    ([70, 128], [30, 72])
    """
    key = (id(sequence), tuple(int(n) for n in looks), float(threshold), float(final_alpha))
    hit = _COUNTS.get(key)
    if hit is not None:
        return hit[1]
    t = np.array([float(threshold)])
    up, down = [], []
    for k, n in enumerate(looks):
        final = final_alpha if k == len(looks) - 1 else 0.0

        def code(s: int, n: int = int(n), final: float = final) -> int:
            return int(decide(sequence, s, n, t, final)[0])

        up.append(_first(lambda s: code(s) == CERTIFIED, 0, int(n)))
        # refuted for small counts: the last s with REFUTED is one below the first without
        down.append(_first(lambda s: code(s) != REFUTED, 0, int(n)) - 1)
    out = (np.asarray(up, dtype=np.int64), np.asarray(down, dtype=np.int64))
    if len(_COUNTS) >= _COUNTS_MAX:
        _COUNTS.clear()
    _COUNTS[key] = (sequence, out)
    return out


def certify_probability(
    p: float,
    sequence: Any,
    looks: np.ndarray,
    threshold: float,
    *,
    refute: bool = True,
    final_alpha: float = 0.0,
) -> float:
    """Exact probability that the rule certifies ``threshold`` when each draw succeeds with
    probability ``p``.

    Certified: at some look the count enters the certify region before (``refute=True``) it
    enters the refute region; ``refute=False`` never stops (an adversary that keeps
    peeking). ``final_alpha`` adds the library's fixed-``n`` bound at the last look (pass
    ``Decisions.final_alpha`` with its ``sequence`` to get the library's rule).

    Examples
    --------
    >>> from hierclass.smoothing.sequential.sessions import sequential_setup
    >>> setup = sequential_setup(0.5, [0.5], n0=100, max_n=10_000, alpha=0.001)
    >>> rows = setup.decisions(1)
    >>> p = certify_probability(0.95, rows.sequence, setup.looks, setup.thresholds[0],
    ...                         final_alpha=rows.final_alpha)
    >>> round(p, 6)  # Phi(1) = 0.841 is far below 0.95: certified for sure
    1.0
    """
    up, down = decision_counts(sequence, looks, threshold, final_alpha)
    alive = np.array([1.0])  # P(count = s and still undecided)
    crossed = 0.0
    prev = 0
    for n, c, d in zip(looks, up, down):
        inc = int(n - prev)
        prev = int(n)
        alive = np.clip(fftconvolve(alive, binom.pmf(np.arange(inc + 1), inc, p)), 0.0, None)
        crossed += float(alive[c:].sum())
        alive[c:] = 0.0
        if refute and d >= 0:
            alive[: d + 1] = 0.0
    return min(crossed, 1.0)


def fixed_n_certify_count(n: int, alpha: float, threshold: float) -> int:
    """The smallest count whose one-sided Clopper-Pearson bound at ``alpha`` on ``n`` draws
    reaches ``threshold`` (``n + 1`` if none does).

    Examples
    --------
    >>> fixed_n_certify_count(100, 0.001, 0.5)
    66
    """
    return _first(lambda s: clopper_pearson_lower(s, n, alpha) >= threshold, 0, n)


def fixed_n_certify_probability(p: float, n: int, alpha: float, threshold: float) -> float:
    """Exact probability that Cohen's fixed-``n`` bound (one-sided Clopper-Pearson at
    ``alpha`` on ``n`` draws) reaches ``threshold``.

    Examples
    --------
    >>> round(fixed_n_certify_probability(0.95, 10_000, 0.001, 0.8413), 6)
    1.0
    """
    c = fixed_n_certify_count(n, alpha, threshold)
    return float(binom.sf(c - 1, n, p)) if c <= n else 0.0

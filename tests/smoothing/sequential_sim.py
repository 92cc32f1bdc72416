"""Exact and simulated behaviour of sequential certification when ``pA`` is known.

Where the property under test is the statistics, the base classifier's votes are simulated
from their exact distribution: the estimation draws of look ``k`` add a
``Binomial(n_k - n_{k-1}, pA)`` count, and the library's own decision rule
(:func:`~hierclass.smoothing.sequential.sessions.decide` on a confidence sequence) is applied to it.
A two-class linear base classifier
``f(x) = sign(w . x + b)`` at distance ``d`` from its boundary has ``pA = Phi(d / sigma)`` and
smoothed radius exactly ``d``, so a trial at distance ``d`` is a draw with that ``pA``.

:func:`hierclass.smoothing.sequential.exact.certify_probability` computes by dynamic
programming over the success count the exact probability that the rule certifies a
threshold, for comparison with simulated counts.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaincinv

from hierclass.smoothing.certificates.bounds import clopper_pearson_lower
from hierclass.smoothing.sequential.sessions import CERTIFIED, UNDECIDED, decide, update_decisions


class NaivePeeking:
    """The classic mistake, for control tests: a fixed-``n`` one-sided Clopper-Pearson bound
    at level ``alpha`` read at every look as if it were a confidence sequence.

    Same ``passes`` interface as :class:`~hierclass.smoothing.certificates.confidence_sequences.
    MixtureSequence`, so the library's :func:`decide` runs on it unchanged.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def passes(self, successes, n, p0):
        s = np.asarray(successes, dtype=float)
        nn = np.broadcast_to(np.asarray(n, dtype=float), s.shape)
        with np.errstate(invalid="ignore"):
            lower = np.where(s > 0, betaincinv(np.maximum(s, 1), nn - s + 1, self.alpha), 0.0)
        return lower >= p0


def simulate(p, sequence, looks, thresholds, rng, *, stop="library", select_p=None, n0=100,
             watch=None, final_alpha=0.0):  # fmt: skip
    """Run the library's decision rule on simulated counts, vectorised over trials.

    Parameters
    ----------
    p : array [T]
        ``pA`` of the *correct* label of each trial.
    sequence : MixtureSequence (or anything with its ``passes``)
    looks : array of int
        The sample sizes at which the rule looks.
    thresholds : array [R]
        ``Phi(r / sigma)`` per radius.
    stop : {"library", "never"} or callable
        ``"library"``: stop when every radius is decided (the library's rule). ``"never"``:
        sample to the last look whatever happens (an adversary that keeps peeking).
        A callable ``stop(look, idx, successes, n) -> bool [len(idx)]`` is an arbitrary rule
        over the still-active trials ``idx``.
    select_p : array [T], optional
        Simulate the ``n0`` selection draws too: with probability of the correct label's
        selection, else the wrong label (whose ``pA`` is then ``1 - p``).
    watch : array [T], optional
        Per trial a threshold to watch: ``crossed`` reports whether the rule certified it
        at some look while the trial was sampling.
    final_alpha : float
        The fixed-``n`` Clopper-Pearson test at the last look (the library's
        ``FINAL_SHARE * alpha``; 0: none).

    Returns
    -------
    status : int8 [T, R]
        Final decisions.
    wrong : bool [T]
        Whether selection picked the wrong label.
    n_used : int [T]
        Estimation draws when sampling stopped.
    crossed : bool [T]
        See ``watch`` (all False without it).

    Every trial's counts are drawn at every look whether or not it is still sampling, so runs
    with the same ``rng`` seed follow the same sample paths under any stopping rule.
    """
    p = np.asarray(p, dtype=float)
    t = p.size
    wrong = np.zeros(t, bool)
    if select_p is not None:
        c0 = rng.binomial(n0, select_p)
        wrong = c0 < n0 - c0  # ties go to the smaller label, the correct one here
    q = np.where(wrong, 1.0 - p, p)
    succ = np.zeros(t, np.int64)
    crossed = np.zeros(t, bool)
    active = np.ones(t, bool)
    n_used = np.zeros(t, np.int64)
    status = np.zeros((t, len(thresholds)), np.int8)
    prev = 0
    for k, n in enumerate(looks):
        succ += rng.binomial(int(n - prev), q)  # all trials: same paths under any rule
        idx = np.flatnonzero(active)
        prev = int(n)
        final = final_alpha if k == len(looks) - 1 else 0.0
        new = decide(sequence, succ[idx], int(n), thresholds, final)
        status[idx] = update_decisions(status[idx], new)
        if watch is not None:
            w = np.asarray(watch)[idx]
            crossed[idx] |= sequence.passes(succ[idx], int(n), w)
            if final:
                crossed[idx] |= clopper_pearson_lower(succ[idx], np.full(idx.size, n), final) >= w
        n_used[idx] = n
        if stop == "library":
            done = ~np.any(status[idx] == UNDECIDED, axis=1)
        elif stop == "never":
            done = np.zeros(idx.size, bool)
        else:
            done = np.asarray(stop(k, idx, succ[idx], int(n)), bool)
        active[idx[done]] = False
        if not active.any():
            break
    return status, wrong, n_used, crossed


def violations(status, wrong, distance, radii):
    """Per trial: is some radius certified beyond the exact radius (or for the wrong label)?"""
    beyond = np.asarray(radii)[None, :] > np.asarray(distance)[:, None]
    cert = status == CERTIFIED
    return np.where(wrong, cert.any(axis=1), (cert & beyond).any(axis=1))

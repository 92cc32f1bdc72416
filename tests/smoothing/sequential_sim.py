"""Exact and simulated behaviour of sequential certification when ``pA`` is known.

Where the property under test is the statistics, the base classifier's votes are simulated
from their exact distribution: the estimation draws of look ``k`` add a
``Binomial(n_k - n_{k-1}, pA)`` count. A two-class linear base classifier
``f(x) = sign(w . x + b)`` at distance ``d`` from its boundary has ``pA = Phi(d / sigma)`` and
smoothed radius exactly ``d``, so a trial at distance ``d`` is a draw with that ``pA``.

``crossing_probability`` computes by dynamic programming over the success count the exact
probability that a decision rule certifies a threshold ``t`` (with absorbing "certified" and,
optionally, "refuted" states), for comparison with simulated counts.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import binom

from hierclass.smoothing.bounds import clopper_pearson_lower, clopper_pearson_upper
from hierclass.smoothing.sequential import CERTIFIED, UNDECIDED, update_decisions


def simulate(p, schedule, thresholds, rng, *, stop="library", select_p=None, n0=100):
    """Run the library's decision rule on simulated counts, vectorised over trials.

    Parameters
    ----------
    p : array [T]
        ``pA`` of the *correct* label of each trial.
    schedule : GeometricSchedule
    thresholds : array [R]
        ``Phi(r / sigma)`` per radius.
    stop : {"library", "never"} or callable
        ``"library"``: stop when every radius is decided (the library's rule). ``"never"``:
        sample to ``max_n`` whatever happens (an adversary that keeps peeking).
        A callable ``stop(look, p_lower, p_upper) -> bool [T]`` is an arbitrary rule.
    select_p : array [T], optional
        Simulate the ``n0`` selection draws too: with probability of the correct label's
        selection, else the wrong label (whose ``pA`` is then ``1 - p``).

    Returns
    -------
    status : int8 [T, R]
        Final decisions.
    wrong : bool [T]
        Whether selection picked the wrong label.
    n_used : int [T]
        Estimation draws when sampling stopped.
    lower_max : float [T]
        The largest lower bound seen while sampling.

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
    lo = np.zeros(t)
    hi = np.ones(t)
    active = np.ones(t, bool)
    n_used = np.zeros(t, np.int64)
    status = np.zeros((t, len(thresholds)), np.int8)
    prev = 0
    for k, n in enumerate(schedule.looks):
        succ += rng.binomial(int(n - prev), q)  # all trials: same paths under any rule
        idx = np.flatnonzero(active)
        prev = int(n)
        a, b = schedule.bounds(succ[idx], np.full(idx.size, n), np.full(idx.size, k))
        lo[idx] = np.maximum(lo[idx], a)
        hi[idx] = np.minimum(hi[idx], b)
        status[idx] = update_decisions(status[idx], lo[idx], hi[idx], thresholds)
        n_used[idx] = n
        if stop == "library":
            done = ~np.any(status[idx] == UNDECIDED, axis=1)
        elif stop == "never":
            done = np.zeros(idx.size, bool)
        else:
            done = np.asarray(stop(k, lo[idx], hi[idx]), bool)
        active[idx[done]] = False
        if not active.any():
            break
    return status, wrong, n_used, lo


def violations(status, wrong, distance, radii):
    """Per trial: is some radius certified beyond the exact radius (or for the wrong label)?"""
    beyond = np.asarray(radii)[None, :] > np.asarray(distance)[:, None]
    cert = status == CERTIFIED
    return np.where(wrong, cert.any(axis=1), (cert & beyond).any(axis=1))


_BOUNDS: dict = {}


def _look_bounds(schedule, level):
    """Lower and upper bounds at every count of every look (cached: they do not depend on p)."""
    key = (tuple(schedule.looks.tolist()), level)
    if key not in _BOUNDS:
        out = []
        for n in schedule.looks:
            s = np.arange(int(n) + 1)
            nn = np.full(s.size, n)
            out.append((clopper_pearson_lower(s, nn, level), clopper_pearson_upper(s, nn, level)))
        _BOUNDS[key] = out
    return _BOUNDS[key]


def crossing_probability(p, schedule, threshold, *, refute=True, alpha_look=None):
    """Exact ``P(certified at threshold)`` for the rule on ``schedule`` at success rate ``p``.

    Certified: some look's lower bound ``>= threshold`` before (``refute=True``) some look's
    upper bound ``< threshold``; ``refute=False`` never stops (the peeking adversary).
    ``alpha_look`` overrides the per-look level (e.g. ``alpha``: naive peeking).
    """
    level = schedule.alpha_look if alpha_look is None else alpha_look
    alive = np.array([1.0])  # P(count = s and still undecided)
    crossed = 0.0
    prev = 0
    for n, (lo, hi) in zip(schedule.looks, _look_bounds(schedule, level)):
        inc = int(n - prev)
        prev = int(n)
        alive = np.clip(fftconvolve(alive, binom.pmf(np.arange(inc + 1), inc, p)), 0.0, None)
        up = lo >= threshold
        crossed += float(alive[up].sum())
        alive[up] = 0.0
        if refute:
            alive[hi < threshold] = 0.0
    return crossed

"""Soundness of sequential certification against exact answers (see sequential_sim.py).

A two-class linear base classifier at distance ``d`` from its boundary has ``pA =
Phi(d / sigma)`` and smoothed radius exactly ``d``. A *violation* is a radius ``r > d``
reported certified (or any certificate for a wrongly selected label). The guarantee bounds a
trial's violation probability by ``alpha``; the tests use a large ``alpha`` (0.2) so that
violations happen and their number can be compared with

* ``alpha`` itself: the count must not exceed the ``1 - 1e-6`` quantile of
  ``Binomial(trials, alpha)`` (independent trials, each violating with probability
  ``<= alpha``), and
* the exact expectation, computed by dynamic programming over the success count: the count
  must lie within 5 standard deviations of the Poisson-binomial mean.

A control applies the same checks to naive peeking (a fixed-``n`` Clopper-Pearson bound at
level ``alpha`` read at every look) and shows they fail, so the checks can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, norm

from hierclass.smoothing.certificates.confidence_sequences import MixtureSequence, geometric_looks
from hierclass.smoothing.sequential.exact import certify_probability
from hierclass.smoothing.sequential.sessions import FINAL_SHARE, radius_thresholds

from .sequential_sim import NaivePeeking, simulate, violations

SIGMA = 0.5
ALPHA = 0.2
N0 = 100
RADII = SIGMA * np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
GRID = SIGMA * np.linspace(0.05, 3.0, 40)  # distances, in input units
PER_DISTANCE = 60  # 2,400 trials
# the library's split: the sequence at 0.8 alpha, a Clopper-Pearson test at 0.2 alpha at max_n
SEQ = MixtureSequence((1 - FINAL_SHARE) * ALPHA)
FINAL = FINAL_SHARE * ALPHA
LOOKS = geometric_looks(4000, first=50, ratio=1.1)


def _allowed(trials: int, alpha: float) -> int:
    return int(binom.ppf(1 - 1e-6, trials, alpha))


def _within(count: int, probs: np.ndarray) -> bool:
    mean = probs.sum()
    sd = np.sqrt((probs * (1 - probs)).sum())
    return abs(count - mean) <= 5 * sd + 1


def _exact_violation(d: float, thresholds) -> float:
    """Exact violation probability of one trial at distance ``d`` (library stopping rule)."""
    p = norm.cdf(d / SIGMA)
    beyond = thresholds[RADII > d]
    # selection: the correct label wins unless it has fewer than half the n0 votes
    p_right = binom.sf(np.ceil(N0 / 2) - 1, N0, p)  # P(count >= n0/2): ties go to it
    kw = dict(final_alpha=FINAL)
    v_right = certify_probability(p, SEQ, LOOKS, beyond.min(), **kw) if beyond.size else 0.0
    v_wrong = certify_probability(1 - p, SEQ, LOOKS, thresholds.min(), **kw)
    return p_right * v_right + (1 - p_right) * v_wrong


def test_linear_trials_violations_within_alpha_and_exact_expectation():
    thresholds = radius_thresholds(RADII, SIGMA)
    d = np.repeat(GRID, PER_DISTANCE)
    p = norm.cdf(d / SIGMA)
    rng = np.random.default_rng(0)
    status, wrong, n_used, _ = simulate(
        p, SEQ, LOOKS, thresholds, rng, select_p=p, n0=N0, final_alpha=FINAL
    )
    v = violations(status, wrong, d, RADII)
    exact = np.repeat([_exact_violation(g, thresholds) for g in GRID], PER_DISTANCE)
    count = int(v.sum())
    assert exact.max() <= ALPHA  # the theorem, checked exactly
    assert count <= _allowed(d.size, ALPHA)
    assert _within(count, exact), (count, exact.sum())
    assert count > 0  # alpha = 0.2 makes violations observable: the count is informative
    assert n_used.min() < LOOKS[-1]  # some trials did stop early (the rule was exercised)


@pytest.mark.parametrize("margin", [1e-3, 0.02])
def test_adversary_that_stops_at_first_crossing(margin):
    """Keep sampling to max_n and stop the moment the bound crosses a false threshold."""
    r = 1.0 * SIGMA
    t = radius_thresholds(np.array([r]), SIGMA)
    p = np.full(3000, t[0] - margin)  # exact radius just below r
    rng = np.random.default_rng(1)
    watch = np.full(p.size, t[0])
    _, _, _, crossed = simulate(p, SEQ, LOOKS, t, rng, stop="never", watch=watch, final_alpha=FINAL)
    count = int(crossed.sum())  # the adversary's certificate: any crossing
    exact = certify_probability(p[0], SEQ, LOOKS, t[0], refute=False, final_alpha=FINAL)
    assert exact <= ALPHA
    assert count <= _allowed(p.size, ALPHA)
    assert _within(count, np.full(p.size, exact)), (count, exact * p.size)


def test_naive_peeking_control_fails_the_same_check():
    """A fixed-n Clopper-Pearson bound at alpha read at every look: the checks above catch it."""
    naive = NaivePeeking(ALPHA)  # the mistake under test
    t = radius_thresholds(np.array([SIGMA]), SIGMA)
    p = np.full(3000, t[0] - 1e-3)
    watch = np.full(p.size, t[0])
    _, _, _, crossed = simulate(p, naive, LOOKS, t, np.random.default_rng(2), stop="never",
                                watch=watch)  # fmt: skip
    count = int(crossed.sum())
    assert certify_probability(p[0], naive, LOOKS, t[0], refute=False) > ALPHA
    assert count > _allowed(p.size, ALPHA)


def test_stopping_rules_never_add_violations():
    """Any stopping rule's certificates are a subset of the peeking adversary's."""
    looks = geometric_looks(2000, first=32, ratio=1.1)
    thresholds = radius_thresholds(RADII, SIGMA)
    d = np.repeat(GRID, 50)
    p = norm.cdf(d / SIGMA)
    t_false = np.array([thresholds[RADII > x].min() if (RADII > x).any() else 2.0 for x in d])
    _, _, _, v_full = simulate(p, SEQ, looks, thresholds, np.random.default_rng(3), stop="never",
                               watch=t_false, final_alpha=FINAL)  # fmt: skip
    # v_full: the adversary's certificate, some look's bound crossed a false radius
    assert 0 < int(v_full.sum()) <= _allowed(d.size, ALPHA)
    # the same paths (same seed) under other stopping rules
    rules = {
        "library": "library",
        "random": lambda k, idx, s, n: np.random.default_rng(k).random(idx.size) < 0.3,
        "first_crossing_of_a_false_radius": _first_crossing(t_false),
    }
    for name, rule in rules.items():
        status, _, _, _ = simulate(
            p, SEQ, looks, thresholds, np.random.default_rng(3), stop=rule, final_alpha=FINAL
        )
        v = violations(status, np.zeros(d.size, bool), d, RADII)
        assert not np.any(v & ~v_full), name
        assert int(v.sum()) <= _allowed(d.size, ALPHA), name


def _first_crossing(t_false):
    """A rule that stops a trial at the first look its lower bound crosses a false radius."""

    def rule(k, idx, successes, n):
        return SEQ.passes(successes, n, t_false[idx])

    return rule

"""The mixture confidence sequence against exact answers.

Its validity rests on two facts, each checked exactly here: the wealth at the true ``p`` has
mean 1 at every ``n`` (a martingale started at 1: Ville's inequality then bounds by ``alpha``
the chance it ever reaches ``1 / alpha``), and it decreases in ``p0`` (so the rejected values
form the interval below ``lower``). The time-uniform guarantee itself is then checked by
dynamic programming with a look at *every* sample size, where a fixed-``n`` bound fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from hierclass.smoothing.certificates.confidence_sequences import MixtureSequence, geometric_looks
from hierclass.smoothing.sequential.exact import certify_probability

from .sequential_sim import NaivePeeking


@pytest.mark.parametrize("never_wrong", [0.0, 0.5])
@pytest.mark.parametrize("p", [0.3, 0.9, 0.999])
def test_wealth_at_the_true_p_has_mean_one_at_every_n(p, never_wrong):
    seq = MixtureSequence(0.01, never_wrong=never_wrong)
    for n in [1, 7, 40, 200]:
        s = np.arange(n + 1)
        mean = float(np.sum(binom.pmf(s, n, p) * np.exp(seq.log_wealth(s, n, p))))
        assert mean == pytest.approx(1.0, rel=1e-9), (p, n)


def test_wealth_decreases_in_p0_and_lower_is_where_it_crosses():
    seq = MixtureSequence(0.001)
    p0 = np.linspace(0.001, 0.999, 400)
    rng = np.random.default_rng(0)
    for n in [10, 300, 5000]:
        for s in rng.integers(0, n + 1, 6):
            w = seq.log_wealth(s, n, p0)
            assert np.all(np.diff(w) < 0)
            lo, hi = seq.bounds(int(s), n)
            assert 0.0 <= lo <= s / n <= hi <= 1.0
            if lo > 0:
                assert seq.passes(int(s), n, lo) and not seq.passes(int(s), n, lo + 1e-7)
                assert math.log(1 / 0.001) <= seq.log_wealth(s, n, lo) < math.log(1e3) + 1e-4
    # more successes, a higher bound; vectorised calls equal scalar ones
    s = np.arange(0, 1001, 100)
    lo = seq.lower(s, 1000)
    assert np.all(np.diff(lo) >= 0) and lo[0] == 0.0
    assert lo[3] == seq.lower(300, 1000)


def test_all_successes_between_the_point_mass_and_a_fixed_n_bound():
    """All-correct votes: the point mass on q = 1 alone gives (alpha w)^(1/n); no valid
    sequence can beat the fixed-n Clopper-Pearson bound alpha^(1/n)."""
    alpha = 0.001
    seq = MixtureSequence(alpha)
    for n in [50, 1000, 5630, 100_000]:
        lo = seq.lower(n, n)
        assert (alpha * 0.5) ** (1 / n) <= lo <= alpha ** (1 / n)
    # radius 3 sigma from all-correct draws: certified by the point mass alone at its closed
    # form, 5,627 draws (the finite part of the prior only helps), never at 5,000
    n_point = math.ceil(math.log(1 / (alpha * 0.5)) / -math.log(0.9986501019683699))
    assert n_point == 5627
    assert seq.passes(n_point, n_point, 0.9986501019683699)
    assert not seq.passes(5000, 5000, 0.9986501019683699)


def test_all_correct_n_is_the_first_n_that_passes():
    """The look an input that never errs stops at: passes there, not one draw earlier, and
    lies between the fixed-n floor and the point mass's closed form."""
    alpha = 0.0008  # the sequence's share of alpha = 0.001
    seq = MixtureSequence(alpha)
    for t in [0.5, 0.9772498680518208, 0.9986501019683699]:  # Phi(0), Phi(2), Phi(3)
        n = seq.all_correct_n(t, 100_000)
        assert seq.passes(n, n, t) and not seq.passes(n - 1, n - 1, t)
        floor = math.ceil(math.log(1 / alpha) / -math.log(t))
        point = math.ceil(math.log(1 / (alpha * 0.5)) / -math.log(t))
        assert floor <= n <= point
        assert seq.all_correct_n(t, n) == n and seq.all_correct_n(t, n - 1) is None


@pytest.mark.parametrize("p", [0.6, 0.95])
def test_time_uniform_coverage_with_a_look_at_every_n(p):
    """P(lower_n >= p for some n <= 400), exactly: within alpha for the sequence, above it for
    a fixed-n Clopper-Pearson bound read at every n (the control shows the check can fail)."""
    alpha = 0.2
    looks = np.arange(1, 401)
    fail = certify_probability(p, MixtureSequence(alpha), looks, p, refute=False)
    assert 0.0 < fail <= alpha
    naive = certify_probability(p, NaivePeeking(alpha), looks, p, refute=False)
    assert naive > alpha
    # the upper sequence, by the mirror image
    seq = MixtureSequence(alpha)
    s = np.arange(401)
    up = seq.upper(s, 400)
    assert np.all(up >= s / 400) and np.all(np.diff(up) >= 0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="gaps must be"):
        MixtureSequence(0.01, gaps=[0.5, -1.0])
    with pytest.raises(ValueError, match="never_wrong"):
        MixtureSequence(0.01, never_wrong=1.0)
    with pytest.raises(ValueError, match="alpha"):
        MixtureSequence(1.5)
    seq = MixtureSequence(0.01)
    with pytest.raises(ValueError, match=r"\[0, n\]"):
        seq.lower(11, 10)
    with pytest.raises(TypeError, match="integers"):
        seq.lower(1.5, 10)
    with pytest.raises(ValueError, match="ratio must be"):
        geometric_looks(100, ratio=1.0)
    with pytest.raises(ValueError, match="max_n must be"):
        geometric_looks(0)
    with pytest.raises(ValueError, match="min_step must be"):
        geometric_looks(100, min_step=0)
    looks = geometric_looks(100_000)  # every 2%, at least 64 draws apart
    steps = np.diff(looks)[:-1]
    assert looks[0] == 128 and np.all(steps >= 64)
    assert np.all(looks[1:-1] == np.maximum(looks[:-2] + 64, np.ceil(looks[:-2] * 1.02)))
    assert geometric_looks(5).tolist() == [5] and geometric_looks(300, 100, 2.0).tolist() == [
        100, 200, 300
    ]  # fmt: skip

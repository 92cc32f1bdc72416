"""sequential_exact against brute force: every draw sequence of a short run enumerated."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pytest

from hierclass.smoothing.certificates.bounds import clopper_pearson_lower
from hierclass.smoothing.certificates.confidence_sequences import MixtureSequence
from hierclass.smoothing.sequential.exact import (
    certify_probability,
    fixed_n_certify_probability,
)
from hierclass.smoothing.sequential.sessions import CERTIFIED, REFUTED, UNDECIDED, decide


def _brute_force(p, sequence, looks, t, refute, final_alpha):
    """P(certified) by enumerating all 2^n draw sequences and applying the rule look by look
    (each look's decision read off a table of every count, not the boundaries the DP uses)."""
    n = int(looks[-1])
    codes = []
    for k, m in enumerate(looks):
        final = final_alpha if k == len(looks) - 1 else 0.0
        codes.append(decide(sequence, np.arange(m + 1), int(m), np.array([t]), final)[:, 0])
    paths = np.array(list(itertools.product((0, 1), repeat=n)), dtype=np.int64)
    s = np.cumsum(paths, axis=1)
    state = np.full(len(paths), UNDECIDED)
    for k, m in enumerate(looks):
        code = codes[k][s[:, m - 1]]
        open_ = state == UNDECIDED
        state = np.where(open_ & (code == CERTIFIED), CERTIFIED, state)
        if refute:
            state = np.where(open_ & (code == REFUTED), REFUTED, state)
    weight = p ** s[:, -1] * (1 - p) ** (n - s[:, -1])
    return float(weight[state == CERTIFIED].sum())


@pytest.mark.parametrize("refute", [True, False])
@pytest.mark.parametrize("final_alpha", [0.0, 0.3])
def test_certify_probability_equals_enumeration(refute, final_alpha):
    seq = MixtureSequence(0.3)  # a large alpha: decisions happen within 14 draws
    looks = np.array([3, 6, 9, 12, 14])
    seen = []
    for p in (0.55, 0.8, 0.95):
        for t in (0.5, 0.6, 0.75):
            exact = certify_probability(p, seq, looks, t, refute=refute, final_alpha=final_alpha)
            brute = _brute_force(p, seq, looks, t, refute, final_alpha)
            assert exact == pytest.approx(brute, abs=1e-12), (p, t)
            seen.append(exact)
    assert 0.1 < np.median(seen) < 0.9  # the rule decides both ways: the check has teeth


def test_fixed_n_probability_equals_the_sum_over_counts():
    n, alpha = 60, 0.05
    k = np.arange(n + 1)
    for p in (0.7, 0.9):
        for t in (0.5, 0.75, 0.85):
            cleared = clopper_pearson_lower(k, np.full(k.size, n), alpha) >= t
            weights = np.array([comb(n, int(j)) * p**j * (1 - p) ** (n - j) for j in k])
            brute = float(weights[cleared].sum())
            assert 0.0 < brute < 1.0 or t == 0.5
            assert fixed_n_certify_probability(p, n, alpha, t) == pytest.approx(brute, abs=1e-12)

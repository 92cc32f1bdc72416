import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from hierclass.smoothing.certificates.bounds import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    cohen_radius,
    margin_radius,
    top_two_pvalue,
)
from hierclass.smoothing.certificates.counts import ABSTAIN, certify_counts


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.2])
def test_clopper_pearson_matches_statsmodels(alpha):
    rng = np.random.default_rng(0)
    n = rng.integers(1, 5000, size=200)
    k = (rng.random(200) * (n + 1)).astype(int).clip(0, n)
    lo, hi = proportion_confint(k, n, alpha=2 * alpha, method="beta")
    np.testing.assert_allclose(clopper_pearson_lower(k, n, alpha), np.nan_to_num(lo), atol=1e-12)
    np.testing.assert_allclose(
        clopper_pearson_upper(k, n, alpha), np.nan_to_num(hi, nan=1.0), atol=1e-12
    )
    assert clopper_pearson_lower(int(k[3]), int(n[3]), alpha) == pytest.approx(lo[3])


def test_clopper_pearson_edges_and_coverage():
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0
    assert clopper_pearson_upper(10, 10, 0.05) == 1.0
    # exact one-sided lower bound for k = n: alpha ** (1 / n)
    assert clopper_pearson_lower(50, 50, 0.01) == pytest.approx(0.01 ** (1 / 50))
    # coverage: P(p < lower) <= alpha, checked exactly over the binomial distribution
    from scipy.stats import binom

    p, n, alpha = 0.8, 60, 0.05
    ks = np.arange(n + 1)
    miss = binom.pmf(ks, n, p)[clopper_pearson_lower(ks, np.full(n + 1, n), alpha) > p].sum()
    assert miss <= alpha


def test_radius_formulas():
    assert cohen_radius(0.9, 0.5) == pytest.approx(0.5 * norm.ppf(0.9))
    assert cohen_radius(0.5, 1.0) == 0.0
    assert cohen_radius(1.0, 1.0) == math.inf
    assert margin_radius(0.8, 0.2, 1.0) == pytest.approx(norm.ppf(0.8))
    assert margin_radius(1.0, 0.0, 1.0) == math.inf
    assert top_two_pvalue([10, 10, 0])[1] == 1.0


@pytest.mark.parametrize(
    ("call", "err"),
    [
        (lambda: clopper_pearson_lower(5, 10, 0.0), ValueError),
        (lambda: clopper_pearson_lower(5, 10, 1.0), ValueError),
        (lambda: clopper_pearson_lower(11, 10, 0.1), ValueError),
        (lambda: clopper_pearson_lower(1, 0, 0.1), ValueError),
        (lambda: cohen_radius(0.9, 0.0), ValueError),
        (lambda: cohen_radius(0.9, -1.0), ValueError),
        (lambda: certify_counts([1, 2], [3, 4], 0.1, 0.5, labels=[]), ValueError),
        (lambda: certify_counts([1, 2], [3, 4], 0.1, 0.5, labels=[0, 2]), ValueError),
        (lambda: certify_counts([1, 2], [3, 4], 0.1, 0.5, bound="ratio"), ValueError),
    ],
)
def test_bad_arguments(call, err):
    with pytest.raises(err):
        call()


def test_certify_counts_rules():
    # Cohen: abstain below 1/2
    c = certify_counts([60, 40], [520, 480], 0.001, 1.0)
    assert c.label == ABSTAIN and c.radius == 0.0
    # a one-label subset is a constant classifier
    c = certify_counts([60, 40], [520, 480], 0.001, 1.0, labels=[1])
    assert c.label == 1 and c.radius == math.inf
    # margin: alpha split across the |L| labels bounded
    cs, ce = np.array([1, 90, 5, 4]), np.array([10, 900, 60, 30])
    m = certify_counts(cs, ce, 0.01, 0.5, bound="margin")
    pa = clopper_pearson_lower(900, 1000, 0.01 / 4)
    pb = max(clopper_pearson_upper(k, 1000, 0.01 / 4) for k in (10, 60, 30))
    assert m.p_lower == pytest.approx(pa) and m.p_upper == pytest.approx(pb)
    assert m.radius == pytest.approx(0.25 * (norm.ppf(pa) - norm.ppf(pb)))


def test_margin_never_shrinks_with_the_subset():
    rng = np.random.default_rng(1)
    for _ in range(30):
        est = rng.multinomial(2000, rng.dirichlet(np.ones(6) * 0.5))
        sel = rng.multinomial(100, est / est.sum())
        top = int(np.argmax(sel))
        others = [c for c in range(6) if c != top]
        rng.shuffle(others)
        prev = -1.0
        for k in range(len(others), 0, -1):  # nested, shrinking subsets that keep the top label
            L = [top] + others[:k]
            r = certify_counts(sel, est, 0.01, 0.5, labels=L, bound="margin").radius
            assert r >= prev - 1e-12
            prev = r

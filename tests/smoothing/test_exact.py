"""Certified radii against exact radii of linear base classifiers (see helpers.py).

Soundness: a certified radius never exceeds the smoothed classifier's exact radius (each
check fails with probability <= alpha = 1e-3 by the theorem; seeds are fixed). Tightness: the
radius lies above the bound computed from the true probabilities with the count moved
5 binomial standard deviations the wrong way (a miss has probability < 1e-6), and that window
narrows as n grows.
"""

import math

import numpy as np
import pytest
from scipy.stats import norm

from hierclass import Smooth
from hierclass.smoothing.certificates.bounds import clopper_pearson_lower, clopper_pearson_upper

from .helpers import ProjectedLinear

SIGMA = 0.5
ALPHA = 1e-3


def _low_count(n, p):
    return int(max(0, math.floor(n * p - 5 * math.sqrt(n * p * (1 - p)))))


def _high_count(n, p):
    return int(min(n, math.ceil(n * p + 5 * math.sqrt(n * p * (1 - p)))))


@pytest.mark.parametrize("n", [1000, 20000])
def test_two_classes_radius_is_distance_to_boundary(n):
    model = ProjectedLinear([1.0, -1.0], [0.3, -0.3])  # boundary at t = -0.3
    smooth = Smooth(model, 2, SIGMA, seed=1)
    for i, t0 in enumerate([-1.4, -0.9, 0.0, 0.4, 0.9]):
        exact = abs(t0 + 0.3)
        label, radius = smooth.certify(model.point(t0), 100, n, ALPHA, 4096, index=i)
        assert label == (0 if t0 > -0.3 else 1)
        assert radius <= exact
        p = norm.cdf(exact / SIGMA)
        floor = SIGMA * norm.ppf(clopper_pearson_lower(_low_count(n, p), n, ALPHA))
        assert radius >= floor
        # the window shrinks with n: at n = 20000 the radius is within 0.15 of exact
        if n == 20000:
            assert exact - floor < 0.15


def _four_classes():
    # argmax over t: class 0 below -2/3, 1 on (-2/3, 0), 2 on (0, 2/3), 3 above 2/3
    return ProjectedLinear([-2.0, -0.5, 0.5, 2.0], [0.0, 1.0, 1.0, 0.0], seed=3)


@pytest.mark.parametrize("labels", [None, (0, 2, 3), (1, 3)])
def test_several_classes_and_subsets(labels):
    model = _four_classes()
    smooth = Smooth(model, 4, SIGMA, seed=2)
    n = 20000
    subsets = None if labels is None else [labels]
    for i, t0 in enumerate([-1.5, -0.3, 0.25, 1.2]):
        res = smooth.certify_detailed(
            model.point(t0), 100, n, ALPHA, 4096, index=i, subsets=subsets
        )
        if labels is None:
            certs = {"cohen": res.certificate}
        else:
            L = tuple(sorted(labels))
            certs = {m: res.subset_certificates[(m, L)] for m in ("cohen", "margin")}
        for bound, cert in certs.items():
            if cert is None:
                continue
            if bound == "cohen":  # base renormalisation: smooth argmax_{c in L} logits
                base, among = labels, labels
            else:  # restricted margin: argmax over L of the flat smoothed probabilities
                base, among = None, labels
            c0, exact = model.exact_radius(t0, SIGMA, base_labels=base, among=among)
            assert cert.radius <= exact + 1e-9, (bound, t0)
            p = model.probs(t0, SIGMA, base)
            if cert.label != -1:
                assert cert.label == c0
            # tightness window from the true probabilities
            L = list(range(4)) if among is None else list(among)
            top = L[int(np.argmax(p[L]))]
            if bound == "cohen":
                floor = SIGMA * norm.ppf(
                    max(0.5, clopper_pearson_lower(_low_count(n, p[top]), n, ALPHA))
                )
            else:
                a = ALPHA / len(L)
                pa = clopper_pearson_lower(_low_count(n, p[top]), n, a)
                pb = max(clopper_pearson_upper(_high_count(n, p[c]), n, a) for c in L if c != top)
                pb = min(pb, 1 - pa)
                floor = max(0.0, SIGMA / 2 * (norm.ppf(pa) - norm.ppf(pb)))
            assert cert.radius >= floor - 1e-9, (bound, t0)


def test_flat_margin_matches_theory_and_beats_nothing_it_should_not():
    model = _four_classes()
    smooth = Smooth(model, 4, SIGMA, seed=4)
    res = smooth.certify_detailed(model.point(0.3), 100, 20000, ALPHA, 4096, subsets=[(0, 1, 2, 3)])
    margin = res.subset_certificates[("margin", (0, 1, 2, 3))]
    _, exact = model.exact_radius(0.3, SIGMA)
    assert margin.radius <= exact
    assert res.certificate.radius <= exact

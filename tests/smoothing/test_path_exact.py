"""The hierarchy's certificate against exact answers.

Router: logits ``[-x0, x0]`` (class 1 iff ``x0 > 0``); the leaf of class 1 (labels 1, 2):
logits ``[-x1, x1]``; class 0 is the single label 0. Under isotropic Gaussian noise the two
coordinates are independent, so the smoothed router and leaf have exact radii ``t0`` and
``s0`` at ``x = (t0, s0, 0, 0)``, the smoothed hierarchy's exact radius is ``min(t0, s0)``
and its exact label 2, and the probability that a certificate claims more than the truth is
an exact sum over the independent binomial counts. The violation count over many inputs
must match that probability (a binomial interval), and that probability must be <= alpha.
"""

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from hierclass import Hierarchy, LabelPartition, Leaf, Router
from hierclass.nodes import SingletonLeaf
from hierclass.smoothing import certify_hierarchy
from hierclass.smoothing.analysis.hierarchy_results import level_certified_accuracy
from hierclass.smoothing.certificates.bounds import clopper_pearson_lower
from hierclass.smoothing.certificates.counts import ABSTAIN
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

SIGMA, T0, S0 = 1.0, 0.6, 0.4


def _tree():
    router = Router(lambda b: torch.stack([-b[:, 0], b[:, 0]], 1), LabelPartition([[0], [1, 2]]))
    leaf = Leaf(lambda b: torch.stack([-b[:, 1], b[:, 1]], 1), [1, 2])
    return Hierarchy(router, [SingletonLeaf(0), leaf])


def _lower(n, alpha):
    k = np.arange(n + 1)
    return clopper_pearson_lower(k, np.full(n + 1, n), alpha)


def _exact_violation_rates(n0, n, alpha):
    """(label violation, level-0 violation) probabilities of one certificate, exactly."""
    p_r, p_l = norm.cdf(T0 / SIGMA), norm.cdf(S0 / SIGMA)
    k = np.arange(n + 1)
    sel = lambda p: binom.sf((n0 - 1) // 2, n0, p)  # noqa: E731  n0 odd: the majority wins
    a1, b = sel(p_r), sel(p_l)
    half = _lower(n, alpha / 2)  # two smoothed nodes on the path to class 1
    pr, pl = binom.pmf(k, n, p_r), binom.pmf(k, n, p_l)
    pr_wrong, pl_wrong = binom.pmf(k, n, 1 - p_r), binom.pmf(k, n, 1 - p_l)
    radius = SIGMA * norm.ppf(np.clip(half, 1e-300, 1 - 1e-16))
    root_ok = half >= 0.5
    m = min(T0, S0)
    # path to class 1, leaf selects the right label: both certified and min radius > m
    joint = root_ok[:, None] & root_ok[None, :]
    too_big = np.minimum(radius[:, None], radius[None, :]) > m
    a_right = (pr[:, None] * pl[None, :])[joint & too_big].sum()
    # leaf selects the wrong label: a violation whenever root and leaf both certify
    a_wrong = pr[root_ok].sum() * pl_wrong[root_ok].sum()
    # path to class 0 (one smoothed node, full alpha): certifying it is a violation
    b_viol = pr_wrong[_lower(n, alpha) >= 0.5].sum()
    label = a1 * (b * a_right + (1 - b) * a_wrong) + (1 - a1) * b_viol
    level0 = a1 * pr[half > p_r].sum() + (1 - a1) * b_viol
    return label, level0


def _count(certs):
    label = level = 0
    for c in certs:
        label += c.label != ABSTAIN and (c.label != 2 or c.radius > min(T0, S0))
        level += bool(c.levels) and (c.levels[0].route != (1,) or c.levels[0].radius > T0)
    return label, level


def _check(trials, n0, n, alpha):
    q_label, q_level = _exact_violation_rates(n0, n, alpha)
    assert q_label <= alpha and q_level <= alpha  # the theorem
    assert q_label > 0.01 and q_level > 0.01  # the setting makes violations visible
    hs = HierarchicalSmooth(_tree(), SIGMA, seed=11)
    x = torch.tensor([T0, S0, 0.0, 0.0])
    certs = list(hs.certify_many([x] * trials, n0, n, alpha, 4096, indices=range(trials)))
    v_label, v_level = _count(certs)
    for v, q in ((v_label, q_label), (v_level, q_level)):
        lo, hi = binom.ppf(1e-4, trials, q), binom.isf(1e-4, trials, q)
        assert lo <= v <= hi, (v, q * trials)
    return certs


def test_violations_match_the_exact_binomial_rate():
    _check(trials=2000, n0=11, n=100, alpha=0.2)


@pytest.mark.slow
def test_violations_match_the_exact_binomial_rate_large():
    _check(trials=6000, n0=21, n=400, alpha=0.1)


def test_levels_outlive_a_smaller_leaf_radius_and_a_leaf_abstention():
    # the leaf sits on its boundary (s0 = 0): the label abstains, the class stays certified
    hs = HierarchicalSmooth(_tree(), SIGMA, seed=0)
    c = hs.certify(torch.tensor([1.5, 0.0, 0, 0]), 101, 2000, 0.001, 1024, index=0)
    assert c.label == ABSTAIN and c.radius == 0.0
    assert len(c.levels) == 1 and c.levels[0].route == (1,) and c.levels[0].labels == (1, 2)
    assert 1.0 < c.levels[0].radius <= 1.5
    # a leaf certified to a smaller radius: the level keeps the router's radius
    c2 = hs.certify(torch.tensor([1.5, 0.5, 0, 0]), 101, 2000, 0.001, 1024, index=0)
    assert c2.label == 2 and c2.radius == c2.nodes[1].radius < c2.levels[0].radius
    assert c2.levels[0].radius == c2.nodes[0].radius and c2.alpha_node == 0.0005


def test_level_accuracy_from_the_rows():
    x = torch.tensor([[1.5, 0.0, 0, 0], [1.5, 1.0, 0, 0], [-1.5, 0.0, 0, 0]])
    res = certify_hierarchy(
        _tree(), x, torch.tensor([2, 2, 0]), sigma=SIGMA, n0=101, n=2000, alpha=0.001,
        batch_size=1024, verbose=False,
    )  # fmt: skip
    levels = level_certified_accuracy(res.hierarchy)
    assert [lv["depth"] for lv in levels] == [0, "label"]
    assert levels[0]["ca"] == 1.0  # every class certified, the first label abstains
    assert levels[1]["ca"] == pytest.approx(2 / 3)
    # label 0 is a constant leaf under a smoothed router: its radius is the router's, finite
    assert (
        levels[1]["n_infinite"] == 0
        and 0 <= res.certificates[2].levels[0].radius - res.hierarchy["radius"][2] < 1e-6
    )
    assert res.table().splitlines()[0] == "| class | n | hierarchy CR | hierarchy CA |"

"""Sequential certification of a hierarchy's path: alpha split over its smoothed nodes.

Two linear nodes on orthogonal directions (a router and a leaf) have independent votes
under Gaussian noise; node ``i`` at distance ``d_i`` from its boundary has ``pA_i =
Phi(d_i / sigma)``, and the hierarchy's output changes exactly when one of them does, so its
exact radius is ``min(d_1, d_2)``. Counts are simulated from those exact probabilities. A
violation (the path certified at ``r > min(d_1, d_2)``) needs the nearer node to cross a
false threshold at some look; that node's crossing probability at level ``alpha / 2`` is
computed exactly, and bounds the expected count.
"""

import numpy as np
from scipy.stats import binom, norm

from hierclass.smoothing.certificates.confidence_sequences import MixtureSequence, geometric_looks
from hierclass.smoothing.hierarchy.sequential import combine_path, node_alpha
from hierclass.smoothing.sequential.exact import certify_probability
from hierclass.smoothing.sequential.sessions import (
    CERTIFIED,
    FINAL_SHARE,
    UNDECIDED,
    decide,
    radius_thresholds,
    update_decisions,
)

SIGMA = 0.5
ALPHA = 0.2
RADII = SIGMA * np.array([0.0, 0.5, 1.0, 1.5, 2.0])


def _simulate_path(p, sequence, looks, thresholds, rng, final_alpha):
    """p: [T, k] node probabilities -> path decisions [T, R] (library rule, path stopping)."""
    t, k = p.shape
    succ = np.zeros((t, k), np.int64)
    node = np.zeros((t, k, len(thresholds)), np.int8)
    active = np.ones(t, bool)
    prev = 0
    for k, n in enumerate(looks):
        succ += rng.binomial(int(n - prev), p)
        prev = int(n)
        idx = np.flatnonzero(active)
        final = final_alpha if k == len(looks) - 1 else 0.0
        new = decide(sequence, succ[idx], int(n), thresholds, final)
        node[idx] = update_decisions(node[idx], new)
        done = ~np.any(combine_path(node[idx]) == UNDECIDED, axis=1)
        active[idx[done]] = False
        if not active.any():
            break
    return combine_path(node)


def test_path_violations_bounded_by_the_split_alpha():
    grid = SIGMA * np.linspace(0.05, 2.5, 12)
    d = np.array([(a, b) for a in grid for b in grid])  # 144 pairs
    d = np.repeat(d, 15, axis=0)  # 2,160 trials
    p = norm.cdf(d / SIGMA)
    share = node_alpha(ALPHA, 2)  # each node's share, split like the library's
    sequence = MixtureSequence((1 - FINAL_SHARE) * share)
    final = FINAL_SHARE * share
    looks = geometric_looks(2000, first=32, ratio=1.1)
    thresholds = radius_thresholds(RADII, SIGMA)
    path = _simulate_path(p, sequence, looks, thresholds, np.random.default_rng(0), final)
    exact = d.min(axis=1)
    v = ((path == CERTIFIED) & (RADII[None, :] > exact[:, None])).any(axis=1)
    # the nearer node must cross the smallest false threshold at some look
    bound = {}
    for x in np.unique(exact):
        false = thresholds[RADII > x]
        bound[x] = (
            certify_probability(
                norm.cdf(x / SIGMA), sequence, looks, false.min(), refute=False, final_alpha=final
            )
            if false.size
            else 0.0
        )
    q = np.array([bound[x] for x in exact])
    count = int(v.sum())
    assert q.max() <= ALPHA / 2  # each node's sequence at its share alpha / 2
    assert count <= int(binom.ppf(1 - 1e-6, d.shape[0], ALPHA))
    assert count <= q.sum() + 5 * np.sqrt((q * (1 - q)).sum()) + 1, (count, q.sum())
    # the path does certify where both nodes are far from every threshold
    easy = d.min(axis=1) >= RADII[1] + 0.2
    assert easy.any() and np.mean(path[easy, 1] == CERTIFIED) > 0.9


def test_combine_path_rules():
    assert combine_path(np.zeros((0, 3), np.int8)).tolist() == [1, 1, 1]  # nothing smoothed
    assert combine_path(np.array([[1, -1, 0], [0, 1, 1]])).tolist() == [0, -1, 0]
    assert node_alpha(0.01, 0) == 0.01


def _axis_model(axis: int):
    import torch

    m = torch.nn.Linear(2, 2).eval()
    with torch.no_grad():
        m.weight.zero_()
        m.weight[0, axis], m.weight[1, axis] = 1.0, -1.0
        m.bias.zero_()
    return m


def test_hierarchy_sampler_against_exact_radius():
    """Router on x_0, leaves on x_1: the hierarchy's exact radius at (a, b) is min(|a|, |b|)."""
    import torch

    from hierclass import Hierarchy, LabelPartition, Leaf, Router
    from hierclass.smoothing.hierarchy.sequential import certify_hierarchy_radii_many
    from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

    p = LabelPartition([[0, 1], [2, 3]], num_labels=4)
    h = Hierarchy(
        Router(_axis_model(0), p), [Leaf(_axis_model(1), [0, 1]), Leaf(_axis_model(1), [2, 3])]
    )
    hs = HierarchicalSmooth(h, sigma=SIGMA, seed=2)
    points = [(0.6, 0.1), (0.1, 0.6), (-0.8, 0.9), (0.9, -0.4), (1.2, 1.1)]
    radii = [0.0, 0.25, 0.5, 1.0]
    xs = [torch.tensor(pt) for pt in points]
    out = sorted(
        certify_hierarchy_radii_many(
            hs, xs, radii, max_n=20_000, batch_size=2048, indices=range(5)
        ),
        key=lambda res: res.index,
    )
    for (a, b), res in zip(points, out):
        exact = min(abs(a), abs(b))
        expected = (0 if a > 0 else 2) + (0 if b > 0 else 1)
        assert res.num_smoothed == 2 and res.route == ((0,) if a > 0 else (1,))
        assert res.label == expected
        assert res.radius <= exact  # soundness (alpha = 1e-3 per input)
        assert res.n_samples <= 20_000
        if min(abs(exact - r) for r in radii) > 0.1:
            assert res.n_samples < 20_000  # decided early
            assert res.radius == max(r for r in radii if r <= exact)  # and decided right

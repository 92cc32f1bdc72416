"""Soundness defects of the hierarchical path and of the noise, each pinned by a test.

1. a rule reading an attacked modality is smoothed, not exempt;
2. calls without ``(seed, index)`` draw independent noise;
3. no two CPU noise blocks of a run coincide (torch's CPU generator keeps 32 bits of a seed);
4. (rounding of stored radii: ``test_rounding.py``);
5. a one-label leaf takes no share of alpha.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, norm
from torch import nn

from hierclass import Hierarchy, LabelPartition, Leaf, RenormalizedLeaf, Router, RuleRouter, Smooth
from hierclass.nodes import SingletonLeaf
from hierclass.smoothing.certificates.bounds import clopper_pearson_lower
from hierclass.smoothing.engine.sampling import STREAM_ESTIMATE, NoiseStream, block_seed
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

SIGMA = 0.25


def _sign_rule(b):
    return (b[:, 0] > 0).long()


# ---------------------------------------------------------------- 1. rules are base classifiers
def _rule_tree(key=None):
    p = LabelPartition([[0], [1]])
    return Hierarchy(RuleRouter(_sign_rule, p, input_key=key), [SingletonLeaf(0), SingletonLeaf(1)])


def test_rule_on_a_plain_tensor_is_smoothed():
    # rule x0 > 0 at x0 = 0.05: a shift of norm 0.06 flips it, so the radius must stay <= 0.05
    x = torch.tensor([0.05, 0.0])
    c = HierarchicalSmooth(_rule_tree(), SIGMA).certify(x, 100, 2000, 0.001, 512, index=0)
    assert c.nodes[0].kind != "clean" and c.nodes[0].certificate is not None
    assert c.radius <= 0.05
    # far from the boundary the rule certifies, to at most the exact radius (distance 0.5)
    far = HierarchicalSmooth(_rule_tree(), SIGMA).certify(
        torch.tensor([0.5, 0.0]), 100, 2000, 0.001, 512, index=0
    )
    assert far.label == 1 and 0.2 < far.radius <= 0.5 and far.alpha_node == 0.001


@pytest.mark.parametrize("perturbed_keys", [("meta",), None])
def test_rule_on_an_attacked_modality_is_smoothed(perturbed_keys):
    x = {"meta": torch.tensor([0.05, 0.0])}
    hs = HierarchicalSmooth(_rule_tree("meta"), SIGMA, perturbed_keys=perturbed_keys)
    c = hs.certify(x, 100, 2000, 0.001, 512, index=0)
    assert c.nodes[0].certificate is not None and c.radius <= 0.05


def test_rule_on_an_untouched_modality_and_singleton_leaves_are_infinite():
    x = {"meta": torch.tensor([0.05, 0.0]), "image": torch.rand(3)}
    hs = HierarchicalSmooth(_rule_tree("meta"), SIGMA, perturbed_keys=("image",))
    c = hs.certify(x, 10, 100, 0.001, 64, index=0)
    assert c.label == 1 and c.radius == math.inf
    assert [n.kind for n in c.nodes] == ["clean", "constant"]


# ---------------------------------------------------------------- 2. independent default noise
def _violation_probability(p, n0, n, alpha):
    """Exact P(certify claims more than the truth) for two classes with P(class 0) = p > 1/2.

    A violation: label 0 certified with ``pA_lower > p`` (radius above the exact one), or
    label 1 certified at all (the smoothed classifier predicts 0).
    """
    k = np.arange(n + 1)
    lower = clopper_pearson_lower(k, np.full(n + 1, n), alpha)
    sel0 = binom.sf((n0 - 1) // 2, n0, p)  # n0 odd: class 0 wins the selection
    v0 = binom.pmf(k, n, p)[lower > p].sum()
    v1 = binom.pmf(k, n, 1 - p)[lower >= 0.5].sum()
    return sel0 * v0 + (1 - sel0) * v1


def test_default_certify_calls_draw_independent_noise():
    # a loop of certify(x) with no index (Cohen's certify.py): violations must behave like
    # independent Bernoulli trials, not all-or-nothing (one shared noise draw for every call)
    sigma, t0, n0, n, alpha, calls = 1.0, 0.5, 11, 100, 0.2, 300
    f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # noqa: E731
    p = float(norm.cdf(t0 / sigma))
    exact = t0
    s = Smooth(f, 2, sigma, seed=0)
    torch.manual_seed(0)
    x = torch.tensor([t0, 0.0])
    violations = 0
    for _ in range(calls):
        label, radius = s.certify(x, n0, n, alpha, 128)
        violations += (label == 1) or (label == 0 and radius > exact)
    q = _violation_probability(p, n0, n, alpha)
    assert 0.05 < q < 0.2  # the setting makes violations frequent enough to see coupling
    lo, hi = binom.ppf(1e-4, calls, q), binom.isf(1e-4, calls, q)  # 2e-4 false alarm rate
    assert lo <= violations <= hi, (violations, q * calls)


def test_explicit_index_reproduces_and_default_does_not():
    f = nn.Linear(3, 4).eval()
    s = Smooth(f, 4, 1.0, seed=3)
    x = torch.zeros(3)
    a = s.sample_counts(x, 200, 64, index=9)
    assert np.array_equal(a, s.sample_counts(x, 200, 64, index=9))
    free = [tuple(s.sample_counts(x, 200, 64)) for _ in range(5)]
    assert len(set(free)) == 5
    results = list(s.certify_many([x, x], 10, 50, 0.1, 64))
    assert results[0].index != results[1].index and min(r.index for r in results) >= 2**62
    h = Hierarchy(
        Router(nn.Linear(3, 2).eval(), LabelPartition([[0, 1], [2, 3]])),
        [RenormalizedLeaf(f, [0, 1]), RenormalizedLeaf(f, [2, 3])],
    )
    hs = HierarchicalSmooth(h, 1.0, seed=3)
    pinned = [hs.certify(x, 10, 200, 0.1, 64, index=2).nodes[0].counts for _ in range(2)]
    assert np.array_equal(*pinned)
    free_h = {tuple(hs.certify(x, 10, 200, 0.1, 64).nodes[0].counts) for _ in range(4)}
    assert len(free_h) == 4


# ---------------------------------------------------------------- 3. no colliding noise blocks
def test_the_issue_pair_of_blocks_no_longer_collides():
    # index 3, blocks 13527 and 16725 of the estimation stream: seeds equal modulo 2**32, so
    # torch's CPU generator (32 bits of a seed) gave bit-identical noise
    s1, s2 = (block_seed(0, 3, STREAM_ESTIMATE, 0, b) for b in (13527, 16725))
    assert s1 != s2 and s1 % 2**32 == s2 % 2**32
    g = torch.Generator()
    assert torch.equal(torch.randn(8, generator=g.manual_seed(s1)),
                       torch.randn(8, generator=g.manual_seed(s2)))  # fmt: skip
    stream = NoiseStream(0, 3, STREAM_ESTIMATE, 0, (4,), 10**9, torch.Generator())
    a, b = stream.block_noise(13527), stream.block_noise(16725)
    assert not torch.equal(a, b)
    assert torch.equal(a, stream.block_noise(13527))  # random access is reproducible


def test_blocks_of_many_streams_are_distinct():
    g = torch.Generator()
    seen = set()
    for index in range(40):
        for stream in (0, 1, 2):
            ns = NoiseStream(0, index, stream, 0, (3,), 10**6, g)
            for block in range(0, 60000, 1200):  # far-apart blocks of long streams
                seen.add(tuple(ns.block_noise(block)[0].tolist()))
    assert len(seen) == 40 * 3 * 50


def test_stream_order_of_blocks_matches_random_access():
    ns = NoiseStream(1, 2, 1, 0, (5,), 10**6, torch.Generator())
    first = torch.cat(ns.take(3 * ns.block))
    ref = NoiseStream(1, 2, 1, 0, (5,), 10**6, torch.Generator())
    assert torch.equal(first, torch.cat([ref.block_noise(b) for b in range(3)]))


# ---------------------------------------------------------------- 5. constants take no alpha
def test_one_label_leaf_takes_no_share_of_alpha():
    torch.manual_seed(0)
    p = LabelPartition([[0, 1], [2]])
    flat = nn.Linear(4, 3).eval()
    router = Router(lambda b: torch.stack([-b[:, 0], b[:, 0]], 1), p)
    h = Hierarchy(router, [RenormalizedLeaf(flat, [0, 1]), Leaf(nn.Linear(4, 1).eval(), [2])])
    c = HierarchicalSmooth(h, SIGMA).certify(torch.tensor([1.0, 0, 0, 0]), 50, 500, 0.01, 256)
    assert c.route == (1,) and c.label == 2
    assert c.alpha_node == 0.01 and c.nodes[1].radius == math.inf
    assert c.radius == c.nodes[0].radius


def test_cpu_blocks_with_torch_sampler_and_numpy_fallback(monkeypatch):
    from hierclass.smoothing.engine import noise

    assert noise._MT_TEMPLATE is not None  # this torch's generator layout is the known one
    for template in (noise._MT_TEMPLATE, None):
        monkeypatch.setattr(noise, "_MT_TEMPLATE", template)
        ns = NoiseStream(0, 3, STREAM_ESTIMATE, 0, (4,), 10**9, torch.Generator())
        a, b = ns.block_noise(13527), ns.block_noise(16725)
        assert not torch.equal(a, b) and torch.equal(a, ns.block_noise(13527))
        z = torch.cat([ns.block_noise(k) for k in range(8)]).flatten().double()
        # standard normal: mean within 5 standard errors, variance within 5% (n = 32768)
        assert abs(float(z.mean())) < 5 / z.numel() ** 0.5 and abs(float(z.var()) - 1) < 0.05


# ---------------------------------------------------------------- 3b. modality noise ids
def test_modalities_whose_names_collide_are_refused_not_given_identical_noise():
    """A modality's noise id is its name's CRC-32: two names that collide would get the same
    noise (not the isotropic Gaussian the certificate assumes), so certification refuses them
    before drawing, and says which two names to rename."""
    import zlib

    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")  # a known CRC-32 collision

    def model(b):
        return torch.stack([b["plumless"][:, 0], b["buckeroo"][:, 0]], 1)

    x = {"plumless": torch.tensor([0.5, 0.0]), "buckeroo": torch.tensor([0.1, 0.0])}
    with pytest.raises(ValueError, match="'plumless' and 'buckeroo' share a noise id"):
        Smooth(model, 2, SIGMA).certify(x, 10, 100, 0.01, 64, index=0)
    # the same input with distinct names certifies, and the two modalities get distinct noise
    ok = {"image": x["plumless"], "audio": x["buckeroo"]}
    seen = {}

    def spy(b):
        seen["image"], seen["audio"] = b["image"] - ok["image"], b["audio"] - ok["audio"]
        return torch.stack([b["image"][:, 0], b["audio"][:, 0]], 1)

    Smooth(spy, 2, SIGMA).certify(ok, 10, 100, 0.01, 64, index=0)
    assert not torch.equal(seen["image"], seen["audio"])

import math

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, RuleRouter, Smooth
from hierclass.smoothing.certificates.counts import certify_counts
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.records.tsv import read_results
from hierclass.smoothing.runs.fixed_n import certify_hierarchy

from .helpers import ProjectedLinear

SIGMA = 0.5


def _tree(seed=0):
    torch.manual_seed(seed)
    p = LabelPartition({"low": [0, 1, 2], "high": [3, 4]}, num_labels=5)
    flat = nn.Linear(6, 5).eval()
    router = Router(nn.Linear(6, 2).eval(), p)
    h = Hierarchy(router, [RenormalizedLeaf(flat, [0, 1, 2]), RenormalizedLeaf(flat, [3, 4])])
    return h, flat


def test_path_minimum_alpha_split_and_same_samples_as_flat():
    h, flat = _tree()
    hs = HierarchicalSmooth(h, SIGMA, seed=5, flat=flat)
    x = torch.rand(6)
    c = hs.certify(x, 50, 800, 0.01, 128, index=3)
    assert len(c.nodes) == 2 and c.alpha_node == pytest.approx(0.005)
    assert c.radius == min(n.radius for n in c.nodes)
    # the flat baseline comes from the same draws as a plain Smooth run with the same seed
    ref = Smooth(flat, 5, SIGMA, seed=5).certify_detailed(
        x, 50, 800, 0.01, 128, index=3, subsets=[h.children[0].labels, h.children[1].labels]
    )
    np.testing.assert_array_equal(c.flat_counts[1], ref.counts)
    assert c.flat.radius == ref.certificate.radius
    # the leaf's certificate: Cohen on the renormalised votes at alpha / 2
    leaf = c.nodes[1]
    j = c.route[0]
    labels = h.children[j].labels
    np.testing.assert_array_equal(leaf.counts, ref.subset_counts[j])
    again = certify_counts(
        ref.subset_counts_select[j], ref.subset_counts[j], 0.005, SIGMA, labels=labels
    )
    assert leaf.radius == again.radius
    if c.label != -1:
        assert c.label in labels


def test_unperturbed_router_has_infinite_radius():
    torch.manual_seed(1)
    p = LabelPartition([[0, 1], [2, 3]])
    flat = nn.Linear(4, 4).eval()
    rule = RuleRouter(lambda m: (m[:, 0] > 0).long(), p, input_key="meta")
    h = Hierarchy(
        rule,
        [
            RenormalizedLeaf(flat, [0, 1], input_key="image"),
            RenormalizedLeaf(flat, [2, 3], input_key="image"),
        ],
    )
    x = {"image": torch.rand(4), "meta": torch.tensor([1.0])}
    hs = HierarchicalSmooth(h, SIGMA, perturbed_keys=("image",))
    c = hs.certify(x, 50, 500, 0.01, 128)
    assert c.route == (1,) and c.nodes[0].radius == math.inf
    assert c.alpha_node == 0.01 and c.radius == c.nodes[1].radius
    # a learned router on a modality the adversary cannot touch: also infinite, no noise
    lidar_router = Router(nn.Linear(3, 2).eval(), p, input_key="lidar")
    h2 = Hierarchy(lidar_router, list(h.children))
    x2 = {"image": torch.rand(4), "lidar": torch.rand(3)}
    c2 = HierarchicalSmooth(h2, SIGMA, perturbed_keys=("image",)).certify(x2, 50, 500, 0.01, 64)
    assert c2.nodes[0].radius == math.inf and c2.nodes[0].kind == "clean"


def test_all_clean_path_and_abstaining_router():
    p = LabelPartition([[0], [1, 2]])
    flat = nn.Linear(3, 3).eval()
    rule = RuleRouter(lambda m: torch.zeros(len(m), dtype=torch.long), p, input_key="meta")
    h = Hierarchy(rule, [None, RenormalizedLeaf(flat, [1, 2], input_key="image")])
    x = {"image": torch.rand(3), "meta": torch.zeros(1)}
    c = HierarchicalSmooth(h, SIGMA, perturbed_keys=("image",)).certify(x, 10, 100, 0.01, 64)
    assert c.label == 0 and c.radius == math.inf
    # a router that flips a coin under noise: the hierarchy abstains
    coin = Router(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), LabelPartition([[0, 1], [2]]))
    h3 = Hierarchy(coin, [RenormalizedLeaf(flat, [0, 1]), None])
    c3 = HierarchicalSmooth(h3, 1.0).certify(torch.zeros(3), 100, 2000, 0.001, 512)
    assert c3.label == -1 and c3.radius == 0.0 and c3.route == ()


def test_hierarchy_radius_below_exact():
    flat = ProjectedLinear([-2.0, -0.5, 0.5, 2.0], [0.0, 1.0, 1.0, 0.0], seed=3)
    router_model = ProjectedLinear([1.0, -1.0], [0.0, 0.0], seed=3)  # class 0 iff t > 0
    p = LabelPartition([[2, 3], [0, 1]])
    h = Hierarchy(
        Router(router_model, p), [RenormalizedLeaf(flat, [2, 3]), RenormalizedLeaf(flat, [0, 1])]
    )
    hs = HierarchicalSmooth(h, SIGMA, seed=1)
    for i, t0 in enumerate([-1.0, -0.4, 0.3, 1.1]):
        c = hs.certify(flat.point(t0), 100, 20000, 0.001, 4096, index=i)
        labels = (2, 3) if t0 > 0 else (0, 1)
        c_leaf, exact_leaf = flat.exact_radius(t0, SIGMA, base_labels=labels, among=labels)
        exact = min(abs(t0), exact_leaf)
        assert c.label == c_leaf
        assert 0 < c.radius <= exact


def test_certify_hierarchy_files_resume_and_table(tmp_path):
    h, flat = _tree(2)
    x, y = torch.rand(6, 6), torch.tensor([0, 3, 1, 4, 2, 3])
    kw = dict(sigma=SIGMA, n0=20, n=200, alpha=0.01, batch_size=64, flat=flat, verbose=False)
    ref = certify_hierarchy(h, x, y, **kw)
    out, fout = tmp_path / "h.tsv", tmp_path / "f.tsv"
    certify_hierarchy(h, x, y, indices=[0, 1], out=out, flat_out=fout, **kw)
    res = certify_hierarchy(h, x, y, out=out, flat_out=fout, **kw)
    assert res.hierarchy["idx"].tolist() == list(range(6))
    for col in ("predict", "radius", "route", "node_radii"):
        assert res.hierarchy[col].tolist() == ref.hierarchy[col].tolist()
    assert res.flat["radius"].tolist() == ref.flat["radius"].tolist()
    assert read_results(out)["eqclass"].tolist() == ["low", "high", "low", "high", "low", "high"]
    table = res.table()
    assert "| low | 3 |" in table and "| high | 3 |" in table
    tr = res.hierarchy["true_route"].tolist()
    assert tr == ["0", "1", "0", "1", "0", "1"]


def test_bad_hierarchy_arguments():
    h, flat = _tree()
    with pytest.raises(TypeError, match="Hierarchy"):
        HierarchicalSmooth(flat, SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        HierarchicalSmooth(h, 0.0)
    with pytest.raises(ValueError, match="leaf_certificate must be one of"):
        HierarchicalSmooth(h, SIGMA, leaf_certificate="ratio")
    with pytest.raises(ValueError, match="plain tensor"):
        HierarchicalSmooth(h, SIGMA, perturbed_keys=("image",)).certify(torch.rand(6), 5, 5)
    with pytest.raises(ValueError, match="outside"):
        certify_hierarchy(h, torch.rand(2, 6), torch.tensor([0, 7]), sigma=SIGMA, n0=5, n=5)
    bad = Hierarchy(Router(nn.Linear(6, 3).eval(), LabelPartition([[0], [1]])), [None, None])
    with pytest.raises(ValueError, match="shape"):
        HierarchicalSmooth(bad, SIGMA).certify(torch.rand(6), 5, 5, 0.1, 8)


def test_auto_batch_size_probes_the_modality_the_model_reads():
    # the router reads "depth" (3-d), the flat model and its leaves read "image" (6-d); the
    # probe must time the flat model on "image", though "depth" sorts first
    from hierclass.smoothing.engine import batch_size as bs_mod

    torch.manual_seed(0)
    p = LabelPartition({"low": [0, 1, 2], "high": [3, 4]}, num_labels=5)
    flat = nn.Linear(6, 5).eval()
    router = Router(nn.Linear(3, 2).eval(), p, input_key="depth")
    h = Hierarchy(
        router, [RenormalizedLeaf(flat, c, input_key="image") for c in ([0, 1, 2], [3, 4])]
    )
    x = {"depth": torch.rand(3), "image": torch.rand(6)}
    hs = HierarchicalSmooth(h, SIGMA, seed=1, flat=flat)
    assert hs.plan.keys_read()[0] == "depth"  # the key the probe used to take
    bs_mod.clear_cache()
    auto = hs.certify(x, 20, 200, 0.01, "auto", index=0)
    fixed = hs.certify(x, 20, 200, 0.01, 50, index=0)
    assert auto.route == fixed.route and auto.radius == fixed.radius
    bs_mod.clear_cache()

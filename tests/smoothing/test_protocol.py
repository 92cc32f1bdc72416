"""The certifier protocol: both smoothers implement it, and the certifiers need nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, RenormalizedLeaf, Router, Smooth
from hierclass.smoothing.engine.protocol import Prepared, Smoothed, open_run
from hierclass.smoothing.flat.iss import certify_iss_many
from hierclass.smoothing.hierarchy.sequential import certify_hierarchy_radii_many
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.sequential.sessions import certify_radii_many


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 4).eval()


class PublicOnly:
    """A user's smoother: it exposes the protocol (and ``num_classes``) and nothing private.

    Any private attribute a certifier reached for would raise ``AttributeError`` here.
    """

    def __init__(self, smooth: Smooth) -> None:
        self._inner = smooth
        self.sigma, self.device, self.num_classes = smooth.sigma, smooth.device, 4

    def prepare(self, x):
        return self._inner.prepare(x)

    def engine(self, batch_size, example, heads=None):
        return self._inner.engine(batch_size, example, heads)


def test_both_smoothers_satisfy_the_protocol():
    flat = _linear()
    p = LabelPartition([[0, 1], [2, 3]])
    h = Hierarchy(Router(nn.Linear(3, 2).eval(), p),
                  [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])  # fmt: skip
    assert isinstance(Smooth(flat, 4, sigma=0.5), Smoothed)
    assert isinstance(HierarchicalSmooth(h, sigma=0.5), Smoothed)
    assert isinstance(PublicOnly(Smooth(flat, 4, sigma=0.5)), Smoothed)


def test_flat_certifiers_run_on_the_protocol_alone():
    smooth = Smooth(_linear(), 4, sigma=0.5, seed=3)
    xs = [torch.rand(3) for _ in range(3)]
    mine = PublicOnly(smooth)
    seq = sorted(
        (r.index, r.label, r.n_samples, r.certified.tolist())
        for r, _ in certify_radii_many(mine, xs, [0.1, 0.5], max_n=4000, indices=[0, 1, 2])
    )
    ref = sorted(
        (r.index, r.label, r.n_samples, r.certified.tolist())
        for r, _ in certify_radii_many(smooth, xs, [0.1, 0.5], max_n=4000, indices=[0, 1, 2])
    )
    assert seq == ref and len(seq) == 3
    iss = [(r.label, r.radius) for r in certify_iss_many(mine, xs, max_n=4000, indices=[0, 1, 2])]
    iss_ref = [
        (r.label, r.radius) for r in certify_iss_many(smooth, xs, max_n=4000, indices=[0, 1, 2])
    ]
    assert iss == iss_ref


def test_open_run_prepares_the_first_input_at_the_call():
    smooth = Smooth(_linear(), 4, sigma=0.5)
    with pytest.raises(ValueError, match="must be finite"):
        open_run(smooth, [torch.full((3,), float("nan"))], None, 16)
    engine, pairs = open_run(smooth, [torch.zeros(3), torch.ones(3)], [4, 5], 16)
    got = list(pairs)
    assert engine.batch_size == 16 and [i for _, i in got] == [4, 5]
    assert all(isinstance(x, Prepared) and x.sampled is x.full for x, _ in got)


def _mixed_tree():
    """A clean router on an unperturbed modality over renormalised leaves on the image."""
    torch.manual_seed(1)
    flat = nn.Linear(6, 4).eval()
    p = LabelPartition([[0, 1], [2, 3]], num_labels=4)
    calls = []

    def clean(m):
        calls.append(len(m))
        return torch.stack([m[:, 0], -m[:, 0]], 1)

    router = Router(clean, p, input_key="meta")
    leaves = [RenormalizedLeaf(flat, c, input_key="image") for c in ([0, 1], [2, 3])]
    return Hierarchy(router, leaves), calls


def test_hierarchy_prepare_splits_what_the_noise_touches():
    h, _ = _mixed_tree()
    hs = HierarchicalSmooth(h, 0.25, perturbed_keys=("image",))
    x = {"meta": torch.tensor([1.0]), "image": torch.rand(6)}
    prepared = hs.prepare(x)
    assert set(prepared.full) == {"meta", "image"} and set(prepared.sampled) == {"image"}


def test_a_clean_node_runs_once_per_input():
    """The walk decides every node's output once; the certificate reuses it."""
    h, calls = _mixed_tree()
    hs = HierarchicalSmooth(h, 0.25, perturbed_keys=("image",))
    xs = [{"meta": torch.tensor([v]), "image": torch.rand(6)} for v in (1.0, -1.0, 2.0)]
    certs = list(hs.certify_many(xs, 10, 100, 0.01, 64, indices=[0, 1, 2]))
    assert calls == [1, 1, 1]
    assert [c.route for c in certs] == [(0,), (1,), (0,)]


def test_hierarchy_engine_refuses_a_tree_with_nothing_to_sample():
    h, _ = _mixed_tree()
    hs = HierarchicalSmooth(h, 0.25, perturbed_keys=("depth",))  # nothing reads "depth"
    x = {"meta": torch.tensor([1.0]), "image": torch.rand(6), "depth": torch.rand(2)}
    with pytest.raises(ValueError, match="nothing to sample"):
        hs.engine(64, hs.prepare(x))
    # certify itself needs no engine: every radius is infinite
    (cert,) = hs.certify_many([x], 10, 100, 0.01, 64, indices=[0])
    assert cert.radius == np.inf


def test_sequential_hierarchy_and_fixed_n_agree_on_the_path():
    h, _ = _mixed_tree()
    hs = HierarchicalSmooth(h, 0.25, perturbed_keys=("image",), seed=5)
    x = {"meta": torch.tensor([-1.0]), "image": torch.rand(6)}
    (seq,) = certify_hierarchy_radii_many(hs, [x], [0.0, 0.1], max_n=2000, indices=[0])
    fixed = hs.certify(x, n0=100, n=2000, alpha=0.001, index=0)  # the same selection draws
    assert seq.route == fixed.route == (1,) and seq.num_smoothed == fixed.num_smoothed == 1
    assert seq.nodes[0][1] == fixed.nodes[0].kind == "clean"
    assert seq.nodes[-1][2] == fixed.nodes[-1].choice  # the leaf picked the same output


def _count_alpha_checks(monkeypatch) -> list:
    """Record every alpha validation, wherever a module imported ``check_alpha``."""
    from hierclass.smoothing.certificates import bounds, counts, path
    from hierclass.smoothing.engine import prepare

    seen: list = []
    real = bounds.check_alpha

    def spy(alpha):
        seen.append(alpha)
        return real(alpha)

    for module in (bounds, counts, path, prepare):
        monkeypatch.setattr(module, "check_alpha", spy)
    return seen


def test_a_flat_run_validates_alpha_once(monkeypatch):
    """Not once per input, subset and bound: the boundary checks it, the kernels trust it."""
    seen = _count_alpha_checks(monkeypatch)
    smooth = Smooth(_linear(), 4, sigma=0.5)
    xs = [torch.rand(3) for _ in range(5)]
    subsets = [[0, 1], [2, 3], [1, 2, 3]]
    out = list(smooth.certify_many(xs, 10, 200, 0.01, 64, indices=range(5), subsets=subsets))
    assert len(out) == 5 and all(len(r.subset_certificates) == 6 for r in out)
    assert seen == [0.01]


def test_a_hierarchy_validates_alpha_once_per_path_not_per_node(monkeypatch):
    seen = _count_alpha_checks(monkeypatch)
    flat = _linear()
    p = LabelPartition([[0, 1], [2, 3]])
    h = Hierarchy(Router(nn.Linear(3, 2).eval(), p),
                  [RenormalizedLeaf(flat, [0, 1]), RenormalizedLeaf(flat, [2, 3])])  # fmt: skip
    hs = HierarchicalSmooth(h, sigma=0.5, flat=flat)
    out = list(hs.certify_many([torch.rand(3) for _ in range(4)], 10, 200, 0.01, 64))
    assert len(out) == 4 and all(len(c.nodes) == 2 for c in out)
    assert len(seen) == 1 + 4  # the run's budget, then each path's certify_path

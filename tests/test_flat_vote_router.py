"""A hierarchy from one flat model: the vote router, its shared forward pass, its certificates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hierclass import FlatVoteRouter, Hierarchy, LabelPartition, RenormalizedLeaf, Router
from hierclass.partition import NestedPartition
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

PARTITION = LabelPartition({"a": [0, 3], "b": [1, 2, 4], "c": [5]})


class ClassMax(nn.Module):
    """The vote router's scores computed the long way: a separate model (and forward pass)."""

    def __init__(self, flat: nn.Module, partition: LabelPartition):
        super().__init__()
        self.flat, self.partition = flat, partition

    def forward(self, x):
        logits = self.flat(x)
        return torch.stack([logits[:, list(c)].max(1).values for c in self.partition.classes], 1)


class Counting(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.rows = model, 0, 0

    def forward(self, x):
        self.calls += 1
        self.rows += x.shape[0]
        return self.model(x)


def _flat(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 6)).eval()


def test_scores_are_per_class_maxima_and_predictions_the_flat_argmax():
    flat = _flat()
    x = torch.randn(64, 4)
    router = FlatVoteRouter(flat, PARTITION)
    torch.testing.assert_close(router(x), ClassMax(flat, PARTITION)(x))
    h = Hierarchy.from_flat_model(flat, PARTITION)
    assert torch.equal(h.predict(x), flat(x).argmax(1))


def test_nested_vote_router_votes_over_its_own_labels_only():
    flat = nn.Identity()
    router = FlatVoteRouter(flat, NestedPartition({"p": [1, 4], "q": [2]}, labels=[1, 2, 4]))
    logits = torch.tensor([[9.0, 0.1, 0.5, 0.0, 0.2]])  # label 0 (outside the node) is largest
    assert router(logits).argmax(1).tolist() == [1]


def test_vote_router_and_leaves_share_one_forward_pass():
    counted = Counting(_flat()).eval()
    h = Hierarchy.from_flat_model(counted, PARTITION)
    hs = HierarchicalSmooth(h, sigma=0.5, flat=counted)
    assert len(hs.groups) == 1
    x = torch.randn(3, 4)
    list(hs.certify_many(list(x), n0=20, n=200, alpha=0.01, batch_size=100, indices=[0, 1, 2]))
    # 3 inputs x (20 + 200) draws, each drawn through the flat model exactly once
    assert counted.rows == 3 * 220


@pytest.mark.parametrize("leaf", ["renormalized", "margin"])
def test_certificates_equal_an_explicit_router_on_the_same_draws(leaf):
    flat = _flat(1)
    shared = Hierarchy.from_flat_model(flat, PARTITION)
    explicit = Hierarchy(
        Router(ClassMax(flat, PARTITION).eval(), PARTITION),
        [RenormalizedLeaf(flat, [0, 3]), RenormalizedLeaf(flat, [1, 2, 4]), None],
    )
    x = list(torch.randn(6, 4))
    kw = dict(n0=30, n=400, alpha=0.01, batch_size=128, indices=range(6))
    a, b = (
        list(HierarchicalSmooth(t, 0.5, flat=flat, leaf_certificate=leaf).certify_many(x, **kw))
        for t in (shared, explicit)
    )
    for ca, cb in zip(a, b):
        assert (ca.label, ca.route, ca.radius) == (cb.label, cb.route, cb.radius)
        assert [n.radius for n in ca.nodes] == [n.radius for n in cb.nodes]
        assert ca.flat.radius == cb.flat.radius


def test_router_votes_sum_the_flat_votes_per_class():
    flat = _flat(2)
    h = Hierarchy.from_flat_model(flat, PARTITION)
    hs = HierarchicalSmooth(h, sigma=0.5, flat=flat)
    (cert,) = hs.certify_many([torch.randn(4)], n0=30, n=500, alpha=0.01, indices=[7])
    flat_est = cert.flat_counts[1]
    root = hs.roles[()]
    pooled = [sum(int(flat_est[v]) for v in c) for c in PARTITION.classes]
    # the flat group's argmax head comes first in the head layout: slot 0 holds its votes
    assert pooled == hs.plan.node_counts(root, [flat_est]).tolist()


def test_from_flat_model_refuses_bad_arguments():
    flat = _flat()
    with pytest.raises(ValueError, match="router must be 'vote' or a model, got 'flat'"):
        Hierarchy.from_flat_model(flat, PARTITION, router="flat")
    with pytest.raises(TypeError, match="partition must be a LabelPartition or a shipped name"):
        Hierarchy.from_flat_model(flat, [[0, 1], [2]])
    with pytest.raises(ValueError, match="unknown partition 'cifar11'"):
        Hierarchy.from_flat_model(flat, "cifar11")
    with pytest.raises(ValueError, match=r"needs flat logits \[B, M\] with M > 5, got \[2, 3\]"):
        FlatVoteRouter(nn.Linear(4, 3), PARTITION)(torch.randn(2, 4))


def test_a_separate_router_model():
    flat = _flat()
    router_model = nn.Linear(4, 3)
    h = Hierarchy.from_flat_model(flat, PARTITION, router=router_model)
    assert type(h.root) is Router and h.root.model is router_model

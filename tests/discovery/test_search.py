"""Partition search: the margin/learnability trade-off, one set of samples, bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hierclass.discovery import (
    Candidate,
    LinearProbeRootScorer,
    PartitionSearch,
    propose_candidates,
    search_partitions,
)
from hierclass.partition import LabelPartition
from hierclass.smoothing import Smooth

# Labels 0/1 sit close together (each other's runner-up), as do 2/3; the pairs are far apart
# and mirrored (XOR-like), so no linear root separates {0, 2} from {1, 3}.
CENTRES = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.5, 3.0], [3.0, 3.0]])
NEAR = LabelPartition({"left": [0, 1], "right": [2, 3]})  # keeps runner-ups together
FAR = LabelPartition({"even": [0, 2], "odd": [1, 3]})  # separates each label from its runner-up


def model(batch: torch.Tensor) -> torch.Tensor:
    return -(torch.cdist(batch, CENTRES) ** 2)


def data(per_label: int, seed: int, spread: float = 0.15):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat_interleave(per_label)
    return CENTRES[y] + spread * torch.randn(y.numel(), 2, generator=gen), y


def probe() -> LinearProbeRootScorer:
    x_tr, y_tr = data(50, seed=1)
    x_va, y_va = data(50, seed=2)
    return LinearProbeRootScorer(x_tr, y_tr, x_va, y_va)


def test_gain_versus_root_learnability():
    x, y = data(6, seed=0)
    options = dict(num_labels=4, sigma=0.25, n0=32, n=256, batch_size=512)
    # without the root constraint, separating runner-ups wins
    free = search_partitions(model, [NEAR, FAR], x, y, root_scorer=probe(), **options)
    assert free[0].partition == FAR and free[0].acr_gain > 0.1
    # NEAR changes nothing: labels 2/3 never win on a 0/1 sample, so the leaf votes equal the
    # flat votes draw for draw and the radii are identical
    near = next(s for s in free if s.partition == NEAR)
    assert near.acr_gain == 0.0 and near.improved == near.worsened == 0
    # but a linear root cannot tell 0 from 1 well (FAR), while NEAR's root is trivial
    far = free[0]
    assert near.root_accuracy > 0.95 and far.root_accuracy < 0.9
    bound = search_partitions(
        model, [NEAR, FAR], x, y, root_scorer=probe(), min_root_accuracy=0.9, **options
    )
    assert bound[0].partition == NEAR and bound[0].feasible
    assert bound[1].partition == FAR and not bound[1].feasible and bound[1].rank == 2


def test_flat_radii_come_from_the_same_draws_as_cohen_certify():
    x, y = data(2, seed=3)
    search = PartitionSearch(model, 4, sigma=0.25, n0=32, n=256, batch_size=100, seed=5)
    search.fit([FAR], x, y)
    smooth = Smooth(model, 4, sigma=0.25, seed=5)
    for i in range(x.shape[0]):
        label, radius = smooth.certify(x[i], n0=32, n=256, alpha=0.001, batch_size=64, index=i)
        expected = min(radius, search.radius_cap_) if label == int(y[i]) else 0.0
        assert search.flat_radii_[i] == pytest.approx(expected)


def test_batch_size_does_not_change_scores():
    x, y = data(3, seed=4)
    a = PartitionSearch(model, 4, sigma=0.5, n0=16, n=128, batch_size=7).fit([FAR, NEAR], x, y)
    b = PartitionSearch(model, 4, sigma=0.5, n0=16, n=128, batch_size=999).fit([FAR, NEAR], x, y)
    assert [s.leaf_acr for s in a.scores_] == [s.leaf_acr for s in b.scores_]


def test_merging_failed_candidates_singletons_and_table():
    x, y = data(2, seed=5)
    single = LabelPartition([[0], [1, 2, 3]])
    cands = [
        Candidate("a", FAR),
        Candidate("b", LabelPartition({"x": [0, 2], "y": [1, 3]})),  # same classes as FAR
        Candidate("broken", None, error="silhouette too low"),
        single,
    ]
    search = PartitionSearch(model, 4, sigma=0.25, n0=16, n=128, batch_size=256).fit(cands, x, y)
    merged = [s for s in search.scores_ if s.partition is not None]
    assert len(merged) == 2
    assert any(s.sources == ("a", "b") for s in merged)
    assert search.scores_[-1].partition is None and search.scores_[-1].rank == 0
    one = next(s for s in merged if s.partition == single)
    # label 0's leaf is constant: counted at the cap
    assert np.all(one.leaf_radii[y.numpy() == 0] == search.radius_cap_)
    table = search.to_markdown()
    assert "failed: silhouette too low" in table and "NOT assessed" in table
    assert search.best_ is merged[0]


def test_search_errors():
    x, y = data(1, seed=0)
    with pytest.raises(ValueError, match="covers 3 labels, the model has 4"):
        PartitionSearch(model, 4, sigma=0.25).fit([LabelPartition([[0, 1], [2]])], x, y)
    with pytest.raises(ValueError, match="min_root_accuracy"):
        PartitionSearch(model, 4, sigma=0.25, min_root_accuracy=2.0).fit([FAR], x, y)
    with pytest.raises(TypeError, match="tensor"):
        PartitionSearch(model, 4, sigma=0.25).fit([FAR], x.numpy(), y)
    with pytest.raises(TypeError, match="Candidate or LabelPartition, got list"):
        PartitionSearch(model, 4, sigma=0.25).fit([[[0, 1], [2, 3]]], x, y)
    with pytest.raises(ValueError, match=r"root_scorer returned 1.5"):
        PartitionSearch(model, 4, sigma=0.25, n0=8, n=32, root_scorer=lambda p: 1.5).fit(
            [FAR], x, y
        )


def test_propose_candidates_from_layers_confusion_and_user():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    x, y = data(20, seed=6)
    confusion = np.full((4, 4), 1.0) + np.kron(np.eye(2), np.full((2, 2), 30.0))
    cands = propose_candidates(
        model=net,
        x=x,
        y=y,
        layers=["0", "1"],
        ks=(2, 4),
        confusion=confusion,
        user={"shape": FAR},
        min_separation=0.6,
    )
    sources = [c.source for c in cands]
    assert sources[:4] == [
        "kmeans(layer=0, k=2)",
        "kmeans(layer=0, k=4)",
        "kmeans(layer=1, k=2)",
        "kmeans(layer=1, k=4)",
    ]
    assert sources[4:] == ["confusion(k=2)", "confusion(k=4)", "user:shape"]
    assert cands[0].partition == LabelPartition([[0, 1], [2, 3]])
    # k = 4 splits the close pairs: their clusters overlap, silhouette < 0.6 -> kept as failed
    assert not cands[1].ok and "silhouette" in cands[1].error
    with pytest.raises(ValueError, match="need model, x and y"):
        propose_candidates(layers=["0"])

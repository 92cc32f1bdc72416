"""The report's entry points: data sets accepted, and the direct attack on a tree vs the worst case.

The analytic tree of ``test_hierarchical``: the root thresholds x0 at 0.5, each leaf x1 at 0.5
(slope 10), eps = 0.1 in l-inf, so a node is breakable exactly on the samples whose coordinate
lies within 0.1 of 0.5: 2 samples at the root, 4 at the leaves.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hierclass import Hierarchy, LabelPartition, Leaf, Router
from hierclass.attacks import PGD, evaluate_flat, evaluate_hierarchy

EPS = 0.1
WEAK_ROOT, WEAK_LEAF = 2, 4


def _threshold(coord: int, d: int = 4, k: float = 10.0) -> nn.Linear:
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, coord], lin.weight[1, coord] = -k, k
        lin.bias.copy_(torch.tensor([k * 0.5, -k * 0.5]))
    return lin


def _tree() -> Hierarchy:
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    return Hierarchy(
        Router(_threshold(0), p), [Leaf(_threshold(1), [0, 1]), Leaf(_threshold(1), [2, 3])]
    )


def _data():
    rows = [
        (0.1, 0.1), (0.1, 0.9), (0.9, 0.1), (0.9, 0.9),  # robust everywhere
        (0.1, 0.45), (0.1, 0.55), (0.1, 0.42), (0.9, 0.56),  # weak at a leaf
        (0.45, 0.1), (0.56, 0.9),  # weak at the root
    ]  # fmt: skip
    x = torch.full((len(rows), 4), 0.3)
    x[:, :2] = torch.tensor(rows)
    return x, 2 * (x[:, 0] > 0.5).long() + (x[:, 1] > 0.5).long()


def _pgd(model):
    return PGD(model, EPS, alpha=0.025, steps=10, random_start=False)


def _robust(h, x_adv, y) -> float:
    with torch.no_grad():
        return float((h.predict(x_adv) == y).float().mean())


def test_the_hard_tree_hides_the_route_and_the_surrogate_finds_it():
    h, (x, y) = _tree(), _data()
    n = len(y)
    # the tree's own output: zeros outside the chosen class, so no gradient towards another
    # route; an attack on it (the way torchattacks sees a tree) breaks only the leaf-weak rows
    hard = _robust(h, _pgd(lambda z: h(z))(x, y), y)
    assert hard == pytest.approx(1 - WEAK_LEAF / n)
    # PGD(h) follows the soft surrogate and asks the real tree: it misroutes the root-weak rows
    direct = _robust(h, _pgd(h)(x, y), y)
    assert direct == pytest.approx(1 - (WEAK_LEAF + WEAK_ROOT) / n)
    report = evaluate_hierarchy(h, x, y, _pgd)
    assert report.adversarial_accuracy <= direct


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_worst_case_finds_at_least_what_the_direct_attack_finds(seed):
    # a small learned tree: route and leaves are MLPs; every sample starts correct
    torch.manual_seed(seed)
    d = 8
    p = LabelPartition([[0, 1, 2], [3, 4]])

    def mlp(k):
        return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, k))

    h = Hierarchy(Router(mlp(2), p), [Leaf(mlp(3), [0, 1, 2]), Leaf(mlp(2), [3, 4])])
    x = torch.rand(200, d)
    y = h.predict(x)
    direct_ok = h.predict(_pgd(h)(x, y)) == y
    report = evaluate_hierarchy(h, x, y, _pgd)
    assert 0.0 < report.adversarial_accuracy < 1.0  # the attacks bite, not everywhere
    assert report.adversarial_accuracy <= float(direct_ok.float().mean())
    # the joint attack of the report is the direct attack on the same samples
    assert report.joint_accuracy == pytest.approx(float(direct_ok.float().mean()))


@pytest.mark.parametrize("wrap", ["dataset", "loader"])
def test_data_sets_give_the_tensor_report(wrap):
    h, (x, y) = _tree(), _data()
    data = TensorDataset(x, y)
    if wrap == "loader":
        data = DataLoader(data, batch_size=3)
    from_data = evaluate_hierarchy(h, data, make_attack=_pgd)
    assert from_data == evaluate_hierarchy(h, x, y, _pgd)
    flat = nn.Linear(4, 4)
    assert evaluate_flat(flat, data, make_attack=_pgd) == evaluate_flat(flat, x, y, _pgd)

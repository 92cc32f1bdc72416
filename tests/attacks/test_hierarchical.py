"""Hierarchical attacks on a hand-built tree whose robust samples are known analytically.

Inputs are 4-d in [0, 1]. The root routes on x0 (class "low" = labels {0, 1} if x0 < 0.5),
each leaf decides on x1 (local label 1 if x1 > 0.5), both with slope k = 10 and no other
inputs. With eps = 0.1 (l-inf), a node is breakable exactly on samples whose coordinate is
within 0.1 of 0.5; all other coordinates have zero weight, so nothing else moves.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hierclass import Hierarchy, LabelPartition, Leaf, Router, RuleRouter
from hierclass.attacks import (
    PGD,
    budgeted_attack,
    evaluate_flat,
    evaluate_hierarchy,
    joint_attack,
    node_attacks,
    robustness_table,
    sequential_attack,
)
from hierclass.attacks.threat_model import is_attackable

EPS = 0.1


def _threshold(coord: int, d: int = 4, k: float = 10.0) -> nn.Linear:
    """Two logits (-k (x_c - 0.5), k (x_c - 0.5)): picks 1 iff x_c > 0.5."""
    lin = nn.Linear(d, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, coord], lin.weight[1, coord] = -k, k
        lin.bias.copy_(torch.tensor([k * 0.5, -k * 0.5]))
    return lin


def _tree(root_key=None, leaf_key=None, d=4) -> Hierarchy:
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    return Hierarchy(
        Router(_threshold(0, d), p, input_key=root_key),
        [Leaf(_threshold(1, d), [0, 1], input_key=leaf_key),
         Leaf(_threshold(1, d), [2, 3], input_key=leaf_key)],
    )  # fmt: skip


def _data():
    """x0 far from 0.5 except in the 'weak root' rows; x1 weak in 'weak leaf' rows."""
    # (x0, x1): per row, label = 2*(x0 > .5) + (x1 > .5)
    rows = [
        (0.1, 0.1), (0.1, 0.9), (0.9, 0.1), (0.9, 0.9),  # robust everywhere
        (0.1, 0.45), (0.1, 0.55), (0.1, 0.42),  # weak at leaf "low" (3)
        (0.9, 0.56),  # weak at leaf "high" (1)
        (0.45, 0.1), (0.56, 0.9),  # weak at the root (2)
    ]  # fmt: skip
    x = torch.full((len(rows), 4), 0.3)
    x[:, :2] = torch.tensor(rows)
    y = 2 * (x[:, 0] > 0.5).long() + (x[:, 1] > 0.5).long()
    return x, y


def _pgd(model):
    return PGD(model, EPS, step_size=0.025, steps=10, random_start=False)


WEAK_LOW, WEAK_HIGH, WEAK_ROOT = [4, 5, 6], [7], [8, 9]


def _small_learned_tree():
    """A random 2-level tree (MLP router, linear leaves) over 6 features, and 64 inputs."""
    torch.manual_seed(0)
    d = 6
    p = LabelPartition([[0, 1, 2], [3, 4]])
    h = Hierarchy(
        Router(nn.Sequential(nn.Linear(d, 8), nn.Tanh(), nn.Linear(8, 2)), p),
        [Leaf(nn.Linear(d, 3), [0, 1, 2]), Leaf(nn.Linear(d, 2), [3, 4])],
    )
    return h, p, torch.rand(64, d)


def test_sequential_breaks_exactly_the_analytically_weak_samples():
    x, y = _data()
    h = _tree()
    res = sequential_attack(h, x, y, _pgd)
    assert res.natural.all()
    broken = (~res.robust).nonzero().flatten().tolist()
    assert broken == sorted(WEAK_LOW + WEAK_HIGH + WEAK_ROOT)
    # The returned inputs really fool the hierarchy and stay in the threat model.
    assert (h.predict(res.x_adv)[~res.robust] != y[~res.robust]).all()
    assert (res.x_adv - x).abs().max() <= EPS + 1e-6
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.equal(res.x_adv[res.robust], x[res.robust])


def test_budgeted_picks_the_node_that_hurts_most():
    x, y = _data()
    h = _tree()
    per_node = node_attacks(h, x, y, _pgd)
    n = len(y)
    assert per_node[()].accuracy == pytest.approx(1 - len(WEAK_ROOT) / n)
    assert per_node[(0,)].accuracy == pytest.approx(1 - len(WEAK_LOW) / n)
    assert per_node[(1,)].accuracy == pytest.approx(1 - len(WEAK_HIGH) / n)
    path, res = budgeted_attack(h, x, y, _pgd)
    assert path == (0,) and res.accuracy == pytest.approx(1 - len(WEAK_LOW) / n)


def test_report_matches_analytic_table_and_is_consistent():
    x, y = _data()
    h = _tree()
    h.train()  # the report must evaluate in eval mode and hand the mode back
    r = evaluate_hierarchy(h, x, y, _pgd)
    assert h.root.training and all(node.training for _, node in h.nodes())
    n = len(y)
    assert r.natural_accuracy == 1.0
    assert r.adversarial_accuracy == pytest.approx(1 - 6 / n)
    assert r.sequential_accuracy == pytest.approx(1 - 6 / n)
    assert r.budgeted_accuracy == pytest.approx(1 - 3 / n)
    assert r.budgeted_node == "leaf low"
    assert r.node_accuracy == pytest.approx(
        {"root": 1 - 2 / n, "leaf low": 1 - 3 / n, "leaf high": 1 - 1 / n}
    )
    # Joint PGD on the soft surrogate also finds exactly the weak samples here.
    assert r.joint_accuracy == pytest.approx(1 - 6 / n)
    table = robustness_table({"Hierarchy": r})
    assert table.splitlines()[2] == "| Hierarchy | 100.00 | 40.00 | 70.00 | leaf low |"


def test_sequential_report_equals_survivor_only_sequential_attack():
    h, p, x = _small_learned_tree()
    y = h.predict(x)  # every sample naturally correct, so every sample gets attacked
    y[:5] = (y[:5] + 1) % 5  # ... except a few naturally wrong ones
    seq = sequential_attack(h, x, y, _pgd)
    report = evaluate_hierarchy(h, x, y, _pgd, joint=False)
    assert report.sequential_accuracy == pytest.approx(seq.accuracy)
    assert not seq.robust[:5].any()
    assert math.isnan(report.joint_accuracy)
    assert 0 < seq.accuracy < report.natural_accuracy  # the attack bites but not everywhere


def test_joint_attack_stays_in_ball_and_fools_the_tree():
    torch.manual_seed(1)
    d = 6
    p = LabelPartition([[0, 1, 2], [3, 4]])
    h = Hierarchy(
        Router(nn.Linear(d, 2), p),
        [Leaf(nn.Linear(d, 3), [0, 1, 2]), Leaf(nn.Linear(d, 2), [3, 4])],
    )
    x = torch.rand(64, d)
    y = h.predict(x)
    res = joint_attack(h, x, y, lambda m: PGD(m, 0.2, 0.05, 10, seed=0))
    assert res.natural.all() and res.accuracy < 0.9
    assert (h.predict(res.x_adv)[~res.robust] != y[~res.robust]).all()
    assert (res.x_adv - x).abs().max() <= 0.2 + 1e-6


def test_nested_hierarchy_attacks_every_level():
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    inner = Hierarchy(Router(_threshold(1), p.restrict("high", {"a": [2], "b": [3]})), [None, None])
    h = Hierarchy(Router(_threshold(0), p), [Leaf(_threshold(1), [0, 1]), inner])
    x, y = _data()
    r = evaluate_hierarchy(h, x, y, _pgd)
    # The inner router plays the "high" leaf's role; singleton leaves are never attacked.
    assert set(r.node_accuracy) == {"root", "leaf low", "router high"}
    assert r.adversarial_accuracy == pytest.approx(1 - 6 / len(y))
    assert sequential_attack(h, x, y, _pgd).accuracy == pytest.approx(1 - 6 / len(y))


def test_unperturbable_modality_is_never_attacked():
    x, y = _data()
    batch = {"image": x, "lidar": x.clone()}
    # The root reads lidar, which the threat model says the adversary cannot touch.
    h = _tree(root_key="lidar", leaf_key="image")
    assert not is_attackable(h.root, batch, ["image"])
    r = evaluate_hierarchy(h, batch, y, _pgd, perturbable=["image"])
    assert "root" not in r.node_accuracy
    assert r.adversarial_accuracy == pytest.approx(1 - 4 / len(y))  # weak-root rows survive
    seq = sequential_attack(h, batch, y, _pgd, perturbable=["image"])
    assert torch.equal(seq.x_adv["lidar"], batch["lidar"])
    # Once lidar is perturbable the root falls too (joint off: two modalities).
    r2 = evaluate_hierarchy(h, batch, y, _pgd, perturbable=["image", "lidar"], joint=False)
    assert r2.adversarial_accuracy == pytest.approx(1 - 6 / len(y))
    with pytest.raises(ValueError, match="one modality"):
        joint_attack(h, batch, y, _pgd, perturbable=["image", "lidar"])


def test_rule_router_is_attacked_only_when_it_reads_a_perturbable_modality():
    x, y = _data()
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    rule = RuleRouter(lambda meta: (meta[:, 0] > 0.5).long(), p, input_key="meta")
    h = Hierarchy(rule, [Leaf(_threshold(1), [0, 1], input_key="image"),
                         Leaf(_threshold(1), [2, 3], input_key="image")])  # fmt: skip
    batch = {"image": x, "meta": x[:, :1].clone()}
    # Off the threat model, the rule cannot be moved: only the leaves are attacked.
    assert not is_attackable(rule, batch, ["image"])
    r = evaluate_hierarchy(h, batch, y, _pgd, perturbable=["image"])
    assert set(r.node_accuracy) == {"leaf low", "leaf high"}
    assert r.adversarial_accuracy == pytest.approx(1 - 4 / len(y))
    # Deterministic is not robust: a rule that reads an attacked modality is attacked too.
    assert is_attackable(rule, batch, ["image", "meta"])


def test_flat_report_budget_equals_adversarial():
    x, y = _data()
    flat = nn.Linear(4, 4)
    with torch.no_grad():  # the same decision rule as the tree, as one flat linear model
        flat.weight.zero_()
        flat.weight[:, 0] = torch.tensor([-10.0, -10.0, 10.0, 10.0])
        flat.weight[:, 1] = torch.tensor([-10.0, 10.0, -10.0, 10.0])
        flat.bias.copy_(torch.tensor([10.0, 0.0, 0.0, -10.0]))
    r = evaluate_flat(flat, x, y, _pgd, batch_size=3)
    assert r.natural_accuracy == 1.0
    assert r.budgeted_accuracy == r.adversarial_accuracy == pytest.approx(1 - 6 / len(y))
    assert r.budgeted_node is None


def test_bad_input_raises():
    x, y = _data()
    h = _tree()
    with pytest.raises(ValueError, match="perturbable"):
        evaluate_hierarchy(h, {"image": x}, y, _pgd)
    with pytest.raises(ValueError, match="plain tensor"):
        evaluate_hierarchy(h, x, y, _pgd, perturbable=["image"])
    with pytest.raises(ValueError, match="not in the batch"):
        sequential_attack(_tree(leaf_key="image", root_key="image"), {"image": x}, y, _pgd,
                          perturbable=["lidar"])  # fmt: skip
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sequential_attack(h, x + 1, y, _pgd)
    with pytest.raises(ValueError, match="outside"):
        sequential_attack(h, x, y + 4, _pgd)
    with pytest.raises(ValueError, match="shape"):
        node_attacks(h, x, y[:3], _pgd)
    with pytest.raises(TypeError, match="make_attack"):
        evaluate_hierarchy(h, x, y, "pgd")


@pytest.mark.parametrize("dict_input", [False, True])
def test_early_stop_pgd_gives_the_same_report(dict_input):
    # early_stop runs a node's model on sub-batches; for dict inputs the node reads only its
    # own modality, so the other modalities' full batch riding along does not matter
    x, y = _data()
    h = _tree(root_key="image", leaf_key="image") if dict_input else _tree()
    batch = {"image": x, "lidar": x.clone()} if dict_input else x
    kw = dict(perturbable=["image"]) if dict_input else {}

    def early(model):
        return PGD(model, EPS, step_size=0.025, steps=10, random_start=False, early_stop=True)

    # node attacks: a fooled node fools the hierarchy, so stopping there loses nothing
    full = evaluate_hierarchy(h, batch, y, _pgd, joint=False, **kw)
    fast = evaluate_hierarchy(h, batch, y, early, joint=False, **kw)
    assert fast.adversarial_accuracy == full.adversarial_accuracy == pytest.approx(1 - 6 / 10)
    assert fast.node_accuracy == full.node_accuracy
    # the joint attack judges the hard tree, not the soft surrogate PGD would stop on
    with pytest.raises(ValueError, match="joint attack cannot use an attack with early_stop"):
        evaluate_hierarchy(h, batch, y, early, **kw)


class _RowDropper:
    """An attack that calls its model on the first half of the batch only."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x, y):
        self.model(x[: x.shape[0] // 2])
        return x


def test_joint_attack_tied_to_other_modalities_rejects_row_dropping_attacks():
    x, y = _data()
    batch = {"image": x, "lidar": x.clone()}
    h = _tree(root_key="lidar", leaf_key="image")  # the surrogate needs lidar's rows too
    with pytest.raises(ValueError, match="needs all .* rows of its batch"):
        joint_attack(h, batch, y, _RowDropper, perturbable=["image"])
    # an attack that keeps the batch whole runs
    assert joint_attack(h, batch, y, _pgd, perturbable=["image"]).robust.shape == y.shape


def test_conv_nodes_are_attacked_channels_last_with_the_same_outcome():
    from hierclass.models import SmallCNN

    torch.manual_seed(0)
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    h = Hierarchy(
        Router(SmallCNN(2, image_size=8).eval(), p),
        [Leaf(SmallCNN(2, image_size=8).eval(), c) for c in ([0, 1], [2, 3])],
    )
    x = torch.rand(40, 1, 8, 8)
    y = h.predict(x)  # every sample starts correct, so every one is attacked

    def attack(channels_last):
        def make(model):
            assert isinstance(model, nn.Module)  # so PGD can run it channels-last
            return PGD(model, 0.3, 0.1, 5, random_start=False, channels_last=channels_last)

        return make

    plain = evaluate_hierarchy(h, x, y, attack(False))
    fast = evaluate_hierarchy(h, x, y, attack(True))
    assert 0.0 < plain.adversarial_accuracy < 1.0
    assert fast.adversarial_accuracy == plain.adversarial_accuracy
    assert fast.node_accuracy == plain.node_accuracy


def test_sequential_union_equals_attacking_the_survivors_by_hand():
    # sequential_attack is computed as the union of single-node attacks; the paper's adversary
    # attacks the root, then each leaf on the samples the root attack left correct
    h, p, x = _small_learned_tree()
    y = h.predict(x)
    y[:5] = (y[:5] + 1) % 5
    survivors = h.predict(x) == y
    rows = survivors.nonzero().flatten()
    coarse = torch.as_tensor(p.class_of(y[rows]))
    x_root = _pgd(h.root)(x[rows], coarse)
    survivors[rows[h.predict(x_root) != y[rows]]] = False
    for leaf in h.children:
        labels = torch.tensor(leaf.labels)
        rows = (survivors & torch.isin(y, labels)).nonzero().flatten()
        if rows.numel() == 0:
            continue
        local = (y[rows, None] == labels).float().argmax(1)
        x_leaf = _pgd(leaf)(x[rows], local)
        survivors[rows[h.predict(x_leaf) != y[rows]]] = False
    seq = sequential_attack(h, x, y, _pgd)
    assert 0 < int(survivors.sum()) < int((h.predict(x) == y).sum())  # both stages bite
    assert torch.equal(seq.robust, survivors)


def test_joint_attack_on_images_tied_to_an_unperturbed_modality_runs_channels_last():
    # the surrogate needs all rows of its batch (the root reads "meta"); the channels-last
    # probe must not call it on one row
    from hierclass.models import SmallCNN

    torch.manual_seed(0)
    p = LabelPartition({"low": [0, 1], "high": [2, 3]})
    h = Hierarchy(
        Router(nn.Linear(2, 2), p, input_key="meta"),
        [Leaf(SmallCNN(2, image_size=8).eval(), c, input_key="image") for c in ([0, 1], [2, 3])],
    )
    batch = {"image": torch.rand(12, 1, 8, 8), "meta": torch.rand(12, 2)}
    y = h.predict(batch)
    res = joint_attack(h, batch, y, lambda m: PGD(m, 0.3, 0.1, 3, seed=0), perturbable=["image"])
    assert res.robust.shape == (12,) and not res.robust.all()
    assert torch.equal(res.x_adv["meta"], batch["meta"])


# ---------------------------------------------------------------- PGD(h) vs the worst case
def _robust(h, x_adv, y) -> float:
    with torch.no_grad():
        return float((h.predict(x_adv) == y).float().mean())


def test_the_hard_tree_hides_the_route_and_the_surrogate_finds_it():
    h, (x, y) = _tree(), _data()
    n = len(y)
    # the tree's own output: zeros outside the chosen class, so no gradient towards another
    # route; an attack on it (the way torchattacks sees a tree) breaks only the leaf-weak rows
    hard = _robust(h, _pgd(lambda z: h(z))(x, y), y)
    assert hard == pytest.approx(1 - len(WEAK_LOW + WEAK_HIGH) / n)
    # PGD(h) follows the soft surrogate and asks the real tree: it misroutes the root-weak rows
    direct = _robust(h, _pgd(h)(x, y), y)
    assert direct == pytest.approx(1 - len(WEAK_LOW + WEAK_HIGH + WEAK_ROOT) / n)
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

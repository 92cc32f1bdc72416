"""PGD on a hierarchy: no host synchronisation per step, the same verdicts and the same errors.

A host sync on CPU is any read of a tensor's value into Python (``bool``, ``int``, ``float``,
``.item()``, ``.tolist()``) or a shape that depends on values (``nonzero``); counting those
calls tells whether the step loop syncs: the count must not grow with the number of steps.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hierclass import Hierarchy, LabelPartition, Leaf, Router, RuleRouter
from hierclass._utils.deferred import check_or_defer, deferred_checks
from hierclass.attacks import PGD
from hierclass.attacks._surrogate import TreeSurrogate
from hierclass.inputs import check_logits

_READS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "nonzero")


@pytest.fixture
def count_syncs(monkeypatch):
    """Counts every read of a tensor's value into Python while the test runs."""
    calls = {"n": 0}
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def counted(*args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def _tree(d: int = 6, input_range=None) -> Hierarchy:
    torch.manual_seed(0)
    p = LabelPartition({"a": [0, 1, 2], "b": [3, 4]})
    inner = Hierarchy(
        Router(nn.Linear(d, 2), LabelPartition({"x": [0], "y": [1, 2]})),
        [None, Leaf(nn.Linear(d, 2), [1, 2])],
    )
    return Hierarchy(Router(nn.Linear(d, 2), p), [inner, Leaf(nn.Linear(d, 2), [3, 4])],
                     input_range=input_range)  # fmt: skip


def _syncs_of(count_syncs, h, x, y, steps: int, **kw) -> int:
    attack = PGD(h, eps=0.2, step_size=0.05, steps=steps, seed=0, **kw)
    before = count_syncs["n"]
    attack(x, y)
    return count_syncs["n"] - before


@pytest.mark.parametrize("restarts", [1, 3])
def test_pgd_on_a_hierarchy_does_not_sync_per_step(count_syncs, restarts) -> None:
    h = _tree()
    x, y = torch.rand(16, 6), torch.randint(0, 5, (16,))
    few = _syncs_of(count_syncs, h, x, y, steps=2, restarts=restarts)
    many = _syncs_of(count_syncs, h, x, y, steps=12, restarts=restarts)
    assert many == few  # the boundary syncs (label checks, the deferred verdicts), no more


def test_the_verdict_from_the_pass_is_predicts() -> None:
    h = _tree()
    x = torch.rand(64, 6)
    probs, labels = h.soft_forward_and_predict(x)
    assert torch.equal(labels, h.predict(x))
    assert torch.allclose(probs, h.soft_forward(x))


def test_pgd_on_a_hierarchy_returns_what_judging_with_predict_returns(monkeypatch) -> None:
    h = _tree()
    x, y = torch.rand(32, 6), torch.randint(0, 5, (32,))
    fast = PGD(h, eps=0.2, step_size=0.05, steps=10, seed=0, restarts=2)(x, y)
    # the judge as it was: a second, routed pass through h.predict at every iterate
    monkeypatch.setattr(
        TreeSurrogate, "judge", lambda self, xm, scores=None: self.h.predict(self._full(xm))
    )
    slow = PGD(h, eps=0.2, step_size=0.05, steps=10, seed=0, restarts=2)(x, y)
    assert torch.equal(fast, slow)


class _NanAbove(nn.Module):
    """A linear leaf whose scores turn ``nan`` once coordinate 0 passes ``limit``."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.stack([x[:, 0], -x[:, 0]], 1)
        return torch.where(x[:, :1] > self.limit, torch.full_like(out, float("nan")), out)


def test_scores_turning_non_finite_mid_attack_are_still_refused() -> None:
    p = LabelPartition({"a": [0, 1], "b": [2]})
    h = Hierarchy(Router(nn.Linear(6, 2), p), [Leaf(_NanAbove(0.55), [0, 1]), None])
    x = torch.full((4, 6), 0.5)  # finite scores at the clean input; PGD moves x0 past 0.55
    with pytest.raises(ValueError, match=r"Leaf's model returned non-finite scores .* rows"):
        PGD(h, eps=0.2, step_size=0.05, steps=4, random_start=False)(x, torch.tensor([0, 1, 0, 1]))


def test_an_iterate_outside_the_declared_range_is_still_refused() -> None:
    h = _tree(input_range=(0.0, 0.6))
    x = torch.full((4, 6), 0.55)  # in range; a step of 0.1 leaves it
    with pytest.raises(ValueError, match=r"input must lie in \[0, 0.6\] \(the declared"):
        PGD(h, eps=0.3, step_size=0.1, steps=3, random_start=False)(x, torch.tensor([0, 1, 3, 4]))


def _flag(t: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(t).all()


def test_deferred_checks_raise_the_first_failure_with_its_own_message() -> None:
    nan_row = torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError) as now:
        check_logits(nan_row, "B")
    with pytest.raises(ValueError) as later, deferred_checks():
        check_or_defer(lambda t: check_logits(t, "A"), torch.ones(3, 4), _flag, "a")
        check_or_defer(lambda t: check_logits(t, "B"), nan_row, _flag, "b")  # first failure
        check_or_defer(lambda t: check_logits(t, "A"), torch.full((3, 4), float("inf")),
                       _flag, "a")  # fmt: skip
    assert str(later.value) == str(now.value)


def test_a_failed_check_is_raised_before_an_error_it_caused() -> None:
    with pytest.raises(ValueError, match="non-finite") as err, deferred_checks():
        check_or_defer(check_logits, torch.full((1, 2), float("nan")), _flag, "s")
        raise IndexError("what ran on the bad values did next")
    assert isinstance(err.value.__cause__, IndexError)


def test_checks_run_at_once_outside_the_block() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        check_or_defer(check_logits, torch.full((1, 2), float("nan")), _flag, "s")


def _rule_tree(rule) -> Hierarchy:
    torch.manual_seed(0)
    p = LabelPartition({"a": [0, 1], "b": [2, 3]})
    return Hierarchy(
        RuleRouter(rule, p), [Leaf(nn.Linear(6, 2), [0, 1]), Leaf(nn.Linear(6, 2), [2, 3])]
    )


def test_a_rule_router_does_not_sync_per_step(count_syncs) -> None:
    h = _rule_tree(lambda x: (x[:, 1] > 0.5).long())
    x, y = torch.rand(16, 6), torch.randint(0, 4, (16,))
    assert _syncs_of(count_syncs, h, x, y, steps=12) == _syncs_of(count_syncs, h, x, y, steps=2)


def test_a_rule_turning_out_of_range_mid_attack_is_still_refused() -> None:
    h = _rule_tree(lambda x: (x[:, 0] > 0.55).long() * 5)  # class id 5 once x0 > 0.55
    x = torch.full((4, 6), 0.5)
    h.predict(x)  # fine at the clean input
    with torch.no_grad():  # leaf "a" loses label 0 as x0 grows: PGD raises x0
        h.children[0].model.weight.zero_()
        h.children[0].model.weight[:, 0] = torch.tensor([-1.0, 1.0])
    attack = PGD(h, eps=0.2, step_size=0.1, steps=3, random_start=False)
    with pytest.raises(ValueError, match=r"rule returned class ids \[5\] outside 0..1"):
        attack(x, torch.zeros(4, dtype=torch.long))


def test_a_tree_used_under_inference_mode_can_be_attacked_after() -> None:
    h = _tree()
    x, y = torch.rand(8, 6), torch.randint(0, 5, (8,))
    with torch.inference_mode():
        h.predict(x)  # whatever the tree keeps from this call must serve autograd later
    PGD(h, eps=0.2, step_size=0.05, steps=2, seed=0)(x, y)

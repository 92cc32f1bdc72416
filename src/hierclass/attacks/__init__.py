"""Adversarial attacks: PGD (l-inf, l2) and attacks on hierarchies (sequential, joint, budgeted).

Every attack is a callable ``attack(x, y) -> x_adv`` on inputs in [0, 1] (torchattacks'
convention: normalisation belongs inside the model; torchattacks' step size ``alpha`` is
``step_size`` here, as ``alpha`` is smoothing's failure probability); any callable returning
logits can be attacked, and so can a :class:`~hierclass.Hierarchy` (through its
differentiable surrogate, judged by the real tree).
:func:`evaluate_hierarchy` / :func:`evaluate_flat` and :func:`robustness_table` produce the
natural / adversarial / budgeted table of the paper's §V (Tables I and II); for a hierarchy,
:func:`evaluate_hierarchy`'s worst case is the number to report.

One algorithm per module: ``pgd``, ``sequential``, ``joint``, ``node`` (single-node and
budgeted), ``evaluate`` (the report), over the base class in ``base`` and the threat model in
``threat_model``. Helpers such as :func:`~hierclass.attacks.threat_model.is_attackable` stay
importable from their modules.
"""

from hierclass.attacks.base import Attack
from hierclass.attacks.evaluate import evaluate_flat, evaluate_hierarchy
from hierclass.attacks.joint import joint_attack
from hierclass.attacks.node import budgeted_attack, node_attacks
from hierclass.attacks.pgd import PGD
from hierclass.attacks.report import AttackResult, RobustnessReport, robustness_table
from hierclass.attacks.sequential import sequential_attack

__all__ = [
    "PGD",
    "Attack",
    "AttackResult",
    "RobustnessReport",
    "budgeted_attack",
    "evaluate_flat",
    "evaluate_hierarchy",
    "joint_attack",
    "node_attacks",
    "robustness_table",
    "sequential_attack",
]

"""Adversarial attacks: PGD (l-inf, l2) and attacks on hierarchies (sequential, joint, budgeted).

Every attack is a callable ``attack(x, y) -> x_adv`` on inputs in [0, 1]; any callable
returning logits can be attacked. :func:`evaluate_hierarchy` / :func:`evaluate_flat` and
:func:`robustness_table` produce the natural / adversarial / budgeted table of the paper's
§V (Tables I and II).
"""

from hierclass.attacks.base import Attack, check_unit_interval, model_mode
from hierclass.attacks.hierarchical import (
    AttackResult,
    RobustnessReport,
    budgeted_attack,
    evaluate_flat,
    evaluate_hierarchy,
    is_attackable,
    joint_attack,
    node_attacks,
    robustness_table,
    sequential_attack,
)
from hierclass.attacks.pgd import PGD

__all__ = [
    "PGD",
    "Attack",
    "AttackResult",
    "RobustnessReport",
    "budgeted_attack",
    "check_unit_interval",
    "evaluate_flat",
    "evaluate_hierarchy",
    "is_attackable",
    "joint_attack",
    "model_mode",
    "node_attacks",
    "robustness_table",
    "sequential_attack",
]

"""Attacks on a hierarchy, gathered under the name earlier releases used.

Each lives in its own module: :mod:`~hierclass.attacks.sequential` (the paper's worst case,
root first), :mod:`~hierclass.attacks.joint` (one perturbation against the whole tree's
differentiable surrogate), :mod:`~hierclass.attacks.node` (single-node and budgeted attacks),
:mod:`~hierclass.attacks.evaluate` (the Tables I/II report) and
:mod:`~hierclass.attacks.report` (result types). Import them from :mod:`hierclass.attacks`.
"""

from hierclass.attacks.evaluate import evaluate_flat, evaluate_hierarchy
from hierclass.attacks.joint import joint_attack
from hierclass.attacks.node import budgeted_attack, node_attacks
from hierclass.attacks.report import AttackResult, RobustnessReport, robustness_table
from hierclass.attacks.sequential import sequential_attack
from hierclass.attacks.threat_model import is_attackable

__all__ = [
    "AttackResult",
    "RobustnessReport",
    "budgeted_attack",
    "evaluate_flat",
    "evaluate_hierarchy",
    "is_attackable",
    "joint_attack",
    "node_attacks",
    "robustness_table",
    "sequential_attack",
]

"""Attacks on a hierarchy, gathered under the name earlier releases used.

Each lives in its own module: :mod:`~hierclass.attacks.sequential` (the paper's worst case,
root first), :mod:`~hierclass.attacks.joint` (one perturbation against the whole tree's
differentiable surrogate), :mod:`~hierclass.attacks.node` (single-node and budgeted attacks),
:mod:`~hierclass.attacks.evaluate` (the Tables I/II report) and
:mod:`~hierclass.attacks.report` (result types). Import them from :mod:`hierclass.attacks`.
"""

# The names it used to define, for code that imports them from here. No ``__all__``: the API
# pages document each once, in its own module.
from hierclass.attacks.evaluate import evaluate_flat, evaluate_hierarchy  # noqa: F401
from hierclass.attacks.joint import joint_attack  # noqa: F401
from hierclass.attacks.node import budgeted_attack, node_attacks  # noqa: F401
from hierclass.attacks.report import AttackResult, RobustnessReport, robustness_table  # noqa: F401
from hierclass.attacks.sequential import sequential_attack  # noqa: F401
from hierclass.attacks.threat_model import is_attackable  # noqa: F401

"""What the attacks on a hierarchy return: per-attack results and the Tables I/II report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from hierclass.batch import Batch


@dataclass
class AttackResult:
    """Outcome of one attack on a hierarchy over ``N`` samples.

    Attributes
    ----------
    name : str
        ``"sequential"``, ``"joint"`` or ``"node <path>"``.
    robust : BoolTensor ``[N]``
        True where the hierarchy was right on the clean input and on every adversarial input
        the attack produced.
    x_adv : Tensor or dict
        Per sample, the adversarial input that broke it, else the last one tried (clean for
        samples never attacked).
    natural : BoolTensor ``[N]``
        Clean correctness.

    Examples
    --------
    >>> r = AttackResult("joint", torch.tensor([True, False]), torch.zeros(2, 3),
    ...                  torch.tensor([True, True]))
    >>> r.accuracy
    0.5
    """

    name: str
    robust: torch.Tensor
    x_adv: Batch
    natural: torch.Tensor

    @property
    def accuracy(self) -> float:
        """Fraction of samples robust to this attack."""
        return float(self.robust.float().mean())


@dataclass
class RobustnessReport:
    """Natural, adversarial (worst case) and budgeted accuracy, like the paper's Tables I, II.

    Attributes
    ----------
    natural_accuracy : float
    adversarial_accuracy : float
        Worst case: a sample counts only if it survives every attack run (sequential, joint
        and each single-node attack), i.e. the per-sample union of the attacks.
    budgeted_accuracy : float
        The adversary attacks one node, chosen to hurt most: the minimum over nodes of the
        accuracy with only that node attacked. Equals ``adversarial_accuracy`` for a flat
        model; equals ``natural_accuracy`` if no node is attackable.
    budgeted_node : str or None
        Name of that node (None for a flat model or when nothing is attackable).
    sequential_accuracy : float
        Accuracy under each attack alone (NaN when not run).
    joint_accuracy : float
        Accuracy under each attack alone (NaN when not run).
    node_accuracy : dict of str -> float
        Accuracy with only that node attacked, for every attackable node.
    n : int
        Number of samples.

    Examples
    --------
    >>> r = RobustnessReport(0.98, 0.85, 0.9, "leaf round", n=100)
    >>> print(robustness_table({"Hierarchy": r}))
    | Model | Natural (%) | Adv (%) | Budget (%) | Budget node |
    |---|---|---|---|---|
    | Hierarchy | 98.00 | 85.00 | 90.00 | leaf round |
    """

    natural_accuracy: float
    adversarial_accuracy: float
    budgeted_accuracy: float
    budgeted_node: str | None = None
    sequential_accuracy: float = math.nan
    joint_accuracy: float = math.nan
    node_accuracy: dict[str, float] = field(default_factory=dict)
    n: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy."""
        return dict(vars(self))


def robustness_table(reports: Mapping[str, RobustnessReport], digits: int = 2) -> str:
    """Markdown table in the layout of the paper's Tables I and II (percentages).

    Parameters
    ----------
    reports : mapping of row name -> RobustnessReport
    digits : int
        Decimals of the percentages.

    Returns
    -------
    str
        ``| Model | Natural (%) | Adv (%) | Budget (%) | Budget node |`` and one row each.

    Examples
    --------
    >>> base = RobustnessReport(0.9879, 0.8713, 0.8713, n=1000)
    >>> print(robustness_table({"Baseline": base}, digits=1).splitlines()[-1])
    | Baseline | 98.8 | 87.1 | 87.1 | - |
    """
    lines = [
        "| Model | Natural (%) | Adv (%) | Budget (%) | Budget node |",
        "|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        cells = [r.natural_accuracy, r.adversarial_accuracy, r.budgeted_accuracy]
        pct = " | ".join(f"{100 * v:.{digits}f}" for v in cells)
        lines.append(f"| {name} | {pct} | {r.budgeted_node or '-'} |")
    return "\n".join(lines)

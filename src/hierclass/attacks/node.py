"""Single-node attacks on a hierarchy, and the budgeted adversary who picks the worst node.

Each attackable node is attacked alone (PGD on its own targets, from the clean input) on every
naturally correct sample whose true route passes it, and each adversarial input is judged end
to end (``h.predict``). The budgeted adversary attacks one node of its choice, the same node
for the whole data set: the one whose attack leaves the lowest accuracy.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from hierclass.attacks._tree import (
    AttackFactory,
    NodePath,
    NodeScores,
    Setup,
    attack_rows,
    modality,
    node_targets,
    on_path,
    prepare,
    scatter,
)
from hierclass.attacks.report import AttackResult
from hierclass.attacks.threat_model import is_attackable
from hierclass.batch import Batch


def _run_node_attacks(h: Any, s: Setup, make_attack: AttackFactory) -> dict[NodePath, AttackResult]:
    """Every attackable node attacked alone on a prepared problem (``h`` in eval mode)."""
    out: dict[NodePath, AttackResult] = {}
    for path, node in h.nodes():
        if not is_attackable(node, s.x, s.keys):
            continue
        robust = s.natural.clone()
        rows = (s.natural & on_path(s.paths, s.y, path)).nonzero().flatten()
        x_best = s.x
        if rows.numel():
            key = node.input_key
            scores = NodeScores(node, key)  # reads one modality: serves every chunk
            targets = node_targets(node, s.y[rows])
            x_adv, broken = attack_rows(
                h, s, rows, key, targets, lambda _, m=scores: m, make_attack
            )
            x_best = scatter(s.x, rows, key, modality(x_adv, key))
            robust[rows[broken]] = False
        out[path] = AttackResult(f"node {path}", robust, x_best, s.natural)
    return out


def _most_harmful(results: dict[NodePath, AttackResult]) -> NodePath | None:
    """The node whose attack leaves the lowest accuracy (ties: the first depth-first)."""
    return min(results, key=lambda p: results[p].accuracy) if results else None


def node_attacks(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> dict[NodePath, AttackResult]:
    """Attack every attackable node alone, on all the samples whose true route passes it.

    Returns ``{path: AttackResult}``; samples off the node's route keep their clean result.
    The budgeted adversary picks the node with the lowest accuracy; the sequential adversary
    breaks a sample if any node on its route does.

    Parameters
    ----------
    h
        As in :func:`~hierclass.attacks.sequential_attack`.
    x
        As in :func:`~hierclass.attacks.sequential_attack`.
    y
        As in :func:`~hierclass.attacks.sequential_attack`.
    make_attack
        As in :func:`~hierclass.attacks.sequential_attack`.
    perturbable
        As in :func:`~hierclass.attacks.sequential_attack`.
    batch_size
        As in :func:`~hierclass.attacks.sequential_attack`.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p), [Leaf(torch.nn.Linear(4, 2), [0, 1]), None])
    >>> res = node_attacks(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                    lambda m: PGD(m, 0.1, 0.05, 5))
    >>> sorted(res)  # the one-label leaf at (1,) is never attacked
    [(), (0,)]
    """
    with prepare(h, x, y, make_attack, perturbable, batch_size) as s:
        return _run_node_attacks(h, s, make_attack)


def budgeted_attack(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> tuple[NodePath | None, AttackResult]:
    """The budgeted adversary: attack the one node that hurts most.

    Returns ``(path, result)`` for the node whose attack leaves the lowest accuracy (ties:
    the first in depth-first order); ``(None, clean result)`` if no node is attackable.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p), [Leaf(torch.nn.Linear(4, 2), [0, 1]), None])
    >>> path, res = budgeted_attack(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                             lambda m: PGD(m, 0.1, 0.05, 5))
    >>> path in [(), (0,)]
    True
    """
    with prepare(h, x, y, make_attack, perturbable, batch_size) as s:
        results = _run_node_attacks(h, s, make_attack)
    path = _most_harmful(results)
    if path is None:
        return None, AttackResult("budgeted", s.natural.clone(), s.x, s.natural)
    return path, results[path]

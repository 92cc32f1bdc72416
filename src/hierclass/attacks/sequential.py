"""The paper's worst-case adversary on a hierarchy: root first, then the next node (§V).

Level by level along each sample's true route, the node there is attacked (PGD on its own
targets, from the clean input); a sample is broken as soon as the hierarchy mispredicts one of
its adversarial inputs. Each attack treats samples independently, so attacking only the
survivors of the level above gives the same verdict as attacking every node on every sample of
its route and taking the per-sample union: that union is computed here, from the single-node
attacks that :func:`~hierclass.attacks.evaluate_hierarchy` needs anyway (one computation).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from hierclass.attacks._tree import AttackFactory, NodePath, Setup, modality, prepare, scatter
from hierclass.attacks.node import _run_node_attacks
from hierclass.attacks.report import AttackResult
from hierclass.batch import Batch


def _union_along_routes(h: Any, s: Setup, results: dict[NodePath, AttackResult]) -> AttackResult:
    """The sequential verdict from single-node results: broken if any node on the route is.

    Each broken sample keeps the adversarial input of the shallowest node that broke it
    (``results`` is in depth-first order, so a route's nodes come root first).
    """
    robust = s.natural.clone()
    x_best = s.x
    for path, res in results.items():
        new = robust & ~res.robust
        if bool(new.any()):
            rows = new.nonzero().flatten()
            key = h.node_at(path).input_key
            x_best = scatter(x_best, rows, key, modality(res.x_adv, key)[rows])
            robust &= ~new
    return AttackResult("sequential", robust, x_best, s.natural)


def sequential_attack(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> AttackResult:
    """The paper's worst-case adversary: root first, then the next node for the survivors.

    Level by level along each sample's true route, the node there is attacked (PGD on its own
    targets, from the clean input) for the samples still robust; a sample is broken as soon
    as the hierarchy mispredicts one of its adversarial inputs. Naturally misclassified
    samples count as broken and are not attacked. (Computed as the per-sample union of the
    single-node attacks, which gives the same verdict; see the module docstring.)

    Parameters
    ----------
    h : Hierarchy
    x : Tensor ``[N, ...]`` or dict of modalities
        Clean inputs; perturbable modalities in [0, 1].
    y : LongTensor ``[N]``
        Global labels.
    make_attack : callable
        ``make_attack(model) -> attack`` with ``attack(x, y) -> x_adv``; ``model`` maps the
        node's modality to its scores. E.g. ``lambda m: PGD(m, eps, step_size, steps)``.
    perturbable : collection of str or None
        Modalities the adversary may change (dict batches); None for a tensor batch.
    batch_size : int
        Samples per attack call.

    Returns
    -------
    AttackResult
        ``x_adv`` holds, per broken sample, the input that broke it; the clean input for
        the others.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p),
    ...               [Leaf(torch.nn.Linear(4, 2), [0, 1]), Leaf(torch.nn.Linear(4, 2), [2, 3])])
    >>> x, y = torch.rand(8, 4), torch.randint(0, 4, (8,))
    >>> res = sequential_attack(h, x, y, lambda m: PGD(m, 0.1, 0.05, 5))
    >>> bool((res.robust <= res.natural).all())
    True
    """
    with prepare(h, x, y, make_attack, perturbable, batch_size) as s:
        return _union_along_routes(h, s, _run_node_attacks(h, s, make_attack))

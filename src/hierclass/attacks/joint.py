"""The joint attack on a hierarchy: one perturbation against the whole tree's surrogate.

PGD on ``log h.soft_forward`` (route probability times leaf probability, differentiable where
the hard routing is not), so one perturbation can trade misrouting off against misclassifying
inside the class; the real tree judges every iterate (``h.predict``). Calling
``PGD(h)`` on a hierarchy runs this attack on a tensor batch.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from hierclass.attacks._surrogate import TreeSurrogate
from hierclass.attacks._tree import AttackFactory, Setup, attack_rows, modality, prepare, scatter
from hierclass.attacks.report import AttackResult
from hierclass.attacks.threat_model import is_attackable
from hierclass.batch import Batch


def _joint_key(h: Any, s: Setup) -> tuple[bool, str | None]:
    """``(anything to attack, the one perturbable modality the attackable nodes read)``."""
    read = {node.input_key for _, node in h.nodes() if is_attackable(node, s.x, s.keys)}
    if len(read) > 1:
        raise ValueError(
            f"the joint attack perturbs one modality, but attackable nodes read {sorted(read)}; "
            "restrict perturbable to one of them"
        )
    return bool(read), next(iter(read), None)


def _refuse_early_stop(attack: Any) -> None:
    if getattr(attack, "early_stop", False):
        # an attack that stops early decides on the model it is handed; an attack that does
        # not know the surrogate's judge (torchattacks, say) would stop where the *soft*
        # surrogate is fooled, which the hard tree need not be, and the surrogate of a dict
        # batch cannot run on fewer rows
        raise ValueError(
            "the joint attack cannot use an attack with early_stop=True: it would stop "
            "where the soft surrogate is fooled, not the hierarchy itself; pass "
            "early_stop=False (or joint=False to evaluate_hierarchy)"
        )


def _run_joint_attack(h: Any, s: Setup, make_attack: AttackFactory) -> AttackResult:
    """The joint attack on a prepared problem (``h`` in eval mode)."""
    robust = s.natural.clone()
    any_node, key = _joint_key(h, s)
    if not any_node:
        return AttackResult("joint", robust, s.x, s.natural)
    # nodes reading other (unperturbed) modalities tie the surrogate to its batch's rows
    tied = key is not None and any(node.input_key != key for _, node in h.nodes())
    rows = s.natural.nonzero().flatten()
    x_adv, broken = attack_rows(
        h,
        s,
        rows,
        key,
        s.y[rows],
        lambda x_part: TreeSurrogate(h, key, x_part if tied else None),
        make_attack,
        check_attack=_refuse_early_stop,
    )
    robust[rows[broken]] = False
    return AttackResult("joint", robust, scatter(s.x, rows, key, modality(x_adv, key)), s.natural)


def joint_attack(
    h: Any,
    x: Batch,
    y: torch.Tensor,
    make_attack: AttackFactory,
    *,
    perturbable: Collection[str] | None = None,
    batch_size: int = 256,
) -> AttackResult:
    """PGD on the whole tree through ``log h.soft_forward`` (route x leaf probability).

    One perturbation of the (single) perturbable modality is optimised against the
    surrogate's cross-entropy on the global label, then judged with ``h.predict``.
    :class:`~hierclass.attacks.PGD` also asks the tree about every iterate (the surrogate
    carries its judge); another attack sees only the surrogate's scores.

    Parameters
    ----------
    h
        As in :func:`~hierclass.attacks.sequential_attack`; ``model`` given to
        ``make_attack`` maps the perturbable modality to log-probabilities over all labels.
    x
        As in :func:`~hierclass.attacks.sequential_attack`; ``model`` given to
        ``make_attack`` maps the perturbable modality to log-probabilities over all labels.
    y
        As in :func:`~hierclass.attacks.sequential_attack`; ``model`` given to
        ``make_attack`` maps the perturbable modality to log-probabilities over all labels.
    make_attack
        As in :func:`~hierclass.attacks.sequential_attack`; ``model`` given to
        ``make_attack`` maps the perturbable modality to log-probabilities over all labels.
    perturbable
        As in :func:`~hierclass.attacks.sequential_attack`; ``model`` given to
        ``make_attack`` maps the perturbable modality to log-probabilities over all labels.
    batch_size
        As in :func:`~hierclass.attacks.sequential_attack`; ``model`` given to
        ``make_attack`` maps the perturbable modality to log-probabilities over all labels.

    Raises
    ------
    ValueError
        If the threat model names more than one perturbable modality read by an attackable
        node (one PGD perturbs one tensor), or the attack stops early.

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p), [Leaf(torch.nn.Linear(4, 2), [0, 1]), None])
    >>> res = joint_attack(h, torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]),
    ...                    lambda m: PGD(m, 0.1, 0.05, 5))
    >>> res.robust.shape
    torch.Size([6])
    """
    with prepare(h, x, y, make_attack, perturbable, batch_size) as s:
        _joint_key(h, s)  # refuse two modalities before anything runs
        return _run_joint_attack(h, s, make_attack)

"""The natural / worst-case / budgeted report of the paper's Tables I and II (§V).

:func:`evaluate_hierarchy` runs every single-node attack once; the sequential worst case is
their union along each route, the budgeted adversary their minimum, and the joint attack joins
the union. :func:`evaluate_flat` is the same report for a flat baseline. Both take tensors or a
``Dataset``/``DataLoader`` of ``(x, y)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from hierclass._utils.checks import check_labels
from hierclass._utils.modules import model_mode
from hierclass.attacks._tree import AttackFactory, check_chunk, check_factory, path_name, prepare
from hierclass.attacks.joint import _joint_key, _run_joint_attack
from hierclass.attacks.node import _most_harmful, _run_node_attacks
from hierclass.attacks.report import RobustnessReport
from hierclass.attacks.sequential import _union_along_routes
from hierclass.batch import Batch
from hierclass.data._tensors import as_tensors, is_data_container
from hierclass.inputs import IMAGE_RANGE, check_inputs


def _as_xy(x: Any, y: Any) -> tuple[Batch, Any]:
    """Tensors as given; a ``Dataset``/``DataLoader`` of ``(x, y)`` pairs read into tensors.

    Order does not matter to the report (every attack is per sample), so a shuffling
    ``DataLoader`` is accepted.
    """
    if not is_data_container(x):
        if y is None:
            raise TypeError("y (the labels) is required when x is a tensor or a dict batch")
        return x, y
    if y is not None:
        raise TypeError(
            f"pass tensors (x, y) or a {type(x).__name__} of (x, y) pairs, not both: "
            "y must be None with a data set"
        )
    return as_tensors(x, allow_shuffle=True)


def evaluate_hierarchy(
    h: Any,
    x: Batch | Dataset | DataLoader,
    y: torch.Tensor | None = None,
    make_attack: AttackFactory | None = None,
    *,
    perturbable: Collection[str] | None = None,
    joint: bool = True,
    batch_size: int = 256,
) -> RobustnessReport:
    """Natural, worst-case adversarial and budgeted accuracy of a hierarchy (Tables I, II).

    Runs every single-node attack once (each node on all samples routed through it by their
    true label); the sequential worst case is their per-sample union along each route
    (identical to attacking survivors only, as each PGD run is per sample), the budgeted
    adversary their minimum. With ``joint=True`` the joint attack is added to the union. The
    clean predictions are computed once.

    This is the attack to report for a hierarchy: a single attack on the whole tree
    (``PGD(h)``, the joint attack) misses samples that attacking one node at a time breaks.

    Parameters
    ----------
    h
        As in :func:`~hierclass.attacks.sequential_attack`.
    make_attack
        As in :func:`~hierclass.attacks.sequential_attack`.
    perturbable
        As in :func:`~hierclass.attacks.sequential_attack`.
    batch_size
        As in :func:`~hierclass.attacks.sequential_attack`.
    x
        Clean inputs and labels; or ``x`` a ``Dataset``/``DataLoader`` yielding ``(x, y)``
        pairs and ``y=None`` (pass ``make_attack`` by name then).
    y
        Clean inputs and labels; or ``x`` a ``Dataset``/``DataLoader`` yielding ``(x, y)``
        pairs and ``y=None`` (pass ``make_attack`` by name then).
    joint : bool
        Also run :func:`~hierclass.attacks.joint_attack` (needs a single perturbable
        modality).

    Returns
    -------
    RobustnessReport

    Examples
    --------
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.attacks import PGD
    >>> p = LabelPartition([[0, 1], [2, 3]])
    >>> h = Hierarchy(Router(torch.nn.Linear(4, 2), p),
    ...               [Leaf(torch.nn.Linear(4, 2), [0, 1]), Leaf(torch.nn.Linear(4, 2), [2, 3])])
    >>> r = evaluate_hierarchy(h, torch.rand(8, 4), torch.randint(0, 4, (8,)),
    ...                        lambda m: PGD(m, 0.1, 0.05, 5))
    >>> r.adversarial_accuracy <= r.budgeted_accuracy <= r.natural_accuracy
    True
    """
    x, y = _as_xy(x, y)
    if not isinstance(joint, bool):
        raise TypeError(f"joint must be True or False, got {joint!r}")
    with prepare(h, x, y, make_attack, perturbable, batch_size) as s:
        if joint:
            _joint_key(h, s)  # refuse two modalities before any attack runs
        results = _run_node_attacks(h, s, make_attack)
        sequential = _union_along_routes(h, s, results)
        worst = sequential.robust.clone()
        joint_acc = math.nan
        if joint:
            jres = _run_joint_attack(h, s, make_attack)
            worst &= jres.robust
            joint_acc = jres.accuracy
    path = _most_harmful(results)
    natural = float(s.natural.float().mean())
    return RobustnessReport(
        natural_accuracy=natural,
        adversarial_accuracy=float(worst.float().mean()),
        budgeted_accuracy=natural if path is None else results[path].accuracy,
        budgeted_node=None if path is None else path_name(h, path),
        sequential_accuracy=sequential.accuracy,
        joint_accuracy=joint_acc,
        node_accuracy={path_name(h, p): r.accuracy for p, r in results.items()},
        n=int(s.y.shape[0]),
    )


def evaluate_flat(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor | Dataset | DataLoader,
    y: torch.Tensor | None = None,
    make_attack: AttackFactory | None = None,
    *,
    batch_size: int = 256,
) -> RobustnessReport:
    """The same report for a flat classifier (the baseline rows of Tables I, II).

    A flat model is one node, so the budgeted adversary is the full adversary:
    ``budgeted_accuracy == adversarial_accuracy``. ``x`` may be a ``Dataset``/``DataLoader``
    of ``(x, y)`` pairs with ``y=None``.

    Examples
    --------
    >>> from hierclass.attacks import PGD
    >>> net = torch.nn.Linear(4, 3)
    >>> r = evaluate_flat(net, torch.rand(8, 4), torch.randint(0, 3, (8,)),
    ...                   lambda m: PGD(m, 0.1, 0.05, 5))
    >>> r.budgeted_accuracy == r.adversarial_accuracy
    True
    """
    x, y = _as_xy(x, y)
    if not callable(model):
        raise TypeError(f"model must be callable (x -> logits), got {type(model).__name__}")
    check_factory(make_attack)
    batch_size = check_chunk(batch_size)
    if not torch.is_tensor(x) or not x.is_floating_point():
        got = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor in [0, 1], got {got}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch [N, ...], got shape {tuple(x.shape)}")
    check_inputs(x, input_range=IMAGE_RANGE, what="x")
    check_labels(y, x, "y")
    lo, hi = (int(v) for v in torch.aminmax(y))  # one host sync, at the boundary
    natural_parts, robust_parts = [], []
    with model_mode(model, False):
        attack = make_attack(model)
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            with torch.no_grad():
                logits = model(xb)
            if start == 0 and (lo < 0 or hi >= logits.shape[-1]):
                bad = y[(y < 0) | (y >= logits.shape[-1])].unique().tolist()
                raise ValueError(
                    f"y must hold labels in 0..{logits.shape[-1] - 1} (the model has "
                    f"{logits.shape[-1]} outputs), got labels {bad}"
                )
            ok = logits.argmax(1) == yb
            x_adv = attack(xb, yb)
            with torch.no_grad():
                robust_parts.append(ok & (model(x_adv).argmax(1) == yb))
            natural_parts.append(ok)
    natural = torch.cat(natural_parts).float().mean()
    robust = float(torch.cat(robust_parts).float().mean())
    return RobustnessReport(
        natural_accuracy=float(natural),
        adversarial_accuracy=robust,
        budgeted_accuracy=robust,
        budgeted_node=None,
        sequential_accuracy=robust,
        n=int(y.shape[0]),
    )

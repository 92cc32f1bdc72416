"""PGD adversarial training (Madry et al. 2018): :func:`fit_adversarial`.

The shared epoch loop (:mod:`hierclass.training.loop`) with PGD's step
(:func:`hierclass.training.steps.pgd_step`): same seeding, schedule, checkpoints, progress
and :class:`~hierclass.training.TrainHistory` as :func:`~hierclass.training.fit` and
:func:`~hierclass.training.fit_yopo`.

Any node is trained on its own labels: pass coarse labels to train a router, local labels
(the leaf's data) to train a leaf, or all labels for a flat baseline.

Names follow :mod:`hierclass.attacks`: ``eps`` is the radius, ``step_size`` the step size
(torchattacks' ``alpha``; here ``alpha`` is only smoothing's failure probability), ``steps`` the
number of steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hierclass.attacks.base import check_attack_budget, refuses_alpha
from hierclass.attacks.pgd import PGD
from hierclass.inputs import IMAGE_RANGE

from ._boundary import prepare
from ._data import Data
from .evaluate import evaluate_accuracy
from .history import TrainHistory
from .loop import Schedule, run_epochs
from .steps import pgd_step

__all__ = ["accuracy", "fit_adversarial"]

Attack = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack | None = None,
    batch_size: int = 256,
) -> float:
    """:func:`~hierclass.training.evaluate_accuracy` with the attack as 4th argument (the
    adversarial trainers' older spelling).

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2)
    >>> 0.0 <= accuracy(net, torch.rand(8, 2), torch.zeros(8, dtype=torch.long)) <= 1.0
    True
    """
    return evaluate_accuracy(model, x, y, batch_size, attack=attack)


def eval_pair(eval_data: Any, x_eval: Any, y_eval: Any) -> Any:
    """``eval_data``, or the older spelling ``x_eval=``/``y_eval=``, as one argument."""
    if x_eval is None and y_eval is None:
        return eval_data
    if (x_eval is None) != (y_eval is None):
        raise ValueError("give both x_eval and y_eval, or neither")
    if eval_data is not None:
        raise ValueError("give eval_data or x_eval/y_eval, not both")
    return (x_eval, y_eval)


def schedule_of(lr_schedule: Schedule, lr_milestones: Sequence[int]) -> Schedule:
    """``lr_schedule``, or the older spelling ``lr_milestones`` (x0.1 at each epoch given)."""
    if len(lr_milestones) == 0:
        return lr_schedule
    if lr_schedule is not None:
        raise ValueError("give lr_schedule or lr_milestones, not both")
    return tuple(lr_milestones)


@refuses_alpha("fit_adversarial")
def fit_adversarial(
    model: nn.Module,
    x: Data,
    y: torch.Tensor | None = None,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    lr_schedule: Schedule = None,
    lr_milestones: Sequence[int] = (),
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    verbose: bool | None = None,
    eval_data: Any = None,
    x_eval: torch.Tensor | None = None,
    y_eval: torch.Tensor | None = None,
    eval_attack: Attack | None = None,
    input_key: str | None = None,
    device: str | torch.device | None = None,
) -> TrainHistory:
    """PGD adversarial training (Madry et al. 2018): train on PGD-``steps`` examples.

    Each batch is replaced by PGD examples (random start, ``steps`` steps of size ``step_size``
    in the ``eps``-ball, generated with the model in eval mode so batch-norm statistics are
    not updated by the attack), then the model takes one optimiser step on their
    cross-entropy. Cost per batch: ``steps + 1`` forward/backward passes.

    Parameters
    ----------
    model : nn.Module
        Maps inputs in [0, 1] to logits; trained in place and left in eval mode.
    x : Tensor ``[N, ...]`` in [0, 1], dict of tensors, or a ``Dataset``/``DataLoader``
        Training inputs (moved to the model's device once).
    y : LongTensor ``[N]``, optional
        Training labels: fine labels for a flat model or a leaf (local ids), coarse class
        ids for a router; ``None`` when ``x`` is a data set.
    eps
        The training attack's radius, step size (torchattacks' ``alpha``), number of steps
        and norm.
    step_size
        The training attack's radius, step size (torchattacks' ``alpha``), number of steps
        and norm.
    steps
        The training attack's radius, step size (torchattacks' ``alpha``), number of steps
        and norm.
    norm
        The training attack's radius, step size (torchattacks' ``alpha``), number of steps
        and norm.
    epochs
        Optimiser settings, as in :func:`~hierclass.training.fit` (SGD by default here,
        the adversarial-training literature's recipe).
    lr
        Optimiser settings, as in :func:`~hierclass.training.fit` (SGD by default here,
        the adversarial-training literature's recipe).
    batch_size
        Optimiser settings, as in :func:`~hierclass.training.fit` (SGD by default here,
        the adversarial-training literature's recipe).
    optimizer
        Optimiser settings, as in :func:`~hierclass.training.fit` (SGD by default here,
        the adversarial-training literature's recipe).
    momentum
        Optimiser settings, as in :func:`~hierclass.training.fit` (SGD by default here,
        the adversarial-training literature's recipe).
    weight_decay
        Optimiser settings, as in :func:`~hierclass.training.fit` (SGD by default here,
        the adversarial-training literature's recipe).
    lr_schedule : as in :func:`~hierclass.training.fit`
        A sequence of epochs multiplies ``lr`` by 0.1 at each (``lr_milestones`` is the
        older spelling of that).
    seed : int
        Seeds shuffling, random starts and any dropout, per epoch.
    checkpoint : path or None
        Written atomically after every epoch; if the file exists the run resumes from it
        (settings must match; ``epochs`` may grow unless the schedule depends on it).
    verbose : bool or None
        Progress bar: always, never, or (``None``) on a terminal.
    eval_data : (x_eval, y_eval) or Dataset/DataLoader, optional
        Held-out data evaluated after every epoch, clean and under ``eval_attack``
        (``x_eval=``/``y_eval=`` is the older spelling).
    eval_attack : callable or None
        Defaults to the training PGD (same eps, step_size, steps, norm) against ``model``.
    input_key
        As in :func:`~hierclass.training.fit`.
    device
        As in :func:`~hierclass.training.fit`.

    Returns
    -------
    TrainHistory
        ``accuracy`` is measured on the adversarial training batches;
        ``eval_accuracy``/``eval_adversarial_accuracy`` on the evaluation set.

    Raises
    ------
    ValueError
        eps < 0, step_size <= 0, steps < 1, an unknown norm, inputs outside [0, 1] or
        non-finite, bad shapes, or a checkpoint from a run with other settings.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> x = torch.rand(32, 1, 2, 2); y = (x.flatten(1).sum(1) > 2).long()
    >>> hist = fit_adversarial(net, x, y, eps=0.05, step_size=0.02, steps=3, epochs=2,
    ...                        batch_size=16, verbose=False, eval_data=(x, y))
    >>> hist.epoch, len(hist.adversarial_accuracy)
    ([1, 2], 2)
    """
    check_attack_budget(eps, step_size, steps, norm)
    eval_data = eval_pair(eval_data, x_eval, y_eval)
    run = prepare(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size,
                  optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                  lr_schedule=schedule_of(lr_schedule, lr_milestones), seed=seed,
                  verbose=verbose, eval_data=eval_data, input_key=input_key,
                  input_range=IMAGE_RANGE, device=device)  # fmt: skip
    attack = PGD(model, eps, step_size, steps, norm=norm, random_start=True)
    config = {**run.config, "training": "pgd", "eps": float(eps),
              "step_size": float(step_size), "steps": steps, "norm": norm}  # fmt: skip
    return run_epochs(model, run.x, run.y, pgd_step(attack), config=config,
                      checkpoint=checkpoint, eval_data=run.eval_data,
                      eval_attack=attack if eval_attack is None else eval_attack,
                      desc="PGD-AT", **run.loop)  # fmt: skip

"""YOPO-m-n adversarial training (Zhang et al. 2019, "You Only Propagate Once").

PGD-k adversarial training pays ``k`` full forward/backward passes per batch to build the
perturbation. YOPO observes (Pontryagin's maximum principle) that the perturbation only
couples to the network through its first layer ``f0``: with the adjoint
``p = dL/dz`` at ``z = f0(x + eta)`` held fixed, the loss is approximated by the
Hamiltonian ``H(eta) = <p, f0(x + eta)>``. So for each batch YOPO-m-n runs

* ``m`` full passes; pass ``j`` evaluates the loss at ``x + eta_j``, accumulates the
  gradient of every layer *after* the first into ``.grad`` and freezes ``p_j``;
* after each pass, ``n`` cheap ascent steps on ``H`` that only run ``f0``::

      eta <- Proj_{eps-ball, [0,1]}(eta + step_size * sign(grad_eta <p_j, f0(x + eta)>))

  (l-inf; l2 uses the normalised gradient), giving ``eta_{j+1}``;
* the first layer's weight gradient, the paper's Hamiltonian choice: the full pass's
  gradient for ``f0`` is *not* used; instead, after the ``n`` inner steps, the gradient of
  ``<p_j, f0(x + eta_{j+1}; theta_0)>`` with respect to ``theta_0`` is accumulated, i.e. the
  first layer is updated at the perturbation its inner loop just found.

Gradients of all layers are averaged over the ``m`` passes (``grad_accumulation="mean"``,
so ``lr`` means what it means for ordinary training) or summed as in the paper's code
(``"sum"``, equivalent to an ``m`` times larger learning rate). The model must expose
``model.layer_one`` and ``model.rest`` with ``model(x) == model.rest(model.layer_one(x))``
(all :mod:`hierclass.models` do). The inner steps run ``layer_one`` in train mode; a
batch-norm inside ``layer_one`` would see every inner step (the library's models keep
batch-norm out of ``layer_one``).

Names: one per concept, as in the rest of ``training`` and in ``attacks``: ``eps`` the
radius, ``step_size`` the (inner) step size (the YOPO paper's name; torchattacks' ``alpha``,
which is refused here because ``alpha`` is smoothing's failure probability).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hierclass._utils.checks import positive_int
from hierclass.attacks.base import check_attack_budget, refuses_alpha
from hierclass.attacks.pgd import PGD, ascent_direction, project, random_start
from hierclass.inputs import IMAGE_RANGE

from ._boundary import prepare
from ._data import Data
from .adversarial import eval_pair, schedule_of
from .history import TrainHistory
from .loop import Schedule, TrainStep, run_epochs

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class YOPOStep(NamedTuple):
    """What one YOPO-m-n batch step produced (the gradients are in the parameters' ``.grad``).

    Attributes
    ----------
    x_adv : Tensor ``[B, ...]``
        Final adversarial input ``x + eta_m`` (in the eps-ball and [0, 1]).
    etas : list of Tensor ``[B, ...]``
        ``eta_0 ... eta_m``; full pass ``j`` ran at ``x + etas[j]``.
    loss : Tensor, 0-d
        Mean over the ``m`` passes of the batch-mean loss.
    logits : Tensor ``[B, K]``
        Logits of the last full pass (at ``x + etas[m - 1]``).

    Examples
    --------
    >>> from hierclass.models import SmallCNN
    >>> out = yopo_step(SmallCNN(2, image_size=4, channels=(2, 2, 2)), torch.rand(3, 1, 4, 4),
    ...                 torch.tensor([0, 1, 0]), m=1, n=1, eps=0.1, step_size=0.1)
    >>> type(out).__name__, out.logits.shape
    ('YOPOStep', torch.Size([3, 2]))
    """

    x_adv: torch.Tensor
    etas: list[torch.Tensor]
    loss: torch.Tensor
    logits: torch.Tensor


def check_layer_one_split(model: object) -> tuple[nn.Module, nn.Module]:
    """Return ``(model.layer_one, model.rest)`` or raise ``TypeError`` saying what is missing.

    Examples
    --------
    >>> check_layer_one_split(torch.nn.Linear(2, 2))
    Traceback (most recent call last):
    ...
    TypeError: YOPO needs a model with `layer_one` and `rest` modules ... without layer_one, rest
    """
    missing = [
        name
        for name in ("layer_one", "rest")
        if not isinstance(getattr(model, name, None), nn.Module)
    ]
    if missing:
        raise TypeError(
            "YOPO needs a model with `layer_one` and `rest` modules (model(x) == "
            "model.rest(model.layer_one(x)), as hierclass.models provide); got "
            f"{type(model).__name__} without {', '.join(missing)}"
        )
    return model.layer_one, model.rest  # type: ignore[attr-defined]


@refuses_alpha("yopo_step")
def yopo_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    m: int,
    n: int,
    eps: float,
    step_size: float,
    norm: str = "linf",
    eta: torch.Tensor | None = None,
    loss_fn: LossFn = F.cross_entropy,
    grad_accumulation: str = "mean",
    generator: torch.Generator | None = None,
) -> YOPOStep:
    """One YOPO-m-n batch: accumulate the weight gradients into ``.grad`` (see module doc).

    The caller zeroes the gradients before and steps the optimiser after, as with
    ``loss.backward()``. Inputs are not re-validated here (the trainer checks them once).

    Parameters
    ----------
    model : nn.Module with ``layer_one`` and ``rest``
    x : Tensor ``[B, ...]`` in [0, 1]
    y : LongTensor ``[B]``
    m : int
        Full passes and inner first-layer steps per pass (YOPO-m-n), both >= 1.
    n : int
        Full passes and inner first-layer steps per pass (YOPO-m-n), both >= 1.
    eps
        Radius of the perturbation ball, inner step size, ``"linf"`` or ``"l2"`` (the step
        size is ``step_size``, as in :func:`fit_yopo` and :class:`~hierclass.attacks.PGD`).
    step_size
        Radius of the perturbation ball, inner step size, ``"linf"`` or ``"l2"`` (the step
        size is ``step_size``, as in :func:`fit_yopo` and :class:`~hierclass.attacks.PGD`).
    norm
        Radius of the perturbation ball, inner step size, ``"linf"`` or ``"l2"`` (the step
        size is ``step_size``, as in :func:`fit_yopo` and :class:`~hierclass.attacks.PGD`).
    eta : Tensor or None
        Starting perturbation ``eta_0`` (projected onto the ball); default uniform random.
    loss_fn : callable
        ``loss_fn(logits, y) -> 0-d`` batch loss; cross-entropy by default.
    grad_accumulation : {"mean", "sum"}
        Average or sum the ``m`` passes' gradients.
    generator : torch.Generator or None
        RNG for the random ``eta_0``.

    Returns
    -------
    YOPOStep

    Examples
    --------
    >>> from hierclass.models import SmallCNN
    >>> net = SmallCNN(3, image_size=8)
    >>> out = yopo_step(net, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]),
    ...                 m=2, n=3, eps=0.1, step_size=0.02)
    >>> len(out.etas), bool(out.etas[-1].abs().max() <= 0.1 + 1e-6)
    (3, True)
    >>> all(p.grad is not None for p in net.parameters())
    True
    """
    layer_one, rest = check_layer_one_split(model)
    check_attack_budget(eps, step_size, n, norm, steps_name="n (inner steps)")
    positive_int(m, "m (full passes per batch)")
    if grad_accumulation not in ("mean", "sum"):
        raise ValueError(f"grad_accumulation must be 'mean' or 'sum', got {grad_accumulation!r}")
    weight = 1.0 / m if grad_accumulation == "mean" else 1.0
    x = x.detach()
    lo = hi = None
    if norm == "linf":
        lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)
    if eta is None:
        x_adv = random_start(x, eps, norm, generator)
    else:
        x_adv = project(x + eta.detach(), x, eps, norm, lo, hi)
    etas = [x_adv - x]
    loss_total = torch.zeros((), device=x.device)
    logits = None
    for _ in range(m):
        # Full pass. The input to `rest` is a leaf, so backward stops there: it fills the
        # later layers' .grad and yields the adjoint p, and never touches layer one's .grad
        # (whose gradient comes from the Hamiltonian below).
        with torch.no_grad():
            z = layer_one(x_adv)
        z.requires_grad_(True)
        logits = rest(z)
        loss = loss_fn(logits, y)
        (weight * loss).backward()
        p = z.grad.detach()  # = weight * dL/dz; the scale cancels in the ascent direction
        loss_total = loss_total + loss.detach()
        for _ in range(n):
            x_adv.requires_grad_(True)
            hamiltonian = (layer_one(x_adv) * p).sum()
            (grad,) = torch.autograd.grad(hamiltonian, x_adv)
            x_adv = project(
                x_adv.detach() + step_size * ascent_direction(grad, norm), x, eps, norm, lo, hi
            )
        # Layer one's weights: d/dtheta0 <weight * p_j, f0(x + eta_{j+1})>, accumulated.
        (layer_one(x_adv) * p).sum().backward()
        etas.append(x_adv - x)
    return YOPOStep(x_adv=x_adv, etas=etas, loss=loss_total / m, logits=logits.detach())


@refuses_alpha("yopo_train_step")
def yopo_train_step(
    m: int, n: int, eps: float, step_size: float, norm: str, grad_accumulation: str
) -> TrainStep:
    """The loop's step for YOPO-m-n (:func:`yopo_step` on every batch; random ``eta_0``
    from torch's global RNG, which the loop seeds per epoch).

    Examples
    --------
    >>> from hierclass.models import SmallCNN
    >>> step = yopo_train_step(m=1, n=2, eps=0.1, step_size=0.05, norm="linf",
    ...                        grad_accumulation="mean")
    >>> loss, correct = step(SmallCNN(2, image_size=4, channels=(2, 2, 2)),
    ...                      torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 0]), None)
    >>> loss.dim(), 0 <= int(correct) <= 3
    (0, True)
    """

    def step(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, generator: Any):
        out = yopo_step(net, xb, yb, m=m, n=n, eps=eps, step_size=step_size, norm=norm,
                        grad_accumulation=grad_accumulation)  # fmt: skip
        return out.loss * yb.shape[0], (out.logits.argmax(1) == yb).sum()

    return step


@refuses_alpha("fit_yopo")
def fit_yopo(
    model: nn.Module,
    x: Data,
    y: torch.Tensor | None = None,
    *,
    m: int = 5,
    n: int = 10,
    eps: float,
    step_size: float,
    norm: str = "linf",
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    lr_schedule: Schedule = None,
    lr_milestones: Sequence[int] = (),
    grad_accumulation: str = "mean",
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    verbose: bool | None = None,
    eval_data: Any = None,
    x_eval: torch.Tensor | None = None,
    y_eval: torch.Tensor | None = None,
    eval_attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    input_key: str | None = None,
    device: str | torch.device | None = None,
) -> TrainHistory:
    """YOPO-m-n adversarial training; same loop, checkpoints and history as PGD training.

    Cost per batch: ``m`` full forward/backward passes plus ``m * (n + 1)`` forward/backward
    passes of the first layer only (YOPO-5-10 approximates PGD-40 at about 5 full passes).

    Names: ``m`` and ``n`` are the paper's (YOPO-m-n): full passes per batch and inner
    first-layer steps per pass (not smoothing's Monte-Carlo ``n``); ``eps`` and
    ``step_size`` (the inner step size) are the attack room's names, as in
    :func:`~hierclass.training.fit_adversarial`.

    Parameters
    ----------
    model : nn.Module with ``layer_one`` and ``rest``
        Trained in place.
    x : Tensor [N, ...] or Dataset or DataLoader
        Training inputs in [0, 1], or a ``Dataset``/``DataLoader`` of pairs and ``y=None``.
    y : Tensor [N] or None
        Labels (fine, local or coarse); ``None`` when ``x`` yields pairs.
    m : int
        YOPO-m-n: full passes per batch and inner first-layer steps per pass.
    n : int
        YOPO-m-n: full passes per batch and inner first-layer steps per pass.
    eps
        Perturbation radius, inner step size and norm.
    step_size
        Perturbation radius, inner step size and norm.
    norm
        Perturbation radius, inner step size and norm.
    epochs
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    lr
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    batch_size
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    optimizer
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    momentum
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    weight_decay
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    lr_schedule
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    lr_milestones
        Optimiser settings, as in :func:`~hierclass.training.fit_adversarial`.
    grad_accumulation : {"mean", "sum"}
        See :func:`yopo_step`.
    seed
        As in :func:`~hierclass.training.fit_adversarial`.
    checkpoint
        As in :func:`~hierclass.training.fit_adversarial`.
    verbose
        As in :func:`~hierclass.training.fit_adversarial`.
    eval_data
        As in :func:`~hierclass.training.fit_adversarial`.
    x_eval
        As in :func:`~hierclass.training.fit_adversarial`.
    y_eval
        As in :func:`~hierclass.training.fit_adversarial`.
    input_key
        As in :func:`~hierclass.training.fit_adversarial`.
    device
        As in :func:`~hierclass.training.fit_adversarial`.
    eval_attack : callable or None
        Defaults to PGD with ``m * n`` steps of ``step_size`` in the same ball.

    Returns
    -------
    TrainHistory

    Raises
    ------
    TypeError
        The model has no ``layer_one``/``rest`` split.
    ValueError
        eps < 0, step_size <= 0, m or n < 1, an unknown norm, inputs outside [0, 1].

    Examples
    --------
    >>> from hierclass.models import SmallCNN
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = SmallCNN(2, image_size=8, channels=(4, 4, 4))
    >>> x = torch.rand(16, 1, 8, 8); y = (x.mean((1, 2, 3)) > 0.5).long()
    >>> hist = fit_yopo(net, x, y, m=2, n=2, eps=0.05, step_size=0.02, epochs=1,
    ...                 batch_size=8, verbose=False)
    >>> hist.config["training"], hist.epoch
    ('yopo', [1])
    """
    check_layer_one_split(model)
    check_attack_budget(eps, step_size, n, norm, steps_name="n (inner steps)")
    positive_int(m, "m (full passes per batch)")
    if grad_accumulation not in ("mean", "sum"):
        raise ValueError(f"grad_accumulation must be 'mean' or 'sum', got {grad_accumulation!r}")
    run = prepare(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size,
                  optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                  lr_schedule=schedule_of(lr_schedule, lr_milestones), seed=seed,
                  verbose=verbose, eval_data=eval_pair(eval_data, x_eval, y_eval),
                  input_key=input_key, input_range=IMAGE_RANGE, device=device)  # fmt: skip
    if eval_attack is None:
        eval_attack = PGD(model, eps, step_size, m * n, norm=norm)
    config = {**run.config, "training": "yopo", "m": m, "n": n, "eps": float(eps),
              "step_size": float(step_size), "norm": norm,
              "grad_accumulation": grad_accumulation}  # fmt: skip
    step = yopo_train_step(m, n, float(eps), float(step_size), norm, grad_accumulation)
    return run_epochs(model, run.x, run.y, step, config=config, checkpoint=checkpoint,
                      eval_data=run.eval_data, eval_attack=eval_attack,
                      desc=f"YOPO-{m}-{n}", **run.loop)  # fmt: skip

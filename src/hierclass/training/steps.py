"""Per-batch training steps for :func:`hierclass.training.loop.run_epochs`.

Each factory returns ``step(model, xb, yb, generator) -> (summed loss, number correct)``:
the step fills the parameters' ``.grad`` for one batch (the loop zeroes them before and
steps the optimiser after) and returns two 0-d tensors left on the device.

* :func:`cross_entropy_step` -- standard training; with ``noise_sigma > 0`` Gaussian-noise
  training (Cohen et al.), with ``perturb`` any batch transformation before the update;
* :func:`pgd_step` -- PGD adversarial training (Madry et al.);
* YOPO's step lives with the algorithm, in :mod:`hierclass.training.yopo`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hierclass._utils.modules import model_mode

from .loop import TrainStep

Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_step(noise_sigma: float = 0.0, perturb: Perturb | None = None) -> TrainStep:
    """Cross-entropy on the batch, after ``perturb`` (if any) and then Gaussian noise.

    ``noise_sigma`` is the standard deviation of ``N(0, sigma^2 I)`` added in input space
    (no clipping) from the loop's per-epoch generator; ``perturb(model, xb, yb) -> xb_new``
    runs with the model in train mode and must return a tensor shaped like ``xb``.

    Examples
    --------
    >>> step = cross_entropy_step(noise_sigma=0.25)
    >>> net = torch.nn.Linear(3, 2)
    >>> loss, correct = step(net, torch.rand(4, 3), torch.tensor([0, 1, 0, 1]),
    ...                      torch.Generator().manual_seed(0))
    >>> loss.dim(), net.weight.grad is not None
    (0, True)
    """

    def step(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator):
        if perturb is not None:
            new = perturb(model, xb, yb)
            if not isinstance(new, torch.Tensor) or new.shape != xb.shape:
                got = list(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                raise ValueError(
                    f"perturb must return a tensor of shape {list(xb.shape)}, got {got}"
                )
            xb = new.detach()
            model.zero_grad(set_to_none=True)  # gradients perturb left on parameters
            model.train()  # in case perturb switched modes
        if noise_sigma > 0:
            xb = xb + noise_sigma * torch.randn(
                xb.shape, generator=generator, device=xb.device, dtype=xb.dtype
            )
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        return loss.detach() * yb.shape[0], (logits.detach().argmax(dim=1) == yb).sum()

    return step


def pgd_step(attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> TrainStep:
    """Madry et al.'s step: replace the batch by ``attack``'s examples, then cross-entropy.

    The attack runs with the model in eval mode, so batch-norm statistics are not updated by
    it; its randomness (random start) comes from torch's global RNG, which the loop seeds
    per epoch. ``attack`` is typically :class:`hierclass.attacks.PGD` over the same model;
    its ``perturb`` method (no per-batch re-validation) is used when it has one.

    Examples
    --------
    >>> from hierclass.attacks import PGD
    >>> net = torch.nn.Linear(3, 2)
    >>> step = pgd_step(PGD(net, eps=0.1, step_size=0.05, steps=2))
    >>> loss, correct = step(net, torch.rand(4, 3), torch.tensor([0, 1, 0, 1]), None)
    >>> bool(loss > 0)
    True
    """
    generate = getattr(attack, "perturb", attack)

    def step(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator):
        # The data were validated once at the boundary; skip the per-batch host-side check.
        with model_mode(model, False), torch.enable_grad():
            x_adv = generate(xb, yb).detach()
        model.zero_grad(set_to_none=True)
        logits = model(x_adv)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        return loss.detach() * yb.shape[0], (logits.detach().argmax(1) == yb).sum()

    return step

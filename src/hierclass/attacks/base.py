"""What every attack shares: input checks, the model's mode, and gradients under ``no_grad``.

An attack is a callable ``attack(x, y) -> x_adv`` on inputs in [0, 1]. The model can be an
``nn.Module``, a :class:`~hierclass.Hierarchy` (anything with ``nodes()``), or any callable
returning logits; for a plain callable there are no modes to manage.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from hierclass.channels_last import (
    ChannelsLastForward,
    call_with_fallback,
    check_channels_last,
    has_4d_weights,
)

Model = Callable[[torch.Tensor], torch.Tensor]

NORMS = ("linf", "l2")


def _modules_of(model: Any) -> list[nn.Module]:
    """The ``nn.Module`` objects whose train/eval flags an attack may touch."""
    if isinstance(model, nn.Module):
        return [model]
    nodes = getattr(model, "nodes", None)
    if callable(nodes):
        # A Hierarchy is a plain object holding modules; its nodes carry the flags.
        return [node for _, node in nodes() if isinstance(node, nn.Module)]
    return []


@contextlib.contextmanager
def model_mode(model: Any, training: bool | None = False) -> Iterator[None]:
    """Set the model's train/eval mode for a block and restore every submodule's flag after.

    Flags are saved per submodule, so a model with mixed modes (e.g. a frozen batch-norm
    inside a training network) comes back exactly as it was, even if the block raises.

    Parameters
    ----------
    model : nn.Module, Hierarchy or callable
        The model; callables without modules are left alone.
    training : bool or None
        Mode to use inside the block; ``None`` keeps the caller's mode.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout())
    >>> with model_mode(net, training=False):
    ...     net[1].training
    False
    >>> net[1].training
    True
    """
    saved = [(m, m.training) for root in _modules_of(model) for m in root.modules()]
    try:
        if training is not None:
            for root in _modules_of(model):
                root.train(training)
        yield
    finally:
        for module, flag in saved:
            module.training = flag


def check_unit_interval(x: torch.Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` unless every entry of ``x`` lies in [0, 1] (one host sync).

    Examples
    --------
    >>> check_unit_interval(torch.tensor([0.0, 0.5, 1.0]))
    >>> check_unit_interval(torch.tensor([1.5]))
    Traceback (most recent call last):
    ...
    ValueError: x must lie in [0, 1] (normalisation belongs inside the model); got values in ...
    """
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if not (lo >= 0.0 and hi <= 1.0):  # written this way so NaN fails too
        raise ValueError(
            f"{name} must lie in [0, 1] (normalisation belongs inside the model); "
            f"got values in [{lo:g}, {hi:g}]"
        )


def check_labels(y: torch.Tensor, x: torch.Tensor, name: str = "y") -> None:
    """Raise unless ``y`` is an integer tensor of shape ``[B]`` matching ``x``'s batch.

    Examples
    --------
    >>> check_labels(torch.tensor([0, 2]), torch.zeros(2, 3))
    >>> check_labels(torch.tensor([0, 2, 1]), torch.zeros(2, 3))
    Traceback (most recent call last):
    ...
    ValueError: y must have shape [B] = [2] to match x (2, 3), got (3,)
    """
    if not torch.is_tensor(y):
        raise TypeError(f"{name} must be a torch.Tensor of labels, got {type(y).__name__}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor, got dtype {y.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} must have shape [B] = [{x.shape[0]}] to match x {tuple(x.shape)}, "
            f"got {tuple(y.shape)}"
        )


def check_budget(
    eps: float,
    alpha: float,
    steps: int,
    norm: str,
    *,
    alpha_name: str = "alpha (step size)",
    steps_name: str = "steps",
) -> None:
    """Validate the threat-model numbers shared by PGD and YOPO.

    Examples
    --------
    >>> check_budget(0.3, 0.01, 40, "linf")
    >>> check_budget(-0.1, 0.01, 40, "linf")
    Traceback (most recent call last):
    ...
    ValueError: eps must be >= 0, got -0.1
    """
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"{steps_name} must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"{steps_name} must be >= 1, got {steps}")
    for label, value in (("eps", eps), (alpha_name, alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{label} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{label} must be finite, got {value}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if alpha <= 0:
        raise ValueError(f"{alpha_name} must be > 0, got {alpha}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class Attack:
    """Base class: ``attack(x, y) -> x_adv`` with checks, eval mode and gradients enabled.

    Subclasses implement :meth:`perturb`. ``__call__`` validates ``x`` (a float tensor in
    [0, 1]) and ``y`` (labels ``[B]``), puts the model in eval mode (``eval_mode=True``) or
    leaves its mode alone, enables gradients even under a caller's ``torch.no_grad()``, and
    restores every submodule's train/eval flag afterwards.

    Parameters
    ----------
    model : callable
        Maps a batch ``[B, ...]`` in [0, 1] to logits ``[B, K]``.
    eval_mode : bool
        Attack the model in eval mode (dropout off, batch-norm running statistics, which are
        then not updated by the attack). ``False`` attacks it in whatever mode it is in.
    channels_last : bool or None
        Run a convolutional ``nn.Module`` with channels-last copies of its 4-D weights and
        inputs (:class:`~hierclass.channels_last.ChannelsLastForward`; the model itself is not
        changed, and the copies follow its training). ``None`` (default) does so for 4-D
        inputs on CPU, where oneDNN's convolutions are faster that way, and falls back to the
        plain call for a model whose ``forward`` cannot run channels-last; ``False`` never.

    Examples
    --------
    >>> class Identity(Attack):
    ...     def perturb(self, x, y):
    ...         return x.clone()
    >>> Identity(torch.nn.Linear(4, 2))(torch.rand(3, 4), torch.tensor([0, 1, 0])).shape
    torch.Size([3, 4])
    """

    def __init__(
        self, model: Model, *, eval_mode: bool = True, channels_last: bool | None = None
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable (x -> logits), got {type(model).__name__}")
        self.model = model
        self.eval_mode = eval_mode
        self.channels_last = check_channels_last(channels_last, model)
        self.forward_: Callable[[torch.Tensor], torch.Tensor] = model
        self._fast_: ChannelsLastForward | None = None
        self._fast_works_: bool | None = None  # learnt on the first auto call

    def _pick_forward(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model, or its channels-last twin when that is asked for or (auto) likely faster."""
        if self.channels_last is False or not has_4d_weights(self.model):
            return self.model
        if self.channels_last is None and (x.dim() != 4 or x.device.type != "cpu"):
            return self.model
        if self._fast_ is None:
            self._fast_ = ChannelsLastForward(self.model)
        if self.channels_last is None and self._fast_works_ is None:
            # one sample tells whether forward() can run channels-last at all (a .view on a
            # conv output cannot); then the choice is remembered
            _, self._fast_works_ = call_with_fallback(self._fast_, self.model, x[:1])
        if self.channels_last is None and not self._fast_works_:
            return self.model
        return self._fast_

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(x, dict):
            raise TypeError(
                "attacks perturb one tensor; for a dict batch attack the modality a node reads "
                "(hierclass.attacks.sequential_attack / budgeted_attack take a threat model)"
            )
        check_unit_interval(x, "x")
        check_labels(y, x, "y")
        y = y.to(device=x.device, dtype=torch.long)
        mode = False if self.eval_mode else None
        # inference_mode(False) + clone: a caller under inference_mode still gets gradients.
        with torch.inference_mode(False), model_mode(self.model, mode), torch.enable_grad():
            x = x.detach().clone() if x.is_inference() else x.detach()
            y = y.clone() if y.is_inference() else y
            self.forward_ = self._pick_forward(x)
            x_adv = self.perturb(x, y)
        return x_adv.detach()

    def perturb(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return adversarial examples for a validated batch (subclasses implement this)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if k != "model" and not k.endswith("_")
        )
        return f"{type(self).__name__}({params})"

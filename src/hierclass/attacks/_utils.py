"""Checks and context managers the attacks (and adversarial training) share.

Private: ``model_mode``, ``check_labels`` and ``check_unit_interval`` are not public API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


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

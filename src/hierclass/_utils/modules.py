"""What a room needs to know about a model: where it lives and which mode it is in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def model_device(model: Any) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for plain callables).

    A :class:`~hierclass.Hierarchy` (anything with ``nodes()``) reports its first node's.

    Examples
    --------
    >>> model_device(torch.nn.Linear(2, 2)), model_device(lambda t: t)
    (device(type='cpu'), device(type='cpu'))
    """
    for module in modules_of(model):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    return torch.device("cpu")


def modules_of(model: Any) -> list[nn.Module]:
    """The ``nn.Module`` objects whose train/eval flags belong to ``model``."""
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
    saved = [(m, m.training) for root in modules_of(model) for m in root.modules()]
    try:
        if training is not None:
            for root in modules_of(model):
                root.train(training)
        yield
    finally:
        for module, flag in saved:
            module.training = flag

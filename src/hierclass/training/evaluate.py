"""Accuracy of a model on a data set, clean or under an attack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hierclass._utils.checks import check_labels, positive_int
from hierclass._utils.modules import model_device, model_mode
from hierclass.batch import select_modality

from ._data import as_tensors


def evaluate_accuracy(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: Any,
    y: torch.Tensor | None = None,
    batch_size: int = 512,
    *,
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    input_key: str | None = None,
    device: str | torch.device | None = None,
) -> float:
    """Fraction of samples whose argmax logit equals the label (clean, or on ``attack(x, y)``).

    Runs in eval mode and restores each submodule's train/eval flag afterwards; synchronises
    with the device once.

    Parameters
    ----------
    model : callable
        Maps ``[B, ...]`` to logits ``[B, K]`` (an ``nn.Module`` or any callable).
    x : Tensor ``[N, ...]``, dict of tensors, or a ``Dataset``/``DataLoader`` of pairs
        Inputs; with a dict, ``input_key`` names the modality the model reads.
    y : LongTensor ``[N]``, optional
        Labels (``None`` when ``x`` is a data set carrying them).
    batch_size : int, default 512
        Evaluation batch size (only memory depends on it).
    attack : callable, optional
        ``attack(xb, yb) -> xb_adv`` (e.g. :class:`hierclass.attacks.PGD`): robust accuracy.
    input_key : str, optional
        Key of the modality to read when ``x`` is a dict.
    device : str or torch.device, optional
        Where to run; defaults to the model's device (CPU for plain callables).

    Returns
    -------
    float
        Accuracy in [0, 1].

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2)), model.bias.zero_()
    >>> evaluate_accuracy(model, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    0.5
    """
    x, y = as_tensors(x, y, "x")
    xs = select_modality(x, input_key, "x")
    labels = check_labels(y, xs, "y")
    batch_size = positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else model_device(model)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with model_mode(model, False):
        for start in range(0, xs.shape[0], batch_size):
            xb = xs[start : start + batch_size].to(device)
            yb = labels[start : start + batch_size].to(device)
            if attack is not None:
                xb = attack(xb, yb)
            with torch.inference_mode():
                logits = model(xb)
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(xb):
                got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
                raise ValueError(f"model must return logits of shape [{len(xb)}, K], got {got}")
            if start == 0 and len(labels) and int(labels.max()) >= logits.shape[1]:
                # as fit refuses them: such a label can never be predicted, so no accuracy
                raise ValueError(
                    f"y has label {int(labels.max())} but the model outputs {logits.shape[1]} "
                    f"logits (labels must be in 0..{logits.shape[1] - 1})"
                )
            correct += (logits.argmax(dim=1) == yb).sum()
    return int(correct) / xs.shape[0]


def num_outputs(model: nn.Module, xb: torch.Tensor) -> int:
    """Number of logits the model outputs, from a forward pass of ``xb`` in eval mode.

    Examples
    --------
    >>> num_outputs(torch.nn.Linear(3, 5), torch.zeros(2, 3))
    5
    """
    with model_mode(model, False), torch.no_grad():
        logits = model(xb)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != xb.shape[0]:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape [B, K], got {got}")
    return int(logits.shape[1])

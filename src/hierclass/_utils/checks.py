"""Argument checks shared by every room: one home, one message per kind of mistake.

Each check raises ``TypeError``/``ValueError`` naming the argument, what was expected and
what arrived, and returns the value normalised (an ``int``, a ``float``, a ``long`` tensor).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def positive_int(value: Any, name: str) -> int:
    """``value`` as an ``int >= 1`` (a bool is not an int here).

    Examples
    --------
    >>> positive_int(3, "epochs")
    3
    >>> positive_int(0, "epochs")
    Traceback (most recent call last):
    ...
    ValueError: epochs must be an int >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def non_negative_int(value: Any, name: str) -> int:
    """``value`` as an ``int >= 0`` (seeds, offsets).

    Examples
    --------
    >>> non_negative_int(0, "seed")
    0
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def non_negative(value: Any, name: str) -> float:
    """``value`` as a finite ``float >= 0``.

    Examples
    --------
    >>> non_negative(0, "noise_sigma")
    0.0
    >>> non_negative(-0.1, "noise_sigma")
    Traceback (most recent call last):
    ...
    ValueError: noise_sigma must be a number >= 0, got -0.1
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def positive_number(value: Any, name: str) -> float:
    """``value`` as a finite ``float > 0`` (learning rates, step sizes).

    Examples
    --------
    >>> positive_number(0.0, "lr")
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number > 0, got 0.0
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > 0 and math.isfinite(value))
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_labels(
    y: Any, x: Any, name: str = "y", *, num_classes: int | None = None
) -> torch.Tensor:
    """Integer labels ``[B]``, one per row of ``x`` (a batch, or its size as an int).

    Returns ``y`` as ``int64``. With ``num_classes``, labels must also lie in
    ``0..num_classes-1`` (one host synchronisation); without it only the dtype and the shape
    are checked (no synchronisation).

    Examples
    --------
    >>> check_labels(torch.tensor([0, 2]), torch.zeros(2, 3))
    tensor([0, 2])
    >>> check_labels(torch.tensor([0, 2, 1]), torch.zeros(2, 3))
    Traceback (most recent call last):
    ...
    ValueError: y must have shape [2] (one label per row of x, shape [2, 3]), got [3]
    >>> check_labels(torch.tensor([0, 5]), 2, num_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: y has label 5 but there are 3 classes (labels must be in 0..2)
    """
    if not torch.is_tensor(y):
        raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must hold integer labels (an integer tensor), got dtype {y.dtype}")
    if isinstance(x, int):
        n, where = x, "the inputs"
    else:
        n = x.shape[0] if torch.is_tensor(x) else len(x)
        shape = list(x.shape) if torch.is_tensor(x) else n
        where = f"x, shape {shape}"
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape [{n}] (one label per row of {where}), got {list(y.shape)}"
        )
    y = y.to(torch.long)
    if num_classes is not None and y.numel():
        lo, hi = (int(v) for v in torch.aminmax(y))
        if lo < 0:
            raise ValueError(f"{name} must be >= 0, got a label {lo}")
        if hi >= num_classes:
            raise ValueError(
                f"{name} has label {hi} but there are {num_classes} classes (labels must be in "
                f"0..{num_classes - 1})"
            )
    return y


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

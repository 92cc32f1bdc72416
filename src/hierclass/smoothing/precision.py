"""Running a base classifier in reduced precision (``Smooth(amp_dtype=...)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["check_amp_dtype", "with_autocast"]

AMP_DTYPES = (torch.bfloat16, torch.float16)


def with_autocast(
    forward: Callable[[Any], torch.Tensor], device: torch.device, dtype: torch.dtype
) -> Callable[[Any], torch.Tensor]:
    """``forward`` run under ``torch.autocast(device.type, dtype)``, returning float32 logits.

    The logits are cast back so that argmax ties and subset heads see one dtype whatever the
    precision; the votes are those of the reduced-precision classifier.

    Examples
    --------
    >>> f = with_autocast(torch.nn.Linear(3, 2), torch.device("cpu"), torch.bfloat16)
    >>> f(torch.rand(4, 3)).dtype
    torch.float32
    """

    def run(batch: Any) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype):
            out = forward(batch)
        return out.float() if isinstance(out, torch.Tensor) else out

    return run


def check_amp_dtype(amp_dtype: Any) -> torch.dtype | None:
    """Validate an ``amp_dtype`` argument: ``None``, ``torch.bfloat16`` or ``torch.float16``.

    Examples
    --------
    >>> check_amp_dtype(torch.bfloat16)
    torch.bfloat16
    >>> check_amp_dtype(torch.float64)
    Traceback (most recent call last):
    ...
    ValueError: amp_dtype must be None, torch.bfloat16 or torch.float16, got torch.float64
    """
    if amp_dtype is not None and amp_dtype not in AMP_DTYPES:
        raise ValueError(
            f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {amp_dtype!r}"
        )
    return amp_dtype

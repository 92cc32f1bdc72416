"""Running a base classifier in reduced precision (``Smooth(amp_dtype=...)``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "check_amp_dtype",
    "cpu_capability",
    "cpu_has_native_bf16",
    "warn_slow_amp",
    "with_autocast",
]

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


@functools.cache
def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX512_BF16 or AMX); ``None``: unknown.

    Read from ``/proc/cpuinfo`` (Linux); elsewhere the answer is unknown. Without native
    support torch emulates bfloat16 matrix products, several times slower than float32.

    Examples
    --------
    >>> cpu_has_native_bf16() in (True, False, None)
    True
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def warn_slow_amp(amp_dtype: torch.dtype | None, device: torch.device, stacklevel: int = 3) -> None:
    """Warn when ``amp_dtype=torch.bfloat16`` will run on a CPU without native bfloat16.

    Measured on a 2-core AVX-512 CPU without AVX512_BF16/AMX: a CIFAR ResNet certified 8x
    slower in bfloat16 than in float32. The certificate stays valid; only the time suffers.

    Examples
    --------
    >>> warn_slow_amp(None, torch.device("cpu"))  # float32: nothing to say
    """
    if (
        amp_dtype is not torch.bfloat16
        or device.type != "cpu"
        or cpu_has_native_bf16() is not False
    ):
        return
    warnings.warn(
        f"amp_dtype=torch.bfloat16 on a CPU without native bfloat16 ({cpu_capability()}: no "
        "AVX512_BF16 or AMX): torch emulates it, typically several times slower than float32; "
        "leave amp_dtype=None here",
        stacklevel=stacklevel,
    )


def cpu_capability() -> str:
    """torch's name for the CPU's vector instructions (``AVX2``, ``AVX512``, ...).

    Examples
    --------
    >>> isinstance(cpu_capability(), str)
    True
    """
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"

"""One input preparation for :class:`~hierclass.Smooth` and
:class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`: same checks, same errors.

The arguments every certifier shares are checked here too: draw counts (:func:`check_count`)
and noise indices (:func:`noise_index`).

A sample (no batch dimension) is a floating-point tensor or a non-empty dict of tensors; its
floating-point values must be finite and inside the range in force
(:func:`hierclass.inputs.check_inputs`: image-shaped tensors default to [0, 1], any modality
may declare a range). Nothing is clamped. Models left in training mode draw a warning: dropout
and batch norm make the base classifier random and batch-dependent, which voids the
certificate's premise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from hierclass._utils.checks import positive_int
from hierclass.inputs import InputRange, check_inputs
from hierclass.smoothing.certificates.bounds import check_alpha

__all__ = [
    "BatchSize",
    "check_budget",
    "check_count",
    "check_dataset_inputs",
    "indexed_stream",
    "noise_index",
    "prepare_sample",
    "warn_training_mode",
]

#: A batch size: an int, or ``"auto"`` (probe the fastest once per model and input shape).
BatchSize = int | str


def check_count(name: str, value: Any) -> int:
    """Validate a number of Monte-Carlo draws: an int >= 1 (one rule with every other count:
    :func:`hierclass._utils.checks.positive_int`, so ``n=1.5`` and ``epochs=1.5`` get the same
    error).

    Examples
    --------
    >>> check_count("n", 500)
    500
    >>> check_count("n", 2.5)
    Traceback (most recent call last):
    ...
    ValueError: n must be an int >= 1, got 2.5
    """
    return positive_int(value, name)


def check_budget(n0: Any, n: Any, alpha: Any) -> tuple[int, int, float]:
    """``(n0, n, alpha)`` of a certification, validated: draw counts >= 1, ``alpha`` in (0, 1).

    Examples
    --------
    >>> check_budget(100, 1000, 0.001)
    (100, 1000, 0.001)
    """
    return check_count("n0", n0), check_count("n", n), check_alpha(alpha)


def noise_index(index: Any) -> int:
    """A noise index: ``index`` itself (validated), or a fresh random one for ``None``.

    Fresh indices come from torch's global generator (so ``torch.manual_seed`` makes a whole
    script reproducible) and span ``[2**62, 2**63)``, apart from the data-set positions that
    drivers pass explicitly.

    Examples
    --------
    >>> noise_index(7), noise_index(None) >= 2**62
    (7, True)
    """
    if index is None:
        return 2**62 + int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an int >= 0 or None, got {type(index).__name__}")
    if index < 0:
        raise ValueError(f"noise indices must be >= 0, got {index}")
    return int(index)


def prepare_sample(
    x: Any, device: torch.device, *, input_range: InputRange = None, what: str = "the input"
) -> Any:
    """One sample, validated and moved to ``device``: a tensor or a dict of tensors.

    Examples
    --------
    >>> prepare_sample(torch.zeros(1, 2, 2), torch.device("cpu")).shape
    torch.Size([1, 2, 2])
    >>> prepare_sample(2 * torch.ones(1, 2, 2), torch.device("cpu"))
    Traceback (most recent call last):
    ...
    ValueError: the input must lie in [0, 1] (the default for image-shaped inputs; ...
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{what} must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() == 0:
            raise ValueError(f"{what} must be one sample of shape [...], got a 0-d tensor")
        check_inputs(x, input_range=input_range, batched=False, what=what)
        return x.to(device)
    if isinstance(x, Mapping):
        if not x:
            raise ValueError(f"{what} must have at least one modality, got an empty dict")
        for k, v in x.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"modality {k!r} must be a tensor, got {type(v).__name__}")
        check_inputs(x, input_range=input_range, batched=False, what=what)
        return {k: v.to(device) for k, v in x.items()}
    raise TypeError(
        f"{what} must be a tensor or a non-empty dict of tensors, got {type(x).__name__}"
    )


def check_dataset_inputs(x: Any, *, input_range: InputRange = None) -> None:
    """Validate a whole data set ``[N, ...]`` (or dict of them) once, before certifying it.

    Examples
    --------
    >>> check_dataset_inputs(torch.rand(3, 1, 4, 4))
    >>> check_dataset_inputs(torch.full((2, 5), float("nan")))
    Traceback (most recent call last):
    ...
    ValueError: the data set must be finite, got 10 non-finite values (inf or nan) (samples [0, 1])
    """
    if isinstance(x, torch.Tensor) and not x.is_floating_point():
        raise TypeError(f"the data set must be a floating-point tensor, got dtype {x.dtype}")
    check_inputs(x, input_range=input_range, batched=True, what="the data set")


def warn_training_mode(*models: Any, stacklevel: int = 3) -> None:
    """Warn once if any ``nn.Module`` among ``models`` is in training mode.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     warn_training_mode(torch.nn.Dropout())
    >>> "training mode" in str(w[0].message)
    True
    """
    if any(isinstance(m, torch.nn.Module) and m.training for m in models):
        warnings.warn(
            "a model is in training mode (dropout and batch norm then make it random and "
            "batch-dependent); call .eval() before certifying",
            stacklevel=stacklevel,
        )


def indexed_stream(
    prepare: Callable[[Any], Any], xs: Iterable[Any], indices: Iterable[Any] | None = None
) -> tuple[Any, Iterator[tuple[Any, int]]]:
    """``(first, pairs)``: a stream of inputs, prepared one by one, with their noise indices.

    ``first`` is the first input, prepared eagerly (certifiers probe their batch size on it),
    or ``None`` for an empty stream; ``pairs`` yields ``(prepared input, noise index)`` lazily,
    ``first`` included. Without ``indices`` every input draws a fresh random noise index, so
    independent calls draw independent noise; with them, each index is validated.

    Examples
    --------
    >>> first, pairs = indexed_stream(lambda x: 2 * x, [1, 2], indices=[5, 9])
    >>> first, list(pairs)
    (2, [(2, 5), (4, 9)])
    >>> list(indexed_stream(lambda x: x, [1, 2], indices=[5])[1])
    Traceback (most recent call last):
    ...
    ValueError: indices is shorter than the inputs
    """
    xs_iter = iter(xs)
    first = next(xs_iter, None)
    if first is None:
        return None, iter(())
    first = prepare(first)
    idx_iter = None if indices is None else iter(indices)

    def pairs() -> Iterator[tuple[Any, int]]:
        x = first
        while x is not None:
            i = None if idx_iter is None else next(idx_iter, None)
            if idx_iter is not None and i is None:
                raise ValueError("indices is shorter than the inputs")
            yield x, noise_index(i)
            nxt = next(xs_iter, None)
            x = None if nxt is None else prepare(nxt)

    return first, pairs()

"""Run a convolutional model in channels-last memory format without changing the model.

On CPUs, oneDNN's convolutions are much faster on NHWC ("channels-last") tensors than on
PyTorch's default NCHW: the small CNN of the paper runs 1.5-2.3x faster on this project's
2-core machine (``docs/benchmarks.md``). Converting the user's model in place would change
an object they own, so :class:`ChannelsLastForward` keeps channels-last *copies* of the 4-D
weights and calls the model through :func:`torch.func.functional_call` with them.

The copies are refreshed whenever a weight changes: an optimiser's in-place update bumps the
parameter's version counter, and assigning ``.data`` changes its storage, both checked on
every call. The result equals ``model(x)`` up to floating-point summation order. Gradients
flow to the input only (the copies are constants), which is what attacks need.

A model whose ``forward`` calls ``.view`` on a convolution's output cannot run channels-last
(the strides do not allow the view) and raises; callers that choose the layout automatically
catch that and fall back to the plain call (:func:`call_with_fallback`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["ChannelsLastForward", "call_with_fallback", "check_channels_last", "has_4d_weights"]


def has_4d_weights(model: Any) -> bool:
    """Whether ``model`` is an ``nn.Module`` with a floating-point 4-D parameter (a conv).

    Examples
    --------
    >>> has_4d_weights(torch.nn.Conv2d(1, 2, 3)), has_4d_weights(torch.nn.Linear(2, 2))
    (True, False)
    """
    if not isinstance(model, nn.Module):
        return False
    return any(p.dim() == 4 and p.is_floating_point() for p in model.parameters())


def check_channels_last(channels_last: Any, *models: Any) -> bool | None:
    """Validate a ``channels_last`` argument: ``None`` (automatic), ``True`` or ``False``.

    ``True`` needs at least one of ``models`` to have 4-D (convolution) weights.

    Examples
    --------
    >>> check_channels_last(None, torch.nn.Linear(2, 2)) is None
    True
    >>> check_channels_last(True, torch.nn.Linear(2, 2))
    Traceback (most recent call last):
    ...
    ValueError: channels_last=True needs an nn.Module with 4-D (convolution) weights, got Linear
    """
    if channels_last is not None and not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be None, True or False, got {channels_last!r}")
    if channels_last and not any(has_4d_weights(m) for m in models):
        names = ", ".join(type(m).__name__ for m in models)
        raise ValueError(
            f"channels_last=True needs an nn.Module with 4-D (convolution) weights, got {names}"
        )
    return channels_last


class _EntryPoint(nn.Module):
    """Exposes ``getattr(model, entry)`` as ``forward`` so functional_call can wrap it."""

    def __init__(self, model: nn.Module, entry: str) -> None:
        super().__init__()
        self.model = model
        self.entry = entry

    def forward(self, x: Any) -> Any:
        return getattr(self.model, self.entry)(x)


class ChannelsLastForward:
    """``model(x)`` computed with the 4-D weights and 4-D inputs in channels-last format.

    Parameters
    ----------
    model : nn.Module
        Any module; only its 4-D floating-point parameters and buffers are re-laid out.
    entry : str, default "forward"
        The name of the model's method to run (e.g. ``"scores"`` for a hierarchy node).

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
    ...                           torch.nn.Linear(64, 2))
    >>> x = torch.rand(5, 3, 6, 6)
    >>> fast = ChannelsLastForward(net)
    >>> torch.allclose(fast(x), net(x), atol=1e-5)
    True
    >>> net[0].weight.is_contiguous()  # the model itself is untouched
    True
    """

    def __init__(self, model: nn.Module, entry: str = "forward") -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"ChannelsLastForward needs an nn.Module, got {type(model).__name__}")
        if not callable(getattr(model, entry, None)):
            raise ValueError(f"{type(model).__name__} has no method {entry!r}")
        self.model = model
        self._wrapped = _EntryPoint(model, entry)
        # name -> (tensor, version, data_ptr, channels-last copy)
        self._copies: dict[str, tuple[torch.Tensor, int, int, torch.Tensor]] = {}

    def _weights(self) -> dict[str, torch.Tensor]:
        out = {}
        named = list(self.model.named_parameters()) + list(self.model.named_buffers())
        for name, t in named:
            if t.dim() != 4 or not t.is_floating_point():
                continue
            hit = self._copies.get(name)
            if hit is None or hit[0] is not t or hit[1] != t._version or hit[2] != t.data_ptr():
                copy = t.detach().contiguous(memory_format=torch.channels_last)
                hit = (t, t._version, t.data_ptr(), copy)
                self._copies[name] = hit
            out["model." + name] = hit[3]
        return out

    def __call__(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return functional_call(self._wrapped, self._weights(), (x,))

    def __repr__(self) -> str:
        return f"ChannelsLastForward({type(self.model).__name__})"


def call_with_fallback(
    fast: Callable[[Any], Any], plain: Callable[[Any], Any], x: Any
) -> tuple[Any, bool]:
    """Try ``fast(x)``; on a ``RuntimeError`` (e.g. a ``.view`` on channels-last strides) run
    ``plain(x)`` instead. Returns the output and whether the fast call worked.

    An error that is not about the layout happens again in the plain call and propagates.

    Examples
    --------
    >>> def fast(x):
    ...     raise RuntimeError("view size is not compatible with input tensor's size and stride")
    >>> call_with_fallback(fast, lambda x: x + 1, 1)
    (2, False)
    """
    try:
        return fast(x), True
    except RuntimeError:
        return plain(x), False

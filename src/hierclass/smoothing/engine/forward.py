"""The forward pass a certifier samples with: its memory layout, its precision, checked scores.

Both smoothers run their models through these two functions, so that the layout probe, the
autocast wrapper and the score checks cannot drift between the flat and the hierarchical
certificates:

* :func:`resolve_forward` chooses the batch size and the memory layout (``batch_size="auto"``
  probes both) for a forward that can be built in either layout;
* :func:`checked_scores` runs a forward and refuses anything but a ``[rows, width]`` tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from hierclass.batch import batch_size as batch_rows  # rows of a tensor or dict batch
from hierclass.smoothing.engine.batch_size import BatchPlan, resolve_plan
from hierclass.smoothing.engine.precision import with_autocast
from hierclass.smoothing.engine.prepare import BatchSize

__all__ = ["checked_scores", "resolve_forward"]

Forward = Callable[[Any], Any]


def checked_scores(
    forward: Forward,
    batch: Any,
    width: int,
    what: str = "the base classifier",
    width_from: str = "num_classes",
) -> torch.Tensor:
    """``forward(batch)``, refused unless it is a tensor of scores ``[rows, width]``.

    ``what`` names the model in the error, ``width_from`` where the expected width comes from.

    Examples
    --------
    >>> checked_scores(torch.nn.Linear(3, 2), torch.zeros(4, 3), 2).shape
    torch.Size([4, 2])
    >>> checked_scores(torch.nn.Linear(3, 5), torch.zeros(4, 3), 2)
    Traceback (most recent call last):
    ...
    ValueError: the base classifier must return logits of shape [4, 2] (num_classes=2), got [4, 5]
    """
    out = forward(batch)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{what} must return a tensor, got {type(out).__name__}")
    rows = batch_rows(batch)
    if out.dim() != 2 or out.shape[0] != rows or out.shape[1] != width:
        raise ValueError(
            f"{what} must return logits of shape [{rows}, {width}] ({width_from}={width}), "
            f"got {list(out.shape)}"
        )
    return out


def resolve_forward(
    batch_size: BatchSize,
    model: Any,
    example: Any,
    forward_in: Callable[[bool], Forward],
    *,
    sigma: float,
    layout: bool | None,
    convolutional: bool,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    expected_draws: int | None = None,
) -> tuple[BatchPlan, Forward]:
    """The batch plan and the forward to sample with.

    Parameters
    ----------
    batch_size : int or "auto"
        ``"auto"`` probes the fastest batch size, and the layout when ``layout`` is ``None``
        and the model is ``convolutional``.
    model : object
        The model the plan is cached for.
    example : Tensor or dict
        One prepared input (no batch dimension) of what ``model`` reads.
    forward_in : callable
        ``forward_in(channels_last)``: the model's forward in that layout (build each layout
        once: a channels-last copy holds its own weights).
    sigma : float
        Noise level of the probe's inputs.
    layout : bool or None
        The user's ``channels_last``: ``True``/``False`` fixes the layout, ``None`` lets the
        ``"auto"`` probe choose.
    convolutional : bool
        Whether the model has 4-d weights (only then can channels-last help).
    device : torch.device
        Where the model runs (the autocast device type).
    amp_dtype : torch.dtype, optional
        Run the forward under ``torch.autocast`` in this precision (it returns float32).
    expected_draws : int, optional
        Draws the run will take; a long ``"auto"`` run also considers ``torch.compile``.

    Returns
    -------
    (BatchPlan, callable)
        The plan (its ``channels_last`` is the layout in force) and the forward.

    Examples
    --------
    >>> m = torch.nn.Linear(3, 2)
    >>> plan, f = resolve_forward(64, m, torch.zeros(3), lambda cl: m, sigma=0.5,
    ...                           layout=None, convolutional=False, device=torch.device("cpu"))
    >>> plan.batch_size, plan.channels_last, f is m
    (64, False, True)
    """

    def in_precision(channels_last: bool) -> Forward:
        f = forward_in(channels_last)
        return f if amp_dtype is None else with_autocast(f, device, amp_dtype)

    probe_layout = layout is None and batch_size == "auto" and convolutional
    plain = in_precision(bool(layout))
    fast = in_precision(True) if probe_layout else None
    plan = resolve_plan(
        batch_size,
        model,
        example,
        sigma=sigma,
        forward=plain,
        channels_last=fast,
        variant=(amp_dtype, layout),
        expected_draws=expected_draws,
    )
    if layout is not None:  # the user's layout, whatever the probe measured
        plan = dataclasses.replace(plan, channels_last=layout)
    if plan.compiled:
        return plan, plan.forward
    return plan, fast if (plan.channels_last and fast is not None) else plain

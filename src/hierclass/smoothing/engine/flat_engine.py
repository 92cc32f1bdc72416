"""How a flat classifier is sampled: its forward pass (layout, precision), batch size, heads.

:func:`flat_engine` turns a :class:`~hierclass.Smooth` into the
:class:`~hierclass.smoothing.engine.sampling.CountEngine` that every flat certifier drives (Cohen's
``certify``, label subsets, sequential and ISS certification): it picks the memory layout and
batch size (``batch_size="auto"`` probes once), wraps the model in ``torch.autocast`` when asked,
and checks the scores of every batch (shape here, non-finite values on the device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from hierclass.channels_last import ChannelsLastForward, has_4d_weights
from hierclass.smoothing.engine.batch_size import resolve_plan
from hierclass.smoothing.engine.precision import with_autocast
from hierclass.smoothing.engine.prepare import BatchSize
from hierclass.smoothing.engine.sampling import CountEngine

__all__ = ["flat_engine"]


def checked_logits(forward: Callable[[Any], Any], batch: Any, num_classes: int) -> torch.Tensor:
    """``forward(batch)``, refused unless it is a tensor of logits ``[rows, num_classes]``."""
    out = forward(batch)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the base classifier must return a tensor, got {type(out).__name__}")
    rows = batch.shape[0] if isinstance(batch, torch.Tensor) else len(next(iter(batch.values())))
    if out.dim() != 2 or out.shape[0] != rows or out.shape[1] != num_classes:
        raise ValueError(
            f"the base classifier must return logits of shape [{rows}, {num_classes}] "
            f"(num_classes={num_classes}), got {list(out.shape)}"
        )
    return out


def flat_engine(
    smooth: Any,
    batch_size: BatchSize,
    example: Any,
    heads: Any = None,
    *,
    expected_draws: int | None = None,
) -> CountEngine:
    """The engine counting ``smooth``'s votes (and ``heads``' restricted votes) on noisy draws.

    Parameters
    ----------
    smooth : Smooth
        The smoothed classifier (model, sigma, seed, device, layout and precision options).
    batch_size : int or "auto"
        Draws per forward pass; ``"auto"`` probes the fastest size (and layout) on ``example``.
    example : Tensor or dict
        One prepared input (no batch dimension), for the probe.
    heads : SubsetHead, optional
        Label subsets whose restricted votes are counted as a second head.
    expected_draws : int, optional, keyword-only
        Noisy draws the whole run will take, when known: with ``"auto"``, a run long enough to
        repay it also considers ``torch.compile`` (:func:`~.batch_size.resolve_plan`).

    Examples
    --------
    >>> from hierclass import Smooth
    >>> s = Smooth(torch.nn.Linear(3, 2).eval(), num_classes=2, sigma=0.5)
    >>> flat_engine(s, 64, torch.zeros(3)).batch_size, flat_engine(s, 64, torch.zeros(3)).head_sizes
    (64, [2])
    """
    model = smooth.base_classifier
    plain, fast = model, None
    probe_layout = smooth.channels_last is None and batch_size == "auto"
    if smooth.channels_last or (probe_layout and has_4d_weights(model)):
        fast = ChannelsLastForward(model)
    if smooth.amp_dtype is not None:
        plain = with_autocast(plain, smooth.device, smooth.amp_dtype)
        if fast is not None:
            fast = with_autocast(fast, smooth.device, smooth.amp_dtype)
    if smooth.channels_last:  # a fixed layout: the probe only picks the batch size
        plain, fast = fast, None
    plan = resolve_plan(
        batch_size,
        model,
        example,
        sigma=smooth.sigma,
        forward=plain,
        channels_last=fast,
        variant=(smooth.amp_dtype, smooth.channels_last),
        expected_draws=expected_draws,
    )
    forward = plan.forward if plan.compiled else (fast if plan.channels_last else plain)
    num_classes = smooth.num_classes

    def evaluate(batch, segments):
        logits = checked_logits(forward, batch, num_classes)
        engine.flag_nonfinite(logits)
        out = [(logits.argmax(1), None)]
        if heads is not None:
            out.append((heads.bins(logits), None))
        return out

    sizes = [num_classes] if heads is None else [num_classes, heads.width]
    engine = CountEngine(
        evaluate,
        sizes,
        sigma=smooth.sigma,
        seed=smooth._base_seed(),
        batch_size=plan.batch_size,
        device=smooth.device,
        perturbed_keys=smooth.perturbed_keys,
    )
    return engine

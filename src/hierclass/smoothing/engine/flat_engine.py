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

from hierclass.channels_last import ChannelsLastForward, has_4d_weights
from hierclass.smoothing.engine.forward import checked_scores, resolve_forward
from hierclass.smoothing.engine.prepare import BatchSize
from hierclass.smoothing.engine.protocol import Prepared
from hierclass.smoothing.engine.sampling import CountEngine

__all__ = ["flat_engine"]


def flat_engine(
    smooth: Any,
    batch_size: BatchSize,
    example: Prepared,
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
    example : Prepared
        One prepared input (:meth:`Smooth.prepare <hierclass.Smooth.prepare>`), for the probe.
    heads : SubsetHead, optional
        Label subsets whose restricted votes are counted as a second head.
    expected_draws : int, optional, keyword-only
        Noisy draws the whole run will take, when known: with ``"auto"``, a run long enough to
        repay it also considers ``torch.compile`` (:func:`~.batch_size.resolve_plan`).

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> s = Smooth(torch.nn.Linear(3, 2).eval(), num_classes=2, sigma=0.5)
    >>> engine = flat_engine(s, 64, s.prepare(torch.zeros(3)))
    >>> engine.batch_size, engine.head_sizes
    (64, [2])
    """
    model = smooth.base_classifier
    channels_last_copy: list[ChannelsLastForward] = []  # built once, on first use

    def forward_in(channels_last: bool) -> Callable[[Any], Any]:
        if not channels_last:
            return model
        if not channels_last_copy:
            channels_last_copy.append(ChannelsLastForward(model))
        return channels_last_copy[0]

    plan, forward = resolve_forward(
        batch_size,
        model,
        example.sampled,
        forward_in,
        sigma=smooth.sigma,
        layout=smooth.channels_last,
        convolutional=has_4d_weights(model),
        device=smooth.device,
        amp_dtype=smooth.amp_dtype,
        expected_draws=expected_draws,
    )
    num_classes = smooth.num_classes

    def evaluate(batch, segments):
        logits = checked_scores(forward, batch, num_classes)
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
        seed=smooth.noise_seed(),
        batch_size=plan.batch_size,
        device=smooth.device,
        perturbed_keys=smooth.perturbed_keys,
    )
    return engine

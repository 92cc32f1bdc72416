"""What every certifier needs of a smoothed classifier: the protocol both smoothers implement.

:class:`~hierclass.Smooth` and :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`
both satisfy :class:`Smoothed`: they prepare an input (validate it, move it to the device and
split what the noise touches from what clean nodes read) and build the
:class:`~hierclass.smoothing.engine.sampling.CountEngine` that counts their votes. The
sequential, ISS and data-set certifiers are written against this protocol only, so a new
certifier, or a user's own smoother, needs nothing private of either class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from hierclass.smoothing.engine.prepare import BatchSize, indexed_stream
from hierclass.smoothing.engine.sampling import CountEngine

__all__ = ["Prepared", "Smoothed", "open_run"]


class Prepared(NamedTuple):
    """One input (no batch dimension), validated and on the smoother's device.

    Attributes
    ----------
    full : Tensor or dict of Tensor
        The whole input: what clean nodes read (nodes outside the threat model).
    sampled : Tensor or dict of Tensor
        What the engine draws noise for and the sampled models read: the whole input for a
        flat classifier, only the modalities the smoothed nodes read for a hierarchy.

    Examples
    --------
    >>> x = torch.zeros(3)
    >>> Prepared(x, x).sampled is x
    True
    """

    full: Any
    sampled: Any


@runtime_checkable
class Smoothed(Protocol):
    """A smoothed classifier as the certifiers see it.

    Attributes
    ----------
    sigma : float
        Noise level.
    device : torch.device
        Where noise is drawn and votes are counted.

    Examples
    --------
    >>> from hierclass import Smooth
    >>> isinstance(Smooth(torch.nn.Linear(2, 2).eval(), 2, sigma=0.5), Smoothed)
    True
    """

    sigma: float
    device: torch.device

    def prepare(self, x: Any) -> Prepared:
        """Validate one input and move it to the device (errors name what arrived)."""
        ...

    def engine(self, batch_size: BatchSize, example: Prepared) -> CountEngine:
        """The engine counting this classifier's votes; ``"auto"`` probes on ``example``."""
        ...


def open_run(
    smooth: Smoothed,
    xs: Iterable[Any],
    indices: Iterable[Any] | None,
    batch_size: BatchSize,
    **engine_options: Any,
) -> tuple[CountEngine | None, Iterator[tuple[Prepared, int]]]:
    """``(engine, pairs)`` for a stream of inputs: the prologue every certifier shares.

    The first input is prepared at once, so that bad input and the batch-size probe happen at
    the call rather than at the first ``next``; ``pairs`` yields ``(Prepared, noise index)``
    lazily, the first included. An empty stream gives ``(None, empty iterator)``.
    ``engine_options`` go to ``smooth.engine`` (e.g. ``heads`` for a flat classifier).

    Examples
    --------
    >>> from hierclass import Smooth
    >>> s = Smooth(torch.nn.Linear(2, 2).eval(), 2, sigma=0.5)
    >>> engine, pairs = open_run(s, [torch.zeros(2)], [7], 32)
    >>> engine.batch_size, [i for _, i in pairs]
    (32, [7])
    >>> open_run(s, [], None, 32)[0] is None
    True
    """
    first, pairs = indexed_stream(smooth.prepare, xs, indices)
    if first is None:
        return None, pairs
    return smooth.engine(batch_size, first, **engine_options), pairs

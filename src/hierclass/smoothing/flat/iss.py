"""Input-specific sample sizes (ISS, after Chen et al., AAAI 2022): a radius within a loss budget.

Cohen's ``certify`` spends ``max_n`` draws on every input although the radius barely grows
with ``n`` once ``pA`` is known well: ``sigma * Phi^-1(pA_lower(n))`` moves by less than a
few hundredths between ``n = 20,000`` and ``100,000`` for most inputs. ISS spends a small
*pilot* to learn roughly where ``pA`` is, then picks the smallest ``n`` whose expected radius
is within ``radius_loss`` of the one ``max_n`` draws would give.

Procedure (per input)
---------------------
1. ``n0`` selection draws pick ``c_A``.
2. ``n_pilot`` pilot draws (their own noise stream) give a two-sided Clopper-Pearson interval
   ``[p_lo, p_hi]`` for ``pA`` at level ``1 - pilot_alpha``.
3. ``n`` is the smallest size on a fine geometric grid up to ``max_n`` such that for every
   ``p`` in ``[p_lo, p_hi]``: ``R(max_n, p) - R(n, p) <= radius_loss``, where ``R(m, p) =
   sigma * Phi^-1(CP_lower(floor(p m), m, alpha))`` is the radius from ``m`` draws whose count
   sits at its mean (0 where that abstains). The largest such gap is reported as
   ``loss_bound``.
4. ``n`` **fresh** draws (a third noise stream) give Cohen's certificate:
   ``pA_lower = CP_lower(count, n, alpha)``, radius ``sigma * Phi^-1(pA_lower)``.

Soundness: the pilot only chooses ``n``; the certificate is computed from draws independent
of the pilot and of the selection, so for every fixed ``n`` it is Cohen's ``1 - alpha`` bound,
and hence also for ``n`` chosen from independent data (condition on the pilot). No share of
``alpha`` is spent on the pilot. The loss bound is a planning figure, not a guarantee: it
holds when ``pA`` lies in the pilot interval (probability ``>= 1 - pilot_alpha``) and the
final count is at its mean.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierclass.smoothing.certificates.bounds import (
    check_alpha,
    clopper_pearson_lower,
    clopper_pearson_upper,
    cohen_radius,
)
from hierclass.smoothing.certificates.counts import ABSTAIN
from hierclass.smoothing.engine.prepare import check_count
from hierclass.smoothing.engine.protocol import Smoothed
from hierclass.smoothing.engine.sampling import STREAM_SELECT, Request, Task
from hierclass.smoothing.sequential.sessions import run_flat

__all__ = ["ISSResult", "STREAM_ISS_FINAL", "STREAM_ISS_PILOT", "certify_iss_many", "plan_size"]

#: Noise streams of the pilot and of the final estimate (disjoint from every other stream).
STREAM_ISS_PILOT = (1 << 17) + 0
STREAM_ISS_FINAL = (1 << 17) + 1

_GRID_SIZES = 96  # candidate sample sizes between the pilot size and max_n
_GRID_P = 33  # points of the pilot interval the loss is maximised over


def _expected_radius(p: np.ndarray, m: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """``R(m, p)``: the radius from ``m`` draws whose count is ``floor(p m)``."""
    k = np.floor(p * m).astype(np.int64)
    return cohen_radius(clopper_pearson_lower(k, m, alpha), sigma)


def plan_size(
    p_lo: float, p_hi: float, *, max_n: int, min_n: int, alpha: float, sigma: float, loss: float
) -> tuple[int, float]:
    """The smallest ``n`` in ``[min_n, max_n]`` (geometric grid) within ``loss`` of ``max_n``.

    Returns ``(n, loss_bound)``: the chosen size and the largest expected radius gap
    ``R(max_n, p) - R(n, p)`` over ``p`` in ``[p_lo, p_hi]`` (see the module docstring).

    Examples
    --------
    >>> n, gap = plan_size(0.995, 1.0, max_n=100_000, min_n=1000, alpha=0.001, sigma=0.25,
    ...                    loss=0.05)
    >>> 1000 < n < 100_000, gap <= 0.05
    (True, True)
    """
    min_n = max(1, min(int(min_n), int(max_n)))
    sizes = np.unique(np.geomspace(min_n, max_n, _GRID_SIZES).round().astype(np.int64))
    sizes[-1] = max_n
    p = np.linspace(p_lo, p_hi, _GRID_P)
    full = _expected_radius(p, np.full_like(p, max_n, dtype=np.int64), alpha, sigma)
    pp, mm = np.meshgrid(p, sizes)
    gaps = full[None, :] - _expected_radius(pp, mm, alpha, sigma)
    worst = np.maximum(gaps.max(axis=1), 0.0)
    ok = np.flatnonzero(worst <= loss)
    j = int(ok[0]) if ok.size else len(sizes) - 1
    return int(sizes[j]), float(worst[j])


@dataclass
class ISSResult:
    """Certificate of one input with an input-specific sample size.

    Attributes
    ----------
    index : int
        Noise index.
    label : int
        ``c_A`` or ``ABSTAIN``.
    radius : float
        Cohen's certified radius from the ``n_samples`` final draws (valid at ``1 - alpha``).
    p_lower : float
        Clopper-Pearson lower bound from the final draws.
    n_samples : int
        Final estimation draws (the ``n`` ISS chose).
    n_pilot : int
        Pilot and selection draws (total cost: ``n_select + n_pilot + n_samples``).
    n_select : int
        Pilot and selection draws (total cost: ``n_select + n_pilot + n_samples``).
    loss_bound : float
        Planned radius loss vs ``max_n`` draws (see the module docstring).
    counts_select : ndarray of int
        Votes on each set of draws.
    counts_pilot : ndarray of int
        Votes on each set of draws.
    counts : ndarray of int
        Votes on each set of draws.
    seconds : float
        Wall time of this input's own draws (its share of the batches they rode in).

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # exact radius at x: x[0]
    >>> s = Smooth(f, num_classes=2, sigma=0.5)
    >>> r = s.certify_iss(torch.tensor([1.0]), radius_loss=0.1, alpha=0.01, index=0)
    >>> r.label, 0 < r.radius < 1.0, r.total_samples == r.n_select + r.n_pilot + r.n_samples
    (0, True, True)
    """

    index: int
    label: int
    radius: float
    p_lower: float
    n_samples: int
    n_pilot: int
    n_select: int
    loss_bound: float
    counts_select: np.ndarray
    counts_pilot: np.ndarray
    counts: np.ndarray
    seconds: float = 0.0

    @property
    def total_samples(self) -> int:
        """Every draw this certificate cost: selection, pilot and final."""
        return self.n_select + self.n_pilot + self.n_samples


def _check_loss(radius_loss: Any) -> float:
    if isinstance(radius_loss, bool) or not isinstance(
        radius_loss, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"radius_loss must be a float >= 0, got {type(radius_loss).__name__}")
    v = float(radius_loss)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"radius_loss must be a finite float >= 0, got {radius_loss}")
    return v


def certify_iss_many(
    smooth: Smoothed,
    xs: Iterable[Any],
    radius_loss: float = 0.05,
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    *,
    indices: Iterable[int] | None = None,
    n_pilot: int = 1000,
    pilot_alpha: float = 0.001,
) -> Iterator[ISSResult]:
    """ISS certification of a stream of inputs; yields results as inputs finish.

    See :meth:`Smooth.certify_iss <hierclass.smoothing.flat.smooth.Smooth.certify_iss>`.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # exact radius at x: x[0]
    >>> s = Smooth(f, num_classes=2, sigma=0.5)
    >>> (r,) = certify_iss_many(s, [torch.tensor([1.0])], radius_loss=0.1, alpha=0.01,
    ...                         indices=[0])
    >>> r.label, r.radius <= 1.0
    (0, True)
    """

    steps = _ISSSteps(
        loss=_check_loss(radius_loss),
        n0=check_count("n0", n0),
        max_n=check_count("max_n", max_n),
        n_pilot=check_count("n_pilot", n_pilot),
        alpha=check_alpha(alpha),
        pilot_alpha=check_alpha(pilot_alpha),
        sigma=smooth.sigma,
    )
    results = run_flat(smooth, xs, indices, batch_size, steps.start, steps.follow_up)
    return (res for _task, res in results)


class _ISSInput:
    """Bookkeeping of one input between its pilot and its final draws."""

    __slots__ = ("x", "seconds", "sel", "pilot", "c_a", "n", "gap")

    def __init__(self, x: Any) -> None:
        self.x = x
        self.seconds = 0.0
        self.n: int | None = None  # the planned final size, once the pilot is in


@dataclass(frozen=True)
class _ISSSteps:
    """The two stages of ISS for one input: selection + pilot, then the final draws."""

    loss: float
    n0: int
    max_n: int
    n_pilot: int
    alpha: float
    pilot_alpha: float
    sigma: float

    def start(self, x: Any, i: int) -> Task:
        reqs = [Request(STREAM_SELECT, self.n0), Request(STREAM_ISS_PILOT, self.n_pilot)]
        return Task(x, i, reqs, _ISSInput(x))

    def follow_up(self, task: Task) -> tuple[Task | None, ISSResult | None]:
        state: _ISSInput = task.payload
        state.seconds += task.seconds
        if state.n is None:
            self.plan(state, task.counts[0][0], task.counts[1][0])
            return Task(state.x, task.index, [Request(STREAM_ISS_FINAL, state.n)], state), None
        return None, self.result(task.index, state, task.counts[0][0])

    def plan(self, state: _ISSInput, sel: np.ndarray, pilot: np.ndarray) -> None:
        """Pick the final sample size from the pilot (the pilot only chooses ``n``)."""
        c_a = int(np.argmax(sel))
        s = int(pilot[c_a])
        p_lo = float(clopper_pearson_lower(s, self.n_pilot, self.pilot_alpha / 2))
        p_hi = float(clopper_pearson_upper(s, self.n_pilot, self.pilot_alpha / 2))
        state.n, state.gap = plan_size(
            p_lo,
            p_hi,
            max_n=self.max_n,
            min_n=min(self.n_pilot, self.max_n),
            alpha=self.alpha,
            sigma=self.sigma,
            loss=self.loss,
        )
        state.sel, state.pilot, state.c_a = sel, pilot, c_a

    def result(self, index: int, state: _ISSInput, counts: np.ndarray) -> ISSResult:
        """Cohen's certificate from the ``n`` fresh final draws."""
        p_lower = float(clopper_pearson_lower(int(counts[state.c_a]), state.n, self.alpha))
        return ISSResult(
            index=index,
            label=state.c_a if p_lower >= 0.5 else ABSTAIN,
            radius=cohen_radius(p_lower, self.sigma),
            p_lower=p_lower,
            n_samples=state.n,
            n_pilot=self.n_pilot,
            n_select=self.n0,
            loss_bound=state.gap,
            counts_select=state.sel,
            counts_pilot=state.pilot,
            counts=counts,
            seconds=state.seconds,
        )

"""Sequential certification at given radii: sample until each radius is decided.

Cohen's ``certify`` spends ``n = 100,000`` draws on every input. To draw a certified-accuracy
curve at a few radii ``r_1 < ... < r_R`` one only needs to know, per input, whether
``pA >= Phi(r / sigma)`` for each ``r``; most inputs settle that after a few thousand draws.

Procedure (per input)
---------------------
1. ``n0`` selection draws pick the top label ``c_A`` (never reused for estimation).
2. Fresh estimation draws are added look by look on a
   :class:`~hierclass.smoothing.confidence_sequences.GeometricSchedule` (``n_1 < ... <
   n_K = max_n``). At each look the schedule gives a lower bound ``L_k`` and an upper bound
   ``U_k`` on ``pA = P(f(x + eps) = c_A)`` (Clopper-Pearson at ``alpha / K``).
3. Radius ``r`` is *certified* at the first look where ``L_k >= Phi(r / sigma)``, and *not
   certifiable* at the first look where ``U_k < Phi(r / sigma)`` (whichever comes first; a
   decision is final). Sampling stops when every radius is decided, or at ``max_n``
   (undecided radii are then not certified).
4. The label is ``c_A`` if ``max L >= 1/2`` (Cohen's abstention rule) and, when radius 0 was
   asked for, radius 0 was certified; else ``ABSTAIN``.

Guarantee
---------
With probability ``>= 1 - alpha`` (over the estimation noise), ``L_k <= pA`` at every look
``k`` simultaneously (union bound over the ``K`` looks of a schedule fixed in advance). On
that event every radius reported certified satisfies ``pA >= Phi(r / sigma)``, so the smoothed
classifier returns ``c_A`` everywhere in the L2 ball of radius ``r`` (Cohen et al., Theorem 1
with ``pB = 1 - pA``): simultaneously over all radii, and whatever rule stopped the sampling,
because the event does not depend on when sampling stopped. The upper bounds only decide when
to *stop* trying; an error there costs a certificate, never soundness.

Noise: the estimation draws of look ``k`` come from their own noise stream
(``STREAM_LOOK_BASE + k``) seeded from ``(seed, index)``, so an input's decisions depend on its
index only: not on the batch size, on which other inputs share its batches, or on sharding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from hierclass.smoothing.bounds import check_alpha, check_sigma
from hierclass.smoothing.certificates import ABSTAIN
from hierclass.smoothing.confidence_sequences import GeometricSchedule
from hierclass.smoothing.prepare import indexed_stream
from hierclass.smoothing.sampling import STREAM_SELECT, CountEngine, Request, Task

__all__ = [
    "CERTIFIED",
    "REFUTED",
    "STREAM_LOOK_BASE",
    "UNDECIDED",
    "RadiiResult",
    "certify_radii",
    "certify_radii_many",
    "check_radii",
    "decide",
    "radius_thresholds",
    "update_decisions",
]

#: Look ``k``'s estimation draws come from noise stream ``STREAM_LOOK_BASE + k``: disjoint
#: from the selection, estimation and predict streams of :mod:`~hierclass.smoothing.sampling`.
STREAM_LOOK_BASE = 1 << 16

#: Decision codes of :func:`decide`.
CERTIFIED, UNDECIDED, REFUTED = 1, 0, -1


def check_radii(radii: Any) -> np.ndarray:
    """Validate radii: a non-empty sequence of distinct finite floats >= 0.

    Examples
    --------
    >>> check_radii([0, 0.25, 0.5]).tolist()
    [0.0, 0.25, 0.5]
    >>> check_radii([0.5, -1])
    Traceback (most recent call last):
    ...
    ValueError: radii must be finite and >= 0, got [0.5, -1.0]
    """
    if isinstance(radii, (str, bytes)):
        raise TypeError(f"radii must be a sequence of floats, got {type(radii).__name__}")
    try:
        r = np.asarray(radii, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"radii must be a sequence of floats, got {radii!r}") from None
    if r.size == 0:
        raise ValueError("radii must hold at least one radius, got none")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"radii must be finite and >= 0, got {r.tolist()}")
    if np.unique(r).size != r.size:
        raise ValueError(f"radii must be distinct, got {r.tolist()}")
    return r


def radius_thresholds(radii: np.ndarray, sigma: float) -> np.ndarray:
    """``Phi(r / sigma)``: the smallest ``pA`` that certifies radius ``r``.

    Examples
    --------
    >>> radius_thresholds(np.array([0.0, 0.5]), 0.5).round(4).tolist()
    [0.5, 0.8413]
    """
    return norm.cdf(np.asarray(radii, dtype=float) / check_sigma(sigma))


def decide(p_lower: Any, p_upper: Any, thresholds: np.ndarray) -> np.ndarray:
    """Decision per (input, radius): ``CERTIFIED``, ``REFUTED`` or ``UNDECIDED``.

    ``p_lower``/``p_upper`` are the running max of the lower and running min of the upper
    confidence-sequence bounds (shape ``[...]``); returns ``[..., len(thresholds)]``.
    Certified wins when both hold (which only happens outside the ``1 - alpha`` event).

    Examples
    --------
    >>> decide(0.9, 0.95, np.array([0.5, 0.85, 0.99])).tolist()
    [1, 1, -1]
    """
    lo = np.asarray(p_lower, dtype=float)[..., None]
    hi = np.asarray(p_upper, dtype=float)[..., None]
    out = np.where(hi < thresholds, REFUTED, UNDECIDED)
    return np.where(lo >= thresholds, CERTIFIED, out).astype(np.int8)


def update_decisions(
    status: np.ndarray, p_lower: Any, p_upper: Any, thresholds: np.ndarray
) -> np.ndarray:
    """Decide the still-undecided radii; a radius once decided keeps its decision.

    Keeping decisions final makes each radius's outcome the first crossing of its threshold,
    whatever other radii keep the sampling going.

    Examples
    --------
    >>> s = update_decisions(np.zeros(2, np.int8), 0.6, 0.7, np.array([0.5, 0.8]))
    >>> update_decisions(s, 0.9, 0.95, np.array([0.5, 0.8])).tolist()  # 0.8 stays refuted
    [1, -1]
    """
    new = decide(p_lower, p_upper, thresholds)
    return np.where(status == UNDECIDED, new, status).astype(np.int8)


@dataclass
class RadiiResult:
    """Outcome of sequential certification of one input at given radii.

    Attributes
    ----------
    index : int
        The noise index (the input's position in its data set).
    label : int
        ``c_A``, or ``ABSTAIN`` when ``p_lower < 1/2``.
    radii : tuple of float
        The radii asked for, in the caller's order.
    certified : ndarray of bool
        Per radius: certified (valid with probability ``>= 1 - alpha`` jointly over radii).
    n_samples : int
        Estimation draws used (selection draws not included).
    n_select : int
        Selection draws (``n0``).
    p_lower, p_upper : float
        Confidence-sequence bounds on ``pA`` when sampling stopped (running max / min).
    counts_select, counts : ndarray of int
        Votes on the selection and on all estimation draws.
    alpha, sigma : float
        Failure probability and noise level.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # exact radius at x: x[0]
    >>> s = Smooth(f, num_classes=2, sigma=0.5)
    >>> r = s.certify_radii(torch.tensor([1.0]), [0.0, 0.5, 2.0], alpha=0.01, index=0)
    >>> r.label, r.certified.tolist(), r.n_samples < 100_000
    (0, [True, True, False], True)
    """

    index: int
    label: int
    radii: tuple[float, ...]
    certified: np.ndarray
    n_samples: int
    n_select: int
    p_lower: float
    p_upper: float
    counts_select: np.ndarray
    counts: np.ndarray
    alpha: float
    sigma: float

    @property
    def radius(self) -> float:
        """The largest certified radius among :attr:`radii` (0.0 when none is)."""
        cert = [r for r, c in zip(self.radii, self.certified) if c]
        return max(cert) if cert else 0.0

    @property
    def radius_bound(self) -> float:
        """``sigma * Phi^-1(p_lower)``: also certified on the same event (>= :attr:`radius`)."""
        if self.label == ABSTAIN or self.p_lower < 0.5:
            return 0.0
        return float(self.sigma * norm.ppf(self.p_lower))


class _Input:
    """Bookkeeping of one input while it is being certified."""

    __slots__ = (
        "index",
        "x",
        "payload",
        "c_a",
        "look",
        "p_lower",
        "p_upper",
        "sel",
        "est",
        "status",
    )

    def __init__(self, index: int, x: Any, payload: Any) -> None:
        self.index = index
        self.x = x
        self.payload = payload
        self.c_a = -1
        self.look = -1
        self.p_lower = 0.0
        self.p_upper = 1.0
        self.sel: np.ndarray | None = None
        self.est: np.ndarray | None = None
        self.status: np.ndarray | None = None


def _run_sessions(
    engine: CountEngine, first_tasks: Iterator[Task], follow_up
) -> Iterator[tuple[Task, Any]]:
    """Feed ``engine`` with follow-up tasks first and new inputs' tasks when there are none.

    ``follow_up(task)`` returns the next task of the same input, or ``None`` with a finished
    result as second item. The engine packs whatever is pending into full batches; a session
    ends only when nothing is pending and no new input is left, and the follow-ups its last
    batches produced start the next one.
    """
    queue: deque[Task] = deque()

    def tasks() -> Iterator[Task]:
        while True:
            if queue:
                yield queue.popleft()
                continue
            task = next(first_tasks, None)
            if task is None:
                return
            yield task

    while True:
        for task in engine.run(tasks()):
            nxt, result = follow_up(task)
            if nxt is not None:
                queue.append(nxt)
            else:
                yield task, result
        if not queue:
            return


def certify_radii_many(
    smooth: Any,
    xs: Iterable[Any],
    radii: Sequence[float],
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    *,
    indices: Iterable[int] | None = None,
    payloads: Iterable[Any] | None = None,
    first: int = 128,
    ratio: float = 1.5,
) -> Iterator[tuple[RadiiResult, Any]]:
    """Sequentially certify a stream of inputs at ``radii``; yields ``(result, payload)``.

    Results come out in the order inputs are *decided* (an easy input overtakes a hard one).
    ``indices`` are the noise indices (pass data-set positions to reproduce a run); default:
    fresh random indices, so independent calls draw independent noise.
    Many undecided inputs are sampled together, so batches stay full. See the module
    docstring for the procedure and its guarantee, and :meth:`Smooth.certify_radii
    <hierclass.smoothing.smooth.Smooth.certify_radii>` for the parameters.

    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # exact radius at x: x[0]
    >>> s = Smooth(f, num_classes=2, sigma=0.5)
    >>> xs = [torch.tensor([1.0]), torch.tensor([-2.0])]
    >>> out = certify_radii_many(s, xs, [0.5], alpha=0.01, indices=[0, 1])
    >>> sorted((r.index, r.label, bool(r.certified[0])) for r, _ in out)
    [(0, 0, True), (1, 1, True)]
    """
    from hierclass.smoothing.smooth import check_count

    n0 = check_count("n0", n0)
    max_n = check_count("max_n", max_n)
    alpha = check_alpha(alpha)
    r = check_radii(radii)
    schedule = GeometricSchedule(max_n, alpha, first=first, ratio=ratio)
    thresholds = radius_thresholds(r, smooth.sigma)
    steps = schedule.increments()
    last = len(schedule) - 1
    pay_iter = iter(payloads) if payloads is not None else None
    head, pairs = indexed_stream(smooth._prepare, xs, indices)
    if head is None:
        return iter(())
    engine = smooth._engine(batch_size, head)

    def first_tasks() -> Iterator[Task]:
        for x, i in pairs:
            payload = next(pay_iter, None) if pay_iter is not None else None
            state = _Input(i, x, payload)
            reqs = [Request(STREAM_SELECT, n0), Request(STREAM_LOOK_BASE, int(steps[0]))]
            yield Task(x, i, reqs, state)

    def follow_up(task: Task) -> tuple[Task | None, RadiiResult | None]:
        state: _Input = task.payload
        if state.look < 0:
            state.sel = task.counts[0][0]
            state.c_a = int(np.argmax(state.sel))  # ties: the smallest label, like Cohen
            state.est = task.counts[1][0].copy()
        else:
            state.est += task.counts[0][0]
        state.look += 1
        n = int(schedule.looks[state.look])
        lo, hi = schedule.bounds(int(state.est[state.c_a]), n, state.look)
        state.p_lower = max(state.p_lower, float(lo))
        state.p_upper = min(state.p_upper, float(hi))
        if state.status is None:
            state.status = np.zeros(len(thresholds), np.int8)
        state.status = status = update_decisions(
            state.status, state.p_lower, state.p_upper, thresholds
        )
        if state.look < last and np.any(status == UNDECIDED):
            k = state.look + 1
            return Task(
                state.x, state.index, [Request(STREAM_LOOK_BASE + k, int(steps[k]))], state
            ), None
        # the label agrees with the decision at r = 0 when it was asked for (decisions are
        # final, so a refuted 0 stays refuted even if a later lower bound reaches 1/2)
        abstain = state.p_lower < 0.5 or bool(np.any((r == 0) & (status != CERTIFIED)))
        label = ABSTAIN if abstain else state.c_a
        return None, RadiiResult(
            index=state.index,
            label=label,
            radii=tuple(float(v) for v in r),
            certified=status == CERTIFIED,
            n_samples=n,
            n_select=n0,
            p_lower=state.p_lower,
            p_upper=state.p_upper,
            counts_select=state.sel,
            counts=state.est,
            alpha=alpha,
            sigma=smooth.sigma,
        )

    def results() -> Iterator[tuple[RadiiResult, Any]]:
        for task, result in _run_sessions(engine, first_tasks(), follow_up):
            yield result, task.payload.payload

    return results()


def certify_radii(
    smooth: Any,
    x: Any,
    radii: Sequence[float],
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    *,
    index: int | None = None,
    first: int = 128,
    ratio: float = 1.5,
) -> RadiiResult:
    """Sequential certification of one input (the body of ``Smooth.certify_radii``).
    Examples
    --------
    >>> import torch
    >>> from hierclass import Smooth
    >>> f = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # exact radius at x: x[0]
    >>> s = Smooth(f, num_classes=2, sigma=0.5)
    >>> certify_radii(s, torch.tensor([1.0]), [0.5], alpha=0.01, index=0).certified.tolist()
    [True]
    """
    from hierclass.smoothing.smooth import noise_index

    ((res, _),) = list(
        certify_radii_many(
            smooth,
            [x],
            radii,
            n0,
            max_n,
            alpha,
            batch_size,
            indices=[noise_index(index)],
            first=first,
            ratio=ratio,
        )
    )
    return res

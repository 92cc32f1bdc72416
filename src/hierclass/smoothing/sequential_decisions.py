"""The decisions of sequential certification: radii, thresholds, and the running bounds.

Pure bookkeeping shared by every sequential certifier (flat, label subsets, hierarchy paths;
:mod:`hierclass.smoothing.sequential` and :mod:`hierclass.smoothing.sequential_path`): which
radii are asked, the probability each needs (``Phi(r / sigma)``), and, look by look, which are
certified, refuted or still open. Nothing here draws noise; the procedure and its guarantee
are stated in :mod:`hierclass.smoothing.sequential`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from hierclass.smoothing.bounds import check_alpha, check_sigma
from hierclass.smoothing.confidence_sequences import GeometricSchedule
from hierclass.smoothing.sampling import Request

__all__ = [
    "CERTIFIED",
    "REFUTED",
    "STREAM_LOOK_BASE",
    "UNDECIDED",
    "Decisions",
    "SequentialSetup",
    "abstains",
    "check_radii",
    "decide",
    "largest_certified",
    "radius_thresholds",
    "sequential_setup",
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


def largest_certified(radii: Sequence[float], certified: Any) -> float:
    """The largest radius whose decision is certified (0.0 when none is).

    Decisions are monotone in the radius (a lower threshold is crossed first, and a refuted
    radius refutes every larger one), so this one number holds every decision.

    Examples
    --------
    >>> largest_certified([0.0, 0.5, 1.0], [True, True, False])
    0.5
    """
    cert = [float(r) for r, c in zip(radii, certified) if c]
    return max(cert) if cert else 0.0


def abstains(p_lower: Any, status: np.ndarray, radii: np.ndarray) -> bool:
    """Cohen's abstention on a sequence's state: a lower bound below 1/2, or radius 0 asked
    for and not certified (decisions are final, so a refuted 0 stays refuted even if a later
    lower bound reaches 1/2).

    Examples
    --------
    >>> abstains(0.6, np.array([1, -1], np.int8), np.array([0.0, 1.0]))
    False
    """
    low = bool(np.any(np.asarray(p_lower) < 0.5))
    return low or bool(np.any((np.asarray(radii) == 0) & (np.asarray(status) != CERTIFIED)))


class Decisions:
    """Running bounds and final decisions of ``m`` confidence sequences on one schedule.

    Each row is one proportion (a flat classifier's ``pA``, a label subset's, a node's on a
    hierarchy's path): :meth:`update` takes each row's successes among the first
    ``schedule.looks[look]`` draws, keeps the running max of the lower and min of the upper
    bounds, and decides the still-undecided radii (:func:`update_decisions`).

    Examples
    --------
    >>> s = GeometricSchedule(1000, 0.01, first=100, ratio=2.0)
    >>> d = Decisions(s, radius_thresholds(np.array([0.0, 1.0]), 0.5), m=2)
    >>> d.update([100, 60], look=0)
    >>> d.status.tolist(), d.n, d.decided
    ([[1, 0], [0, -1]], 100, False)
    """

    __slots__ = ("schedule", "thresholds", "lower", "upper", "status", "look", "n")

    def __init__(self, schedule: GeometricSchedule, thresholds: np.ndarray, m: int) -> None:
        self.schedule = schedule
        self.thresholds = thresholds
        self.lower = np.zeros(m)
        self.upper = np.ones(m)
        self.status = np.zeros((m, len(thresholds)), np.int8)
        self.look = -1
        self.n = 0

    def update(self, successes: Any, look: int) -> None:
        """Fold in look ``look`` (``successes[j]`` among ``looks[look]`` draws, per row)."""
        m = self.lower.size
        n = int(self.schedule.looks[look])
        if m:
            s = np.asarray(successes, dtype=np.int64).reshape(m)
            lo, hi = self.schedule.bounds(s, np.full(m, n), np.full(m, look))
            self.lower = np.maximum(self.lower, lo)
            self.upper = np.minimum(self.upper, hi)
            self.status = update_decisions(self.status, self.lower, self.upper, self.thresholds)
        self.look, self.n = look, n

    @property
    def decided(self) -> bool:
        """Every row decided at every radius."""
        return not bool(np.any(self.status == UNDECIDED))


@dataclass(frozen=True)
class SequentialSetup:
    """The validated arguments shared by every sequential certifier, and their schedule.

    Built by :func:`sequential_setup`; ``schedule(alpha)`` gives the looks at a share of
    ``alpha`` (the looks themselves depend only on ``max_n``, ``first`` and ``ratio``, so
    sequences at different levels look at the same sample sizes).

    Examples
    --------
    >>> s = sequential_setup(0.5, [0.0, 0.5], n0=100, max_n=1000, alpha=0.01, first=100,
    ...                      ratio=2.0)
    >>> s.increments.tolist(), s.last_look, s.thresholds.round(3).tolist()
    ([100, 100, 200, 400, 200], 4, [0.5, 0.841])
    """

    n0: int
    max_n: int
    alpha: float
    radii: np.ndarray
    thresholds: np.ndarray
    first: int
    ratio: float
    increments: np.ndarray

    def schedule(self, alpha: float | None = None) -> GeometricSchedule:
        """The look schedule at level ``alpha`` (default: the whole ``alpha``)."""
        level = self.alpha if alpha is None else alpha
        return GeometricSchedule(self.max_n, level, first=self.first, ratio=self.ratio)

    def look_request(self, look: int) -> Request:
        """The estimation draws to add before look ``look``, from that look's own stream."""
        return Request(STREAM_LOOK_BASE + look, int(self.increments[look]))

    @property
    def last_look(self) -> int:
        """Index of the last look (``max_n`` draws)."""
        return len(self.increments) - 1


def sequential_setup(
    sigma: float,
    radii: Sequence[float],
    n0: int,
    max_n: int,
    alpha: float,
    first: int = 128,
    ratio: float = 1.5,
) -> SequentialSetup:
    """Validate the arguments of a sequential certifier (at the boundary, once).

    Examples
    --------
    >>> s = sequential_setup(0.5, [0.0, 0.5], n0=100, max_n=1000, alpha=0.01, first=100,
    ...                      ratio=2.0)
    >>> s.schedule().looks.tolist(), s.look_request(1)
    ([100, 200, 400, 800, 1000], Request(stream=65537, num=100))
    """
    from hierclass.smoothing.prepare import check_count

    n0 = check_count("n0", n0)
    max_n = check_count("max_n", max_n)
    alpha = check_alpha(alpha)
    r = check_radii(radii)
    steps = GeometricSchedule(max_n, alpha, first=first, ratio=ratio).increments()
    return SequentialSetup(n0, max_n, alpha, r, radius_thresholds(r, sigma), first, ratio, steps)

"""The decisions of sequential certification: radii, thresholds, and the running bounds.

Pure bookkeeping shared by every sequential certifier (flat, label subsets, hierarchy paths;
:mod:`hierclass.smoothing.sequential.sessions` and :mod:`hierclass.smoothing.hierarchy.sequential`):
which radii are asked, the probability each needs (``Phi(r / sigma)``), and, look by look, which are
certified, refuted or still open. Nothing here draws noise; the procedure and its guarantee are
stated in :mod:`hierclass.smoothing.sequential.sessions`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from hierclass.smoothing.certificates.bounds import check_alpha, check_sigma, clopper_pearson_lower
from hierclass.smoothing.certificates.confidence_sequences import (
    DEFAULT_LOOK_RATIO,
    MixtureSequence,
    geometric_looks,
)
from hierclass.smoothing.engine.prepare import check_count
from hierclass.smoothing.engine.sampling import Request

__all__ = [
    "CERTIFIED",
    "FINAL_SHARE",
    "REFUTED",
    "STREAM_LOOK_BASE",
    "UNDECIDED",
    "Decisions",
    "SequentialSetup",
    "abstains",
    "check_radii_to_certify",
    "decide",
    "largest_certified",
    "radius_thresholds",
    "sequential_setup",
    "update_decisions",
]

#: Look ``k``'s estimation draws come from noise stream ``STREAM_LOOK_BASE + k``: disjoint
#: from the selection, estimation and predict streams of
#: :mod:`~hierclass.smoothing.engine.sampling`.
STREAM_LOOK_BASE = 1 << 16

#: Decision codes of :func:`decide`.
CERTIFIED, UNDECIDED, REFUTED = 1, 0, -1

#: Share of ``alpha`` kept for one fixed-``n`` Clopper-Pearson test at ``max_n``; the
#: confidence sequence runs at the rest. An input that needs every draw is then judged
#: nearly as a fixed-``n`` run judges it (a bound at ``alpha / 5`` instead of ``alpha``),
#: where the sequence alone is weaker than one fixed look; the sequence pays
#: ``log(1 / 0.8) = 0.22`` nats for it (all-correct votes certify ``3 sigma`` after 5,658
#: draws instead of 5,491 at ``alpha = 0.001``).
FINAL_SHARE = 0.2


def check_radii_to_certify(radii: Any) -> np.ndarray:
    """Validate the radii a sequential test decides: a non-empty sequence of distinct finite
    floats >= 0, returned flat.

    (The radii a curve is read at, checked in :mod:`hierclass.smoothing.analysis.tables`, may
    be any shape, repeat, or be ``inf``.)

    Examples
    --------
    >>> check_radii_to_certify([0, 0.25, 0.5]).tolist()
    [0.0, 0.25, 0.5]
    >>> check_radii_to_certify([0.5, -1])
    Traceback (most recent call last):
    ...
    ValueError: radii must be finite and >= 0, got [0.5, -1.0]
    >>> check_radii_to_certify(None)
    Traceback (most recent call last):
    ...
    TypeError: radii must be a sequence of floats, got NoneType
    """
    if radii is None or isinstance(radii, (str, bytes)):
        # np.asarray(None, dtype=float) is nan: it would be reported as "[nan]"
        raise TypeError(f"radii must be a sequence of floats, got {type(radii).__name__}")
    try:
        r = np.asarray(radii, dtype=object).reshape(-1)
        if any(v is None for v in r):
            raise TypeError
        r = r.astype(float)
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


def decide(
    sequence: MixtureSequence,
    successes: Any,
    n: Any,
    thresholds: np.ndarray,
    final_alpha: float = 0.0,
) -> np.ndarray:
    """Decision per (row, radius) after ``successes`` of ``n`` draws: ``CERTIFIED``,
    ``REFUTED`` or ``UNDECIDED``.

    Certified: the lower sequence has passed ``Phi(r / sigma)`` (the wealth against
    ``pA <= Phi(r / sigma)`` reached ``1 / alpha``), or, with ``final_alpha > 0`` (only at
    the last look, ``n = max_n``), the one-sided Clopper-Pearson bound at ``final_alpha``
    has. Refuted: the upper sequence has fallen below it. ``successes`` has shape ``[...]``;
    returns ``[..., len(thresholds)]``. Certified wins when both hold (which only happens
    outside the ``1 - alpha`` event).

    Examples
    --------
    >>> seq = MixtureSequence(0.01)
    >>> decide(seq, 900, 1000, np.array([0.5, 0.88, 0.99])).tolist()  # bounds 0.859, 0.933
    [1, 0, -1]
    >>> decide(seq, 900, 1000, np.array([0.5, 0.865, 0.99]), final_alpha=0.002).tolist()
    [1, 1, -1]
    """
    s = np.asarray(successes)[..., None]
    cert = sequence.passes(s, n, thresholds)
    if final_alpha > 0:
        nn = np.broadcast_to(np.asarray(n)[..., None], s.shape)
        cert = cert | (clopper_pearson_lower(s, nn, final_alpha) >= thresholds)
    refuted = sequence.passes(np.asarray(n)[..., None] - s, n, 1.0 - thresholds)
    out = np.where(refuted, REFUTED, UNDECIDED)
    return np.where(cert, CERTIFIED, out).astype(np.int8)


def update_decisions(status: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Take the new decisions of the still-undecided radii; a decided radius keeps its own.

    Keeping decisions final makes each radius's outcome the first crossing of its threshold,
    whatever other radii keep the sampling going.

    Examples
    --------
    >>> s = update_decisions(np.zeros(2, np.int8), np.array([0, -1], np.int8))
    >>> update_decisions(s, np.array([1, 1], np.int8)).tolist()  # the refuted one stays
    [1, -1]
    """
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
    """Decisions of ``m`` confidence sequences that share their looks.

    Each row is one proportion (a flat classifier's ``pA``, a label subset's, a node's on a
    hierarchy's path): :meth:`update` takes each row's successes among the first
    ``looks[look]`` draws and decides the still-undecided radii (:func:`decide`,
    :func:`update_decisions`). :attr:`lower` and :attr:`upper` are the bounds to report
    (computed on demand, once sampling stopped): the sequences' bounds at the last look,
    tightened by every threshold crossed on the way (each crossing is itself a bound that
    holds on the same ``1 - alpha`` event).

    Examples
    --------
    >>> setup = sequential_setup(0.5, [0.0, 1.0], n0=100, max_n=1000, alpha=0.01, first=100,
    ...                          ratio=2.0)
    >>> d = setup.decisions(2)
    >>> d.update([100, 60], look=0)
    >>> d.status.tolist(), d.n, d.decided
    ([[1, 0], [0, -1]], 100, False)
    """

    __slots__ = (
        "sequence", "final_alpha", "looks", "thresholds", "status", "half", "successes",
        "look", "n", "_bounds",
    )  # fmt: skip

    def __init__(
        self,
        sequence: MixtureSequence,
        looks: np.ndarray,
        thresholds: np.ndarray,
        m: int,
        final_alpha: float = 0.0,
    ) -> None:
        self.sequence = sequence
        self.final_alpha = final_alpha
        self.looks = looks
        self.thresholds = thresholds
        self.status = np.zeros((m, len(thresholds)), np.int8)
        self.half = np.zeros(m, bool)  # lower bound has reached 1/2 (Cohen's abstention)
        self.successes = np.zeros(m, np.int64)
        self.look = -1
        self.n = 0
        self._bounds: tuple | None = None  # (lower, upper) of the last look, once asked for

    def update(self, successes: Any, look: int) -> None:
        """Fold in look ``look`` (``successes[j]`` among ``looks[look]`` draws, per row)."""
        m = self.status.shape[0]
        n = int(self.looks[look])
        if m:
            s = np.asarray(successes, dtype=np.int64).reshape(m)
            final = self.final_alpha if look == len(self.looks) - 1 else 0.0
            new = decide(self.sequence, s, n, self.thresholds, final)
            self.status = update_decisions(self.status, new)
            self.half |= self.sequence.passes(s, n, 0.5)
            if final:
                self.half |= clopper_pearson_lower(s, np.full(m, n), final) >= 0.5
            self.successes = s
        self.look, self.n = look, n
        self._bounds = None

    @property
    def lower(self) -> np.ndarray:
        """Per row, a lower confidence bound on the proportion (``0.0`` before any look)."""
        return self._report()[0]

    @property
    def upper(self) -> np.ndarray:
        """Per row, an upper confidence bound on the proportion (``1.0`` before any look)."""
        return self._report()[1]

    def _report(self) -> tuple:
        if self._bounds is None:
            m = self.status.shape[0]
            if self.n == 0 or m == 0:
                self._bounds = (np.zeros(m), np.ones(m))
            else:
                lo, hi = self.sequence.bounds(self.successes, self.n)
                lo = np.maximum(np.atleast_1d(lo), np.where(self.half, 0.5, 0.0))
                if self.final_alpha and self.look == len(self.looks) - 1:
                    n = np.full(m, self.n)
                    lo = np.maximum(lo, clopper_pearson_lower(self.successes, n, self.final_alpha))
                up = np.where(self.status == CERTIFIED, self.thresholds, 0.0).max(axis=1)
                down = np.where(self.status == REFUTED, self.thresholds, 1.0).min(axis=1)
                self._bounds = (np.maximum(lo, up), np.minimum(np.atleast_1d(hi), down))
        return self._bounds

    @property
    def decided(self) -> bool:
        """Every row decided at every radius."""
        return not bool(np.any(self.status == UNDECIDED))


@functools.lru_cache(maxsize=64)
def _sequence(level: float) -> MixtureSequence:
    """The confidence sequence of a rule at ``level``: its share ``1 - FINAL_SHARE``.

    A :class:`MixtureSequence` holds no state after construction, so every input at one level
    shares one, built (and its level validated) once per run, not once per input.
    """
    return MixtureSequence((1.0 - FINAL_SHARE) * level)


@dataclass(frozen=True)
class SequentialSetup:
    """The validated arguments shared by every sequential certifier, and their looks.

    Built by :func:`sequential_setup`. ``decisions(m, alpha)`` starts ``m`` confidence
    sequences at level ``alpha`` (default: the whole ``alpha``) on the shared looks, which
    depend only on ``max_n``, ``first`` and ``ratio``.

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
    looks: np.ndarray

    @property
    def increments(self) -> np.ndarray:
        """Draws to add before each look: ``n_1, n_2 - n_1, ...``."""
        return np.diff(self.looks, prepend=0)

    def decisions(self, m: int, alpha: float | None = None) -> Decisions:
        """``m`` fresh decision rows at level ``alpha`` (default: the whole ``alpha``): each a
        confidence sequence at ``(1 - FINAL_SHARE) alpha`` plus a Clopper-Pearson test at
        ``FINAL_SHARE alpha`` at ``max_n`` (Boole: together at ``alpha``)."""
        level = self.alpha if alpha is None else alpha
        return Decisions(_sequence(level), self.looks, self.thresholds, m, FINAL_SHARE * level)

    def look_request(self, look: int) -> Request:
        """The estimation draws to add before look ``look``, from that look's own stream."""
        return Request(STREAM_LOOK_BASE + look, int(self.increments[look]))

    @property
    def last_look(self) -> int:
        """Index of the last look (``max_n`` draws)."""
        return len(self.looks) - 1


def sequential_setup(
    sigma: float,
    radii: Sequence[float],
    n0: int,
    max_n: int,
    alpha: float,
    first: int = 128,
    ratio: float = DEFAULT_LOOK_RATIO,
) -> SequentialSetup:
    """Validate the arguments of a sequential certifier (at the boundary, once).

    The looks are the geometric grid
    (:func:`~hierclass.smoothing.certificates.confidence_sequences.geometric_looks`) plus, for each
    radius, the fewest all-correct draws that certify it at ``alpha``
    (:meth:`~hierclass.smoothing.certificates.confidence_sequences.MixtureSequence.all_correct_n`):
    inputs the noise never fools, most of a robust model's, stop exactly there. The looks
    depend on the arguments only, never on the draws.

    Examples
    --------
    >>> s = sequential_setup(0.5, [0.0, 0.5], n0=100, max_n=1000, alpha=0.01, first=100,
    ...                      ratio=2.0)
    >>> s.looks.tolist(), s.look_request(1)
    ([100, 200, 400, 800, 1000], Request(stream=65537, num=100))
    >>> s = sequential_setup(0.25, [0.75], n0=100, max_n=100_000, alpha=0.001)
    >>> [int(n) for n in s.looks if 5500 < n < 6000]  # 5,658 all-correct draws certify 3 sigma
    [5591, 5658, 5703, 5818, 5935]
    """

    n0 = check_count("n0", n0)
    max_n = check_count("max_n", max_n)
    alpha = check_alpha(alpha)
    r = check_radii_to_certify(radii)
    thresholds = radius_thresholds(r, sigma)
    looks = geometric_looks(max_n, first=first, ratio=ratio)
    exact = (_sequence(alpha).all_correct_n(t, max_n) for t in thresholds)
    looks = np.union1d(looks, [n for n in exact if n is not None and n > looks[0]])
    return SequentialSetup(n0, max_n, alpha, r, thresholds, first, ratio, looks.astype(np.int64))

"""Anytime-valid confidence bounds on a binomial proportion: a mixture martingale.

Sequential certification looks at its estimate of ``pA`` many times and stops as soon as it
can decide. A fixed-``n`` Clopper-Pearson bound is not valid at a data-dependent stopping time
(peeking inflates the error), so the bounds here form a *confidence sequence*: with
probability ``>= 1 - alpha``, ``lower_n <= p <= upper_n`` holds at **every** sample size ``n``
at once, hence also whenever sampling stops, whatever rule chose to stop.

Construction (Robbins' method of mixtures)
------------------------------------------
For a candidate value ``p0`` and an alternative ``q``, the likelihood ratio of the first ``n``
Bernoulli draws with ``S`` successes and ``F = n - S`` failures is
``(q / p0)^S ((1 - q) / (1 - p0))^F``. A *fixed* prior over alternatives, here a finite set of
log-odds gaps ``delta_i > 0`` (``logit q = logit p0 + delta_i``) with weights ``w_i``, plus a
point mass ``w_inf`` on ``q = 1`` ("the classifier never errs"), weights summing to 1, gives
the wealth

    M_n(p0) = sum_i w_i (q_i / p0)^S ((1 - q_i) / (1 - p0))^F  +  w_inf p0^-S [F = 0].

*Validity.* At the true ``p``, each term is a product of independent factors of mean 1
(``p q/p + (1 - p)(1 - q)/(1 - p) = 1``), so ``M_n(p)`` is a non-negative martingale with
``M_0 = 1``, and Ville's inequality gives ``P(M_n(p) >= 1/alpha for some n) <= alpha``.
*Monotonicity.* Each term decreases in ``p0`` (its log has derivative
``S (sigmoid(-x - d) - sigmoid(-x)) + F (sigmoid(x) - sigmoid(x + d)) < 0`` in ``x = logit
p0``), so ``{p0 : M_n(p0) >= 1/alpha}`` is an interval ``[0, lower_n]``. Together: with
probability ``>= 1 - alpha``, ``p > lower_n`` for every ``n``. The upper sequence is the same
construction on the failures (``upper_n(S) = 1 - lower_n(F)``), valid at ``1 - alpha`` on its
own. No union bound over looks is paid, so the looks can be as frequent as batching allows.

The prior costs a few nats of evidence; where it puts its mass decides which inputs stop
early. Half of it sits on ``q = 1`` because robust inputs are mostly never misclassified under
noise: then ``lower_n >= (alpha w_inf)^(1/n)``, and certifying ``pA >= Phi(3)`` (radius
``3 sigma``) takes 5,491 all-correct draws at ``alpha = 0.001`` (5,114 at a single fixed
``n``, which no sequence can beat; 7,383 with the union bound over 18 looks that this
replaced). The other half is spread evenly over 24 gaps from 0.01 to 8 in log-odds,
geometrically spaced, for inputs that do err sometimes. The sequential certifiers run the
sequence at ``0.8 alpha`` and keep the rest for one fixed look at ``max_n``
(:mod:`hierclass.smoothing.sequential.sessions`).
"""

from __future__ import annotations

import math

import numpy as np

from hierclass.smoothing.certificates.bounds import check_alpha

__all__ = ["DEFAULT_LOOK_RATIO", "MixtureSequence", "geometric_looks"]

#: Log-odds gaps of the prior's finite part, and the prior mass on "never errs".
DEFAULT_GAPS = np.geomspace(0.01, 8.0, 24)
DEFAULT_NEVER_WRONG = 0.5

#: Looks every 2% of the draws so far (at least ``min_step`` draws apart): a decision is seen
#: at most 2% after it became possible. On the benchmark's 20 MNIST images at sigma 0.25,
#: looks every 10% (and without the exact all-correct looks of ``sequential_setup``) gave
#: 9.9x fewer passes than fixed-``n`` instead of 10.6x, under the plug-in estimate of
#: ``bench/bench_sequential.py``; denser looks only shorten the batches.
DEFAULT_LOOK_RATIO = 1.02

# Search range in log-odds and its refinement: sigmoid(+-30) is 1e-13 from 0 and 1; each
# round splits the bracket into 64 and keeps one piece, so 5 rounds leave 60 / 64^5 = 6e-8 in
# log-odds (< 2e-8 in probability), far below any threshold spacing in use. Decisions do not
# use this search: they evaluate the wealth at the thresholds themselves (:meth:`passes`).
_LOGIT_RANGE = 30.0
_GRID = 64
_ROUNDS = 5


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def geometric_looks(
    max_n: int, first: int = 128, ratio: float = DEFAULT_LOOK_RATIO, min_step: int = 64
) -> np.ndarray:
    """Sample sizes ``n_1 < n_2 < ... < n_K = max_n`` at which sampling pauses to decide.

    The looks only batch the work: the bounds of :class:`MixtureSequence` are valid at every
    ``n``, so more looks cost no ``alpha``, only shorter batches. Each look is ``ratio``
    times the last, and at least ``min_step`` draws after it.

    Examples
    --------
    >>> geometric_looks(1000, first=100, ratio=2.0).tolist()
    [100, 200, 400, 800, 1000]
    >>> geometric_looks(1000, first=100, ratio=1.02, min_step=300).tolist()
    [100, 400, 700, 1000]
    """
    max_n = _check_int("max_n", max_n, 1)
    first = _check_int("first", first, 1)
    min_step = _check_int("min_step", min_step, 1)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating)):
        raise TypeError(f"ratio must be a float > 1, got {type(ratio).__name__}")
    if not (math.isfinite(ratio) and ratio > 1.0):
        raise ValueError(f"ratio must be a finite float > 1, got {ratio}")
    looks = []
    n = min(first, max_n)
    while n < max_n:
        looks.append(n)
        n = max(n + min_step, math.ceil(n * ratio))
    looks.append(max_n)
    return np.asarray(looks, dtype=np.int64)


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a)))`` over the last axis (scipy's costs ~0.3 ms a call in overhead)."""
    top = a.max(axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    return safe + np.log(np.exp(a - safe[..., None]).sum(axis=-1))


class MixtureSequence:
    """Lower and upper confidence sequences for a binomial proportion, valid at every ``n``.

    Parameters
    ----------
    alpha : float
        Failure probability of each sequence (lower and upper, each on its own).
    gaps : array of float > 0, optional
        Log-odds gaps of the prior's finite part (default: 24 from 0.01 to 8, geometric).
    never_wrong : float in [0, 1), default 0.5
        Prior mass on ``q = 1`` (for the lower sequence; ``q = 0`` for the upper one).

    Examples
    --------
    >>> seq = MixtureSequence(0.001)
    >>> lo, hi = seq.bounds(5630, 5630)  # 5,630 draws, all successes
    >>> bool(lo >= 0.99865), float(hi)   # Phi(3) = 0.998650...: radius 3 sigma certified
    (True, 1.0)
    >>> round(float(seq.lower(900, 1000)), 3), round(float(seq.upper(900, 1000)), 3)
    (0.852, 0.937)
    """

    def __init__(self, alpha: float, *, gaps=None, never_wrong: float = DEFAULT_NEVER_WRONG):
        self.alpha = check_alpha(alpha)
        g = DEFAULT_GAPS if gaps is None else np.asarray(gaps, dtype=float).reshape(-1)
        if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ValueError(f"gaps must be finite log-odds gaps > 0, got {g.tolist()}")
        if not (0.0 <= float(never_wrong) < 1.0):
            raise ValueError(f"never_wrong must lie in [0, 1), got {never_wrong}")
        self.gaps = g
        self.never_wrong = float(never_wrong)
        self._log_w = np.full(g.size, math.log((1.0 - self.never_wrong) / g.size))
        self._log_threshold = math.log(1.0 / self.alpha)

    def __repr__(self) -> str:
        return (
            f"MixtureSequence(alpha={self.alpha}, {self.gaps.size} gaps "
            f"{self.gaps.min():g}..{self.gaps.max():g}, never_wrong={self.never_wrong})"
        )

    def log_wealth(self, successes, n, p0):
        """``log M_n(p0)`` (see the module docstring); broadcast over the three arguments.

        ``p0`` must lie strictly inside ``(0, 1)``.
        """
        s = np.asarray(successes, dtype=float)
        f = np.asarray(n, dtype=float) - s
        x = np.log(p0) - np.log1p(-np.asarray(p0, dtype=float))
        return self._log_wealth_logit(s, f, x)

    def _log_wealth_logit(self, s, f, x):
        s, f, x = (np.asarray(a, dtype=float)[..., None] for a in np.broadcast_arrays(s, f, x))
        d = self.gaps
        terms = (
            self._log_w
            + s * (_log_sigmoid(x + d) - _log_sigmoid(x))
            + f * (_log_sigmoid(-x - d) - _log_sigmoid(-x))
        )
        finite = _logsumexp(terms)
        if self.never_wrong == 0.0:
            return finite
        with np.errstate(divide="ignore"):
            point = np.where(
                f[..., 0] == 0,
                math.log(self.never_wrong) - s[..., 0] * _log_sigmoid(x[..., 0]),
                -np.inf,
            )
        return np.logaddexp(finite, point)

    def passes(self, successes, n, p0):
        """Whether ``M_n(p0) >= 1/alpha``: the lower bound is at least ``p0`` (broadcast).

        ``p0 >= 1`` never passes; ``p0 <= 0`` passes once a success was seen.
        """
        p = np.asarray(p0, dtype=float)
        inside = np.clip(p, 1e-300, np.nextafter(1.0, 0.0))
        ok = self.log_wealth(successes, n, inside) >= self._log_threshold
        ok = np.where(p <= 0.0, np.asarray(successes) > 0, ok)
        return np.where(p >= 1.0, False, ok)

    def all_correct_n(self, p0: float, max_n: int) -> int | None:
        """The fewest draws, all successes, that pass ``p0`` (``None`` if more than ``max_n``).

        An input never misclassified under noise decides ``p0`` exactly there, so a look at
        this ``n`` saves the overshoot of the next look on the grid.

        Examples
        --------
        >>> MixtureSequence(0.0008).all_correct_n(0.998650, 100_000)  # Phi(3): radius 3 sigma
        5658
        """
        if not self.passes(max_n, max_n, p0):
            return None
        lo, hi = 1, int(max_n)  # the wealth of all-correct draws grows with n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.passes(mid, mid, p0):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def lower(self, successes, n):
        """The lower bound after ``successes`` of ``n`` draws (``0.0`` when nothing is shown).

        The largest ``p0`` with ``M_n(p0) >= 1/alpha``, found on successively finer grids in
        log-odds and rounded down (the value returned always passes); vectorised over arrays.
        """
        s = np.asarray(successes)
        nn = np.asarray(n)
        if not np.issubdtype(s.dtype, np.integer):
            raise TypeError(f"successes must be integers, got dtype {s.dtype}")
        if np.any(s < 0) or np.any(s > nn):
            raise ValueError(f"successes must lie in [0, n], got {successes} for n={n}")
        s, nn = np.broadcast_arrays(s.astype(float), nn.astype(float))
        s, f = s[..., None], (nn - s)[..., None]
        lo = np.full(s.shape, -_LOGIT_RANGE)  # invariant: wealth(lo) passes, if any point does
        hi = np.full(s.shape, _LOGIT_RANGE)
        found = self._log_wealth_logit(s, f, lo)[..., 0] >= self._log_threshold
        steps = np.arange(1, _GRID + 1) / _GRID
        for _ in range(_ROUNDS):
            grid = lo + (hi - lo) * steps  # [..., GRID], increasing
            ok = self._log_wealth_logit(s, f, grid) >= self._log_threshold
            # the wealth decreases in p0: keep the last point before the first failure
            k = np.where(ok.all(axis=-1), _GRID, np.argmin(ok, axis=-1))[..., None]
            new_lo = np.take_along_axis(grid, np.maximum(k - 1, 0), axis=-1)
            new_hi = np.take_along_axis(grid, np.minimum(k, _GRID - 1), axis=-1)
            lo = np.where(k > 0, new_lo, lo)
            hi = np.where(k < _GRID, new_hi, hi)
        # round toward the safe side: the next float below sigmoid(lo)
        out = np.where(found, np.nextafter(1.0 / (1.0 + np.exp(-lo[..., 0])), 0.0), 0.0)
        return float(out) if out.ndim == 0 else out

    def upper(self, successes, n):
        """The upper bound: the lower bound of the failure rate, mirrored."""
        s = np.asarray(successes)
        out = 1.0 - np.asarray(self.lower(np.asarray(n) - s, n))
        return float(out) if out.ndim == 0 else out

    def bounds(self, successes, n):
        """``(lower, upper)`` after ``successes`` of ``n`` draws; vectorised over arrays."""
        return self.lower(successes, n), self.upper(successes, n)

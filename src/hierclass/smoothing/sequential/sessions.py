"""Sequential certification at given radii: sample until each radius is decided.

Cohen's ``certify`` spends ``n = 100,000`` draws on every input. To draw a certified-accuracy
curve at a few radii ``r_1 < ... < r_R`` one only needs to know, per input, whether
``pA >= Phi(r / sigma)`` for each ``r``; most inputs settle that after a few thousand draws.

Procedure (per input)
---------------------
1. ``n0`` selection draws pick the top label ``c_A`` (never reused for estimation).
2. Fresh estimation draws are added look by look (sample sizes ``n_1 < ... < n_K = max_n``:
   every 2% from
   :func:`~hierclass.smoothing.certificates.confidence_sequences.geometric_looks`, plus, per
   radius, the fewest all-correct draws that certify it, where an input the noise never
   fools stops; the looks depend on the arguments only). After each look
   the :class:`~hierclass.smoothing.certificates.confidence_sequences.MixtureSequence` of the
   ``S`` successes among the first ``n`` draws gives a lower bound ``L_n`` and an upper bound
   ``U_n`` on ``pA = P(f(x + eps) = c_A)``.
3. Radius ``r`` is *certified* at the first look where ``L_n >= Phi(r / sigma)``, and *not
   certifiable* at the first look where ``U_n < Phi(r / sigma)`` (whichever comes first; a
   decision is final). Sampling stops when every radius is decided, or at ``max_n``, where
   one fixed-``n`` Clopper-Pearson bound also certifies the radii it clears (undecided
   radii are then not certified).
4. The label is ``c_A`` if some look had ``L_n >= 1/2`` (Cohen's abstention rule) and, when
   radius 0 was asked for, radius 0 was certified; else ``ABSTAIN``.

Guarantee
---------
``alpha`` is split (:data:`~hierclass.smoothing.sequential.decisions.FINAL_SHARE`): the
sequence runs at ``0.8 alpha`` and the Clopper-Pearson bound at ``max_n`` at ``0.2 alpha``.
With probability ``>= 1 - 0.8 alpha`` (over the estimation noise), ``L_n < pA`` at every
``n`` simultaneously: ``L_n`` is a confidence sequence (a mixture of likelihood ratios is a
martingale at the true ``pA``; Ville's inequality bounds the chance it ever reaches
``1 / alpha``; :mod:`~hierclass.smoothing.certificates.confidence_sequences` has
the proof). The final bound fails with probability ``<= 0.2 alpha`` (it is evaluated at the
fixed ``n = max_n``, and only used if sampling gets there). By Boole's inequality both hold
with probability ``>= 1 - alpha``, and on that event every radius reported certified satisfies
``pA > Phi(r / sigma)``, so the smoothed classifier returns ``c_A`` everywhere in the L2 ball
of radius ``r`` (Cohen et al., Theorem 1 with ``pB = 1 - pA``): simultaneously over all
radii, and whatever rule stopped the sampling, because the event does not depend on when
sampling stopped. The upper bounds only decide when to *stop* trying; an error there costs a
certificate, never soundness.

Noise: the estimation draws of look ``k`` come from their own noise stream
(``STREAM_LOOK_BASE + k``) seeded from ``(seed, index)``, so an input's decisions depend on its
index only: not on the batch size, on which other inputs share its batches, or on sharding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierclass.smoothing.certificates.bounds import cohen_radius
from hierclass.smoothing.certificates.confidence_sequences import DEFAULT_LOOK_RATIO
from hierclass.smoothing.certificates.counts import ABSTAIN
from hierclass.smoothing.certificates.subsets import SubsetHead, check_subsets
from hierclass.smoothing.engine.prepare import noise_index
from hierclass.smoothing.engine.protocol import Smoothed, open_run
from hierclass.smoothing.engine.sampling import STREAM_SELECT, CountEngine, Request, Task
from hierclass.smoothing.sequential.decisions import (  # re-exported: the sequential API
    CERTIFIED,
    FINAL_SHARE,
    REFUTED,
    STREAM_LOOK_BASE,
    UNDECIDED,
    Decisions,
    SequentialSetup,
    abstains,
    check_radii_to_certify,
    decide,
    largest_certified,
    radius_thresholds,
    sequential_setup,
    update_decisions,
)

__all__ = [
    "CERTIFIED",
    "FINAL_SHARE",
    "REFUTED",
    "STREAM_LOOK_BASE",
    "UNDECIDED",
    "Decisions",
    "RadiiResult",
    "abstains",
    "certify_radii",
    "certify_radii_many",
    "check_radii_to_certify",
    "decide",
    "largest_certified",
    "radius_thresholds",
    "sequential_setup",
    "update_decisions",
]


def run_sessions(
    engine: CountEngine, first_tasks: Iterator[Task], follow_up: Callable
) -> Iterator[tuple[Task, Any]]:
    """Feed ``engine`` with follow-up tasks first and new inputs' tasks when there are none.

    ``follow_up(task)`` returns ``(next task of the same input, None)`` or ``(None,
    result)`` once the input is finished; finished ``(task, result)`` pairs are yielded. The
    engine packs whatever is pending into full batches; a session ends only when nothing is
    pending and no new input is left, and the follow-ups its last batches produced start the
    next one.
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


def run_flat(
    smooth: Smoothed,
    xs: Iterable[Any],
    indices: Iterable[int] | None,
    batch_size: int | str,
    start: Callable[[Any, int], Task],
    follow_up: Callable,
    heads: Any = None,
) -> Iterator[tuple[Task, Any]]:
    """The one loop of a flat :class:`~hierclass.Smooth`'s multi-stage certifiers.

    Prepares and indexes the inputs (:func:`~hierclass.smoothing.engine.protocol.open_run`:
    the first eagerly, so bad input and the batch-size probe happen at the call), then runs
    ``start(x, index)``'s task of each input and its follow-ups (:func:`run_sessions`);
    yields ``(last task, result)`` as inputs finish.
    """
    engine, pairs = open_run(smooth, xs, indices, batch_size, heads=heads)
    if engine is None:
        return iter(())
    return run_sessions(engine, (start(x.sampled, i) for x, i in pairs), follow_up)


@dataclass
class RadiiResult:
    """Outcome of sequential certification of one input at given radii.

    Attributes
    ----------
    index : int
        The noise index (the input's position in its data set).
    label : int
        ``c_A``, or ``ABSTAIN`` when ``p_lower < 1/2`` (or radius 0 was asked for and not
        certified).
    radii : tuple of float
        The radii asked for, in the caller's order.
    certified : ndarray of bool
        Per radius: certified (valid with probability ``>= 1 - alpha`` jointly over radii).
    n_samples : int
        Estimation draws used (selection draws not included).
    n_select : int
        Selection draws (``n0``).
    p_lower : float
        Confidence-sequence bounds on ``pA`` when sampling stopped (running max / min).
    p_upper : float
        Confidence-sequence bounds on ``pA`` when sampling stopped (running max / min).
    counts_select : ndarray of int
        Votes on the selection and on all estimation draws.
    counts : ndarray of int
        Votes on the selection and on all estimation draws.
    alpha : float
        Failure probability and noise level.
    sigma : float
        Failure probability and noise level.
    subsets : tuple of tuple of int
        Label subsets certified alongside (``subsets=``); empty otherwise.
    subset_labels : ndarray of int [S]
        Per subset: ``argmax_{c in L}`` of the selection votes, or ``ABSTAIN``.
    subset_certified : ndarray of bool [S, R]
        Per subset and radius: the restricted smoothed classifier is certified (each
        subset's certificate holds with probability ``>= 1 - alpha`` on its own, like
        :meth:`Smooth.certify_many <hierclass.smoothing.flat.smooth.Smooth.certify_many>`'s).
    subset_p_lower : ndarray of float [S]
        Each subset's lower bound when sampling stopped.
    seconds : float
        Wall time of this input's own draws (its share of the batches they rode in).

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
    subsets: tuple[tuple[int, ...], ...] = ()
    subset_labels: np.ndarray | None = None
    subset_certified: np.ndarray | None = None
    subset_p_lower: np.ndarray | None = None
    seconds: float = 0.0

    @property
    def radius(self) -> float:
        """The largest certified radius among :attr:`radii` (0.0 when none is)."""
        return largest_certified(self.radii, self.certified)

    @property
    def radius_bound(self) -> float:
        """``sigma * Phi^-1(p_lower)``: also certified on the same event (>= :attr:`radius`)."""
        if self.label == ABSTAIN:
            return 0.0
        return cohen_radius(self.p_lower, self.sigma)


class _Input:
    """Bookkeeping of one flat input while it is being certified."""

    __slots__ = ("x", "payload", "choices", "sel", "est", "decisions", "seconds")

    def __init__(self, x: Any, payload: Any) -> None:
        self.x = x
        self.payload = payload
        self.choices: np.ndarray | None = None  # per row: the selected label
        self.sel: list | None = None
        self.est: list | None = None
        self.decisions: Decisions | None = None
        self.seconds = 0.0


def flat_result(
    setup: SequentialSetup, index: int, choice: int, d: Decisions, row: int, sel, est, sigma
) -> RadiiResult:
    """The :class:`RadiiResult` of row ``row`` of a flat input's decisions."""
    status = d.status[row]
    p_lower = float(d.lower[row])
    return RadiiResult(
        index=index,
        label=ABSTAIN if abstains(p_lower, status, setup.radii) else int(choice),
        radii=tuple(float(v) for v in setup.radii),
        certified=status == CERTIFIED,
        n_samples=d.n,
        n_select=setup.n0,
        p_lower=p_lower,
        p_upper=float(d.upper[row]),
        counts_select=sel,
        counts=est,
        alpha=setup.alpha,
        sigma=sigma,
    )


def certify_radii_many(
    smooth: Smoothed,
    xs: Iterable[Any],
    radii: Sequence[float],
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    *,
    indices: Iterable[int] | None = None,
    payloads: Iterable[Any] | None = None,
    subsets: Iterable[Sequence[int]] | None = None,
    first: int = 128,
    ratio: float = DEFAULT_LOOK_RATIO,
) -> Iterator[tuple[RadiiResult, Any]]:
    """Sequentially certify a stream of inputs at ``radii``; yields ``(result, payload)``.

    Results come out in the order inputs are *decided* (an easy input overtakes a hard one).
    ``indices`` are the noise indices (pass data-set positions to reproduce a run); default:
    fresh random indices, so independent calls draw independent noise.
    Many undecided inputs are sampled together, so batches stay full. See the module
    docstring for the procedure and its guarantee, and :meth:`Smooth.certify_radii
    <hierclass.smoothing.flat.smooth.Smooth.certify_radii>` for the parameters.

    ``subsets`` also certifies, from the same draws, the base classifier restricted to each
    label subset ``L`` (``argmax_{c in L}``, base renormalisation: an ordinary classifier, so
    the same confidence sequence applies). Each subset runs its own sequence at ``alpha``
    with its own selection (``argmax`` of its selection votes) and its own final decisions;
    an input samples until the flat classifier and every subset are decided. Each
    certificate is valid on its own, like the subset certificates of :meth:`Smooth.certify_many
    <hierclass.smoothing.flat.smooth.Smooth.certify_many>` (a union over subsets would need
    ``alpha / S`` each). The restricted *margin* certificate is not offered: it bounds every
    competing label's probability from above as well, which this one-proportion sequence
    does not.

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

    setup = sequential_setup(smooth.sigma, radii, n0, max_n, alpha, first, ratio)
    subs = () if subsets is None else check_subsets(subsets, smooth.num_classes)
    sessions = _FlatSessions(setup, subs, smooth)
    pay_iter = iter(payloads) if payloads is not None else None

    def start(x: Any, i: int) -> Task:
        return sessions.start(x, i, None if pay_iter is None else next(pay_iter, None))

    results = run_flat(smooth, xs, indices, batch_size, start, sessions.follow_up, sessions.heads)
    return ((res, task.payload.payload) for task, res in results)


class _FlatSessions:
    """The steps of one flat input's sequential certification (and its label subsets')."""

    def __init__(self, setup: SequentialSetup, subs: tuple, smooth: Smoothed) -> None:
        self.setup, self.subs, self.sigma = setup, subs, smooth.sigma
        self.heads = SubsetHead(subs, smooth.num_classes, smooth.device) if subs else None

    def votes(self, counts: list) -> np.ndarray:
        """Rows of votes: the flat classifier's, then each subset's."""
        if self.heads is None:
            return counts[0][None, :]
        return np.concatenate([counts[0][None, :], self.heads.decode(counts[1])])

    def start(self, x: Any, i: int, payload: Any) -> Task:
        reqs = [Request(STREAM_SELECT, self.setup.n0), self.setup.look_request(0)]
        return Task(x, i, reqs, _Input(x, payload))

    def follow_up(self, task: Task) -> tuple[Task | None, RadiiResult | None]:
        """Fold the task's votes in; the next look's task, or the input's result."""
        state: _Input = task.payload
        state.seconds += task.seconds
        if state.decisions is None:
            state.sel = self.votes(task.counts[0])
            state.choices = np.argmax(state.sel, axis=1)  # ties: the smallest label (Cohen)
            state.est = self.votes(task.counts[1])
            state.decisions = self.setup.decisions(len(state.sel))
        else:
            state.est = state.est + self.votes(task.counts[0])
        d = state.decisions
        d.update(state.est[np.arange(len(state.est)), state.choices], d.look + 1)
        if d.look < self.setup.last_look and not d.decided:
            return Task(state.x, task.index, [self.setup.look_request(d.look + 1)], state), None
        return None, self.result(task.index, state)

    def result(self, index: int, state: _Input) -> RadiiResult:
        d, setup = state.decisions, self.setup
        res = flat_result(
            setup, index, state.choices[0], d, 0, state.sel[0], state.est[0], self.sigma
        )
        if self.subs:
            res.subsets = self.subs
            lower = d.lower
            res.subset_labels = np.array(
                [
                    ABSTAIN if abstains(lower[j], d.status[j], setup.radii) else state.choices[j]
                    for j in range(1, len(self.subs) + 1)
                ],
                dtype=np.int64,
            )
            res.subset_certified = d.status[1:] == CERTIFIED
            res.subset_p_lower = lower[1:].copy()
        res.seconds = state.seconds
        return res


def certify_radii(
    smooth: Smoothed,
    x: Any,
    radii: Sequence[float],
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    *,
    index: int | None = None,
    subsets: Iterable[Sequence[int]] | None = None,
    first: int = 128,
    ratio: float = DEFAULT_LOOK_RATIO,
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
            subsets=subsets,
            first=first,
            ratio=ratio,
        )
    )
    return res

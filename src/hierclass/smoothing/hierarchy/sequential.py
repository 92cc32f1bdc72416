"""Sequential decisions for a hierarchy's path: alpha split over the smoothed nodes, min radius.

A hierarchy's output at ``x`` is constant within the minimum of the radii of the nodes on ``x``'s
path (§IV-C; :mod:`hierclass.smoothing.certificates.path`). For sequential certification at radii
``r_1 < ... < r_R`` each of the ``k`` *smoothed* nodes on the path runs its own confidence sequence
(:class:`~hierclass.smoothing.certificates.confidence_sequences.MixtureSequence`) and final
fixed-``n`` bound at level ``alpha / k`` on its own votes (split between them as for a flat input,
:mod:`hierclass.smoothing.sequential.sessions`); clean and constant nodes take no share (their
radius is infinite). Each node's bounds hold at every sample size with probability ``>= 1 - alpha /
k``, so by the union bound over the nodes all of them hold at once with probability ``>= 1 -
alpha``.

The path is certified at ``r`` once **every** smoothed node is certified at ``r`` (each
node's decision is final, as in :mod:`hierclass.smoothing.sequential.sessions`), and is not
certifiable at ``r`` once **any** node is not. Level ``d``'s class follows the same rule over
the nodes at levels ``0..d`` only (a deeper node cannot change it), so a user gets "this
class, to radius r" even when the label is certified only to a smaller radius. Sampling for
the input stops when the path and every level are decided at every radius (or at
``max_n``). On the ``1 - alpha`` event each certified node keeps its choice within ``r``, so
the hierarchy's output and each certified level do too: the certificates hold simultaneously
over the radii and the levels, and whenever sampling stops.

Flat baseline: when the :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth` has a
``flat`` model, it is certified sequentially on the same draws at the full ``alpha`` (its
own selection, its own sequence and stopping), exactly as
:func:`~hierclass.smoothing.sequential.sessions.certify_radii_many` would certify it alone with the
same seed and indices. An input samples until both are decided; each side's result is
frozen at the look where it was decided.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierclass.smoothing.certificates.bounds import check_alpha
from hierclass.smoothing.certificates.confidence_sequences import DEFAULT_LOOK_RATIO
from hierclass.smoothing.certificates.counts import ABSTAIN
from hierclass.smoothing.engine.protocol import Prepared, open_run
from hierclass.smoothing.engine.sampling import STREAM_SELECT, Request, Task
from hierclass.smoothing.hierarchy.plan import PathDraws, SamplingPlan, Step
from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
from hierclass.smoothing.sequential.sessions import (
    CERTIFIED,
    REFUTED,
    UNDECIDED,
    Decisions,
    RadiiResult,
    SequentialSetup,
    abstains,
    flat_result,
    largest_certified,
    run_sessions,
    sequential_setup,
)

__all__ = ["PathRadiiResult", "certify_hierarchy_radii_many", "combine_path", "node_alpha"]


def node_alpha(alpha: float, num_smoothed: int) -> float:
    """Each smoothed node's share of ``alpha`` (``alpha`` itself when none is smoothed).

    Examples
    --------
    >>> node_alpha(0.001, 2)
    0.0005
    """
    alpha = check_alpha(alpha)
    if num_smoothed < 0:
        raise ValueError(f"num_smoothed must be >= 0, got {num_smoothed}")
    return alpha / max(1, int(num_smoothed))


def combine_path(node_status: np.ndarray) -> np.ndarray:
    """The path's decision per radius from its smoothed nodes' decisions ``[..., k, R]``.

    Certified where every node is certified, refuted where any node is refuted, undecided
    otherwise. A path with no smoothed node (``k = 0``) is certified at every radius.

    Examples
    --------
    >>> combine_path(np.array([[1, 1, 0], [1, 0, -1]])).tolist()
    [1, 0, -1]
    """
    s = np.asarray(node_status)
    all_cert = np.all(s == CERTIFIED, axis=-2)
    any_ref = np.any(s == REFUTED, axis=-2)
    out = np.where(any_ref, REFUTED, UNDECIDED)
    return np.where(all_cert, CERTIFIED, out).astype(np.int8)


@dataclass
class PathRadiiResult:
    """Sequential certification of one input by a hierarchy, at given radii.

    Attributes
    ----------
    index : int
        Noise index.
    label : int
        The path's leaf label, or ``ABSTAIN`` (some smoothed node's ``p_lower < 1/2``, or
        radius 0 asked for and not certified).
    radii : tuple of float
        The radii asked for.
    certified : ndarray of bool
        Per radius: the hierarchy's output is certified (``1 - alpha`` jointly).
    route : tuple of int
        The certified route: class ids the selection draws chose, root first, cut before
        the first router that abstains (as in
        :class:`~hierclass.smoothing.certificates.path.HierarchyCertificate`).
    num_smoothed : int
        ``k``: smoothed nodes on the path; each ran at ``alpha / k``.
    node_p_lower : tuple of float
        Each smoothed node's lower bound when sampling stopped, root first.
    n_samples : int
        Estimation draws (through the path's models) when the hierarchy was decided, and
        selection draws.
    n_select : int
        Estimation draws (through the path's models) when the hierarchy was decided, and
        selection draws.
    nodes : tuple of (path, kind, choice)
        Every node on the selected path, root first: its position, ``"smoothed"``,
        ``"clean"`` or ``"constant"``, and its output index.
    node_certified : ndarray of bool [len(nodes), R]
        Per node and radius (clean and constant nodes: every radius).
    level_certified : ndarray of bool [len(nodes) - 1, R]
        Per level of the selected path: its class is certified at the radius (the nodes at
        levels ``0..d`` all are).
    alpha_node : float
        Each smoothed node's level, ``alpha / k``.
    node_counts : dict
        Per smoothed node's path: ``(bin, counts_select, counts)``, the votes it was
        certified on.
    flat : RadiiResult or None
        The flat baseline's sequential certificate on the same draws (full ``alpha``).
    seconds : float
        Wall time of this input's own draws (hierarchy and baseline).

    Examples
    --------
    A router on the first coordinate and leaves on the second (exact radius: the smaller
    coordinate):

    >>> import torch
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.smoothing import HierarchicalSmooth
    >>> two = lambda i: (lambda b: torch.stack([-b[:, i], b[:, i]], 1))
    >>> h = Hierarchy(Router(two(0), LabelPartition([[0, 1], [2, 3]])),
    ...               [Leaf(two(1), [0, 1]), Leaf(two(1), [2, 3])])
    >>> hs = HierarchicalSmooth(h, sigma=0.5)
    >>> (r,) = certify_hierarchy_radii_many(hs, [torch.tensor([1.0, 2.0])], [0.5, 1.5],
    ...                                     alpha=0.01, indices=[0])
    >>> r.label, r.route, r.certified.tolist(), r.num_smoothed
    (3, (1,), [True, False], 2)
    >>> r.level_certified.tolist()  # the class {2, 3} is certified to 1.5 too
    [[True, False]]
    """

    index: int
    label: int
    radii: tuple[float, ...]
    certified: np.ndarray
    route: tuple[int, ...]
    num_smoothed: int
    node_p_lower: tuple[float, ...]
    n_samples: int
    n_select: int
    nodes: tuple = ()
    node_certified: np.ndarray | None = None
    level_certified: np.ndarray | None = None
    alpha_node: float = math.nan
    node_counts: dict = field(default_factory=dict)
    flat: RadiiResult | None = None
    seconds: float = 0.0

    @property
    def radius(self) -> float:
        """The largest certified radius among :attr:`radii` (0.0 when none is)."""
        return largest_certified(self.radii, self.certified)

    def node_radius(self, j: int) -> float:
        """Node ``j``'s largest certified radius among :attr:`radii` (``inf`` when clean)."""
        if self.nodes[j][1] != "smoothed":
            return math.inf
        return largest_certified(self.radii, self.node_certified[j])

    def level_radius(self, depth: int) -> float:
        """Level ``depth``'s largest certified radius (0.0 when the route stops above it)."""
        if depth >= len(self.route):
            return 0.0
        return largest_certified(self.radii, self.level_certified[depth])


class _PathInput(PathDraws):
    """Bookkeeping of one input of a hierarchy while it is being certified.

    ``groups`` (from :class:`~hierclass.smoothing.hierarchy.plan.PathDraws`) is what the next
    look's draws run through: every group for the selection, then the path's and the flat
    baseline's while each is undecided.
    """

    def __init__(self, full: Any, sampled: Any, groups: set) -> None:
        super().__init__(groups, full)
        self.sampled = sampled
        self.sel: list | None = None
        self.est: list | None = None
        self.walk: list[Step] = []
        self.smoothed: list[int] = []  # positions in walk of the smoothed nodes
        self.nodes: Decisions | None = None
        self.flat: Decisions | None = None
        self.flat_choice = -1
        self.hier_result: PathRadiiResult | None = None
        self.flat_result: RadiiResult | None = None
        self.seconds = 0.0

    @property
    def bins(self) -> list[int]:
        """The vote bin each smoothed node is certified on."""
        return [self.walk[w].bin for w in self.smoothed]

    def look(self) -> int:
        """The next look of this input (the hierarchy's and the baseline's run in step)."""
        return max(self.nodes.look, -1 if self.flat is None else self.flat.look) + 1


def _prefix_status(st: _PathInput, depth: int) -> np.ndarray:
    """Decisions of the nodes at walk positions ``0..depth`` combined (:func:`combine_path`)."""
    rows = [j for j, w in enumerate(st.smoothed) if w <= depth]
    return combine_path(st.nodes.status[rows])


def certify_hierarchy_radii_many(
    hsmooth: HierarchicalSmooth,
    xs: Iterable[Any],
    radii: Sequence[float],
    n0: int = 100,
    max_n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int | str = 1000,
    *,
    indices: Iterable[int] | None = None,
    first: int = 128,
    ratio: float = DEFAULT_LOOK_RATIO,
) -> Iterator[PathRadiiResult]:
    """Sequentially certify a :class:`~hierclass.smoothing.hierarchy.smooth.HierarchicalSmooth`.

    The ``n0`` selection draws fix each input's path (through every smoothed model); the
    estimation draws then run, look by look, only the models on that path (and the flat
    baseline's, while it is undecided), and every smoothed node on it runs its confidence
    sequence at ``alpha / k`` (see the module docstring). Results come out as inputs are
    decided. Renormalised leaves certified with ``leaf_certificate="margin"`` are not
    supported (a margin confidence sequence would bound every competing label).

    Examples
    --------
    >>> import torch
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth
    >>> lin = lambda k: torch.nn.Linear(2, k).eval()
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> p = LabelPartition([[0, 1], [2, 3]], num_labels=4)
    >>> h = Hierarchy(Router(lin(2), p), [Leaf(lin(2), [0, 1]), Leaf(lin(2), [2, 3])])
    >>> hs = HierarchicalSmooth(h, sigma=0.25)
    >>> (r,) = certify_hierarchy_radii_many(hs, [torch.zeros(2)], [0.0, 0.1], max_n=2000,
    ...                                     batch_size=512, indices=[0])
    >>> r.num_smoothed, len(r.certified), r.n_samples <= 2000
    (2, 2, True)
    """

    setup = sequential_setup(hsmooth.sigma, radii, n0, max_n, alpha, first, ratio)
    if hsmooth.plan.margin:
        raise ValueError(
            "sequential hierarchy certification supports leaf_certificate='renormalized' only; "
            "this HierarchicalSmooth certifies renormalised leaves with "
            "leaf_certificate='margin'"
        )
    if not hsmooth.groups:
        raise ValueError(
            "no node of this hierarchy is smoothed (every radius is infinite); use "
            "HierarchicalSmooth.certify"
        )
    engine, pairs = open_run(hsmooth, xs, indices, batch_size)
    if engine is None:
        return iter(())
    sessions = _PathSessions(setup, hsmooth.plan, hsmooth.sigma)
    first_tasks = (sessions.start(x, i) for x, i in pairs)
    return (res for _task, res in run_sessions(engine, first_tasks, sessions.follow_up))


class _PathSessions:
    """The steps of one input's sequential certification by a hierarchy."""

    def __init__(self, setup: SequentialSetup, plan: SamplingPlan, sigma: float) -> None:
        self.setup, self.plan, self.sigma = setup, plan, sigma
        self.flat_gid = None if plan.flat_group is None else plan.flat_group.gid
        self.every_group = {g.gid for g in plan.groups}

    def share(self, k: int) -> float:
        """:func:`node_alpha` of the run's alpha, validated once by ``sequential_setup``."""
        return self.setup.alpha / max(1, k)

    def start(self, x: Prepared, i: int) -> Task:
        """The selection draws, through every smoothed model."""
        st = _PathInput(x.full, x.sampled, self.every_group)
        return Task(x.sampled, i, [Request(STREAM_SELECT, self.setup.n0)], st)

    def follow_up(self, task: Task) -> tuple[Task | None, PathRadiiResult | None]:
        """Fold the task's votes in; the next look's task, or the input's result."""
        st: _PathInput = task.payload
        st.seconds += task.seconds
        if st.nodes is None:
            self.begin(st, task.counts[0])
            if not st.smoothed:  # nothing on the path is random: decided without drawing
                st.est = [np.zeros_like(c) for c in st.sel]
                st.hier_result = self.result(task.index, st)
        else:
            self.fold(st, task.counts[0], task.index)
        nxt = self.next_look(task, st)
        if nxt is not None:
            return nxt, None
        res = st.hier_result
        res.flat, res.seconds = st.flat_result, st.seconds
        return None, res

    def begin(self, st: _PathInput, sel: list) -> None:
        """Fix the path from the selection votes and open each smoothed node's decisions."""
        st.sel = sel
        st.walk = self.plan.walk(st.full, sel)
        st.smoothed = [w for w, step in enumerate(st.walk) if step.role.kind == "smoothed"]
        k = len(st.smoothed)
        st.nodes = self.setup.decisions(k, self.share(k))
        if self.flat_gid is not None:
            st.flat_choice = int(np.argmax(self.plan.flat_counts(sel)))
            st.flat = self.setup.decisions(1)

    def next_look(self, task: Task, st: _PathInput) -> Task | None:
        """The next look's draws, through the models of whatever is still undecided."""
        look = st.look()
        groups = set()
        if st.hier_result is None:
            groups |= {st.walk[w].role.group.gid for w in st.smoothed}
        if st.flat is not None and st.flat_result is None:
            groups.add(self.flat_gid)
        if not groups or look > self.setup.last_look:
            return None
        st.groups = groups
        return Task(st.sampled, task.index, [self.setup.look_request(look)], st)

    def fold(self, st: _PathInput, counts: list, index: int) -> None:
        """Add one look's votes and update the hierarchy's and the baseline's decisions."""
        look = st.look()
        st.est = [c.copy() for c in counts] if st.est is None else [
            a + b for a, b in zip(st.est, counts)
        ]  # fmt: skip
        last = look == self.setup.last_look
        if st.hier_result is None:
            successes = [
                self.plan.node_counts(st.walk[w].role, st.est)[b]
                for w, b in zip(st.smoothed, st.bins)
            ]
            st.nodes.update(successes, look)
            if last or _decided(st):
                st.hier_result = self.result(index, st)
        if st.flat is not None and st.flat_result is None:
            flat_est = self.plan.flat_counts(st.est)
            st.flat.update([flat_est[st.flat_choice]], look)
            if last or st.flat.decided:
                sel = self.plan.flat_counts(st.sel)
                st.flat_result = flat_result(
                    self.setup, index, st.flat_choice, st.flat, 0, sel, flat_est.copy(), self.sigma
                )

    def result(self, index: int, st: _PathInput) -> PathRadiiResult:
        """The input's certificate from its nodes' decisions."""
        d, radii = st.nodes, self.setup.radii
        path = _prefix_status(st, len(st.walk) - 1)
        label = int(list(st.walk[-1].role.node.labels)[st.walk[-1].output])
        return PathRadiiResult(
            index=index,
            label=ABSTAIN if abstains(d.lower, path, radii) else label,
            radii=tuple(float(v) for v in radii),
            certified=path == CERTIFIED,
            route=_route(st, radii),
            num_smoothed=len(st.smoothed),
            node_p_lower=tuple(float(v) for v in d.lower),
            n_samples=d.n,
            n_select=self.setup.n0,
            nodes=tuple(
                (tuple(int(p) for p in step.role.path), step.role.kind, int(step.output))
                for step in st.walk
            ),
            node_certified=_node_certified(st, len(radii)),
            level_certified=_level_certified(st, len(radii)),
            alpha_node=self.share(len(st.smoothed)),
            node_counts={
                tuple(st.walk[w].role.path): (
                    b,
                    self.plan.node_counts(st.walk[w].role, st.sel),
                    self.plan.node_counts(st.walk[w].role, st.est).copy(),
                )
                for w, b in zip(st.smoothed, st.bins)
            },
        )


def _decided(st: _PathInput) -> bool:
    """Every level's prefix (the last one being the whole path) is decided at every radius."""
    return all(not np.any(_prefix_status(st, d) == UNDECIDED) for d in range(len(st.walk)))


def _route(st: _PathInput, radii: np.ndarray) -> tuple[int, ...]:
    """The certified route: the path's class ids, cut before the first router that abstains."""
    route: list[int] = []
    for w in range(len(st.walk) - 1):
        if w in st.smoothed:
            j = st.smoothed.index(w)
            if abstains(st.nodes.lower[j], st.nodes.status[j], radii):
                break
        route.append(int(st.walk[w + 1].role.path[-1]))
    return tuple(route)


def _node_certified(st: _PathInput, num_radii: int) -> np.ndarray:
    """Per walk node and radius: certified (clean and constant nodes: at every radius)."""
    out = np.ones((len(st.walk), num_radii), bool)
    for j, w in enumerate(st.smoothed):
        out[w] = st.nodes.status[j] == CERTIFIED
    return out


def _level_certified(st: _PathInput, num_radii: int) -> np.ndarray:
    """Per level of the path and radius: the nodes at levels ``0..d`` are all certified."""
    if len(st.walk) < 2:
        return np.zeros((0, num_radii), bool)
    return np.stack([_prefix_status(st, w) == CERTIFIED for w in range(len(st.walk) - 1)])

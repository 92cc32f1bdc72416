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
from hierclass.smoothing.engine.prepare import indexed_stream
from hierclass.smoothing.engine.sampling import STREAM_SELECT, Request, Task
from hierclass.smoothing.sequential.sessions import (
    CERTIFIED,
    REFUTED,
    UNDECIDED,
    Decisions,
    RadiiResult,
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


def _node_choice(v: Any) -> tuple[int, int]:
    """``(bin, output)``: the bin whose votes a smoothed node is certified on, and its output."""
    cs = np.asarray(v.counts_select)
    if v.bins is None:
        c = int(np.argmax(cs))  # ties: the smallest, as certify_counts
        return c, c
    lab = np.asarray(v.bins)
    j = int(np.argmax(cs[lab]))
    return int(lab[j]), j


class _PathInput:
    """Bookkeeping of one input of a hierarchy while it is being certified."""

    def __init__(self, full: Any, red: Any, groups: set) -> None:
        self.full, self.red, self.groups = full, red, groups
        self.sel: list | None = None
        self.est: list | None = None
        self.walk: list = []
        self.smoothed: list[int] = []  # positions in walk of the smoothed nodes
        self.bins: list[int] = []  # the bin each smoothed node is certified on
        self.outputs: list[int] = []  # each walk node's output index
        self.nodes: Decisions | None = None
        self.flat: Decisions | None = None
        self.flat_choice = -1
        self.hier_result: PathRadiiResult | None = None
        self.flat_result: RadiiResult | None = None
        self.seconds = 0.0

    def __getitem__(self, key: str) -> Any:
        # the hierarchy's sampler reads ``payload["groups"]``: the models this task runs
        return getattr(self, key)


def _prefix_status(st: _PathInput, depth: int) -> np.ndarray:
    """Decisions of the nodes at walk positions ``0..depth`` combined (:func:`combine_path`)."""
    rows = [j for j, w in enumerate(st.smoothed) if w <= depth]
    return combine_path(st.nodes.status[rows])


def certify_hierarchy_radii_many(
    hsmooth: Any,
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
    plan = hsmooth.plan
    flat_gid = None if plan.flat_group is None else plan.flat_group.gid
    all_groups = {g.gid for g in hsmooth.groups}
    head, pairs = indexed_stream(hsmooth._prepare, xs, indices)
    if head is None:
        return iter(())
    if not hsmooth.groups:
        raise ValueError(
            "no node of this hierarchy is smoothed (every radius is infinite); use "
            "HierarchicalSmooth.certify"
        )
    engine = hsmooth._engine(batch_size, head[1])

    def start(item: tuple, i: int) -> Task:
        full, red = item
        return Task(red, i, [Request(STREAM_SELECT, setup.n0)], _PathInput(full, red, all_groups))

    def begin(st: _PathInput, sel: list) -> None:
        st.sel = sel
        st.walk = hsmooth._walk(st.full, sel)
        for w, node in enumerate(st.walk):
            if node.kind == "smoothed":
                b, out = _node_choice(plan.votes(node, None, sel, sel))
                st.smoothed.append(w)
                st.bins.append(b)
            else:
                out = hsmooth._clean_choice(node, st.full) if node.kind == "clean" else 0
            st.outputs.append(out)
        k = len(st.smoothed)
        st.nodes = setup.decisions(k, node_alpha(setup.alpha, k))
        if flat_gid is not None:
            st.flat_choice = int(np.argmax(plan.flat_counts(sel)))
            st.flat = setup.decisions(1)

    def next_look(task: Task, st: _PathInput) -> Task | None:
        look = max(st.nodes.look, -1 if st.flat is None else st.flat.look) + 1
        groups = set()
        if st.hier_result is None:
            groups |= {st.walk[w].group.gid for w in st.smoothed}
        if st.flat is not None and st.flat_result is None:
            groups.add(flat_gid)
        if not groups or look > setup.last_look:
            return None
        st.groups = groups
        return Task(st.red, task.index, [setup.look_request(look)], st)

    def fold(st: _PathInput, counts: list, index: int) -> None:
        st.est = [c.copy() for c in counts] if st.est is None else [
            a + b for a, b in zip(st.est, counts)
        ]  # fmt: skip
        look = max(st.nodes.look, -1 if st.flat is None else st.flat.look) + 1
        if st.hier_result is None:
            succ = [plan.node_counts(st.walk[w], st.est)[b] for w, b in zip(st.smoothed, st.bins)]
            st.nodes.update(succ, look)
            if _hier_decided(st) or look == setup.last_look:
                st.hier_result = _result(index, st)
        if st.flat is not None and st.flat_result is None:
            st.flat.update([plan.flat_counts(st.est)[st.flat_choice]], look)
            if st.flat.decided or look == setup.last_look:
                st.flat_result = flat_result(
                    setup, index, st.flat_choice, st.flat, 0, plan.flat_counts(st.sel),
                    plan.flat_counts(st.est).copy(), hsmooth.sigma,
                )  # fmt: skip

    def _hier_decided(st: _PathInput) -> bool:
        depths = range(len(st.walk))  # every level's prefix, the last one being the path
        return all(not np.any(_prefix_status(st, d) == UNDECIDED) for d in depths)

    def _result(index: int, st: _PathInput) -> PathRadiiResult:
        d = st.nodes
        lower = d.lower
        path = _prefix_status(st, len(st.walk) - 1)
        node_cert = np.ones((len(st.walk), len(setup.radii)), bool)
        route: list[int] = []
        cut = False
        for j, w in enumerate(st.smoothed):
            node_cert[w] = d.status[j] == CERTIFIED
        for w in range(len(st.walk) - 1):
            if w in st.smoothed:
                j = st.smoothed.index(w)
                cut = cut or abstains(lower[j], d.status[j], setup.radii)
            if not cut:
                route.append(int(st.walk[w + 1].path[-1]))
        levels = np.stack(
            [_prefix_status(st, w) == CERTIFIED for w in range(len(st.walk) - 1)]
        ) if len(st.walk) > 1 else np.zeros((0, len(setup.radii)), bool)  # fmt: skip
        leaf = st.walk[-1]
        label = int(list(leaf.node.labels)[st.outputs[-1]])
        if abstains(lower, path, setup.radii):
            label = ABSTAIN
        return PathRadiiResult(
            index=index,
            label=label,
            radii=tuple(float(v) for v in setup.radii),
            certified=path == CERTIFIED,
            route=tuple(route),
            num_smoothed=len(st.smoothed),
            node_p_lower=tuple(float(v) for v in lower),
            n_samples=d.n,
            n_select=setup.n0,
            nodes=tuple(
                (tuple(int(p) for p in node.path), node.kind, int(out))
                for node, out in zip(st.walk, st.outputs)
            ),
            node_certified=node_cert,
            level_certified=levels,
            alpha_node=node_alpha(setup.alpha, len(st.smoothed)),
            node_counts={
                tuple(st.walk[w].path): (
                    b,
                    plan.node_counts(st.walk[w], st.sel),
                    plan.node_counts(st.walk[w], st.est).copy(),
                )
                for w, b in zip(st.smoothed, st.bins)
            },
        )

    def follow_up(task: Task) -> tuple[Task | None, PathRadiiResult | None]:
        st: _PathInput = task.payload
        st.seconds += task.seconds
        if st.nodes is None:
            begin(st, task.counts[0])
            if not st.smoothed:  # nothing on the path is random: decided without drawing
                st.est = [np.zeros_like(c) for c in st.sel]
                st.hier_result = _result(task.index, st)
        else:
            fold(st, task.counts[0], task.index)
        nxt = next_look(task, st)
        if nxt is not None:
            return nxt, None
        res = st.hier_result
        res.flat, res.seconds = st.flat_result, st.seconds
        return None, res

    return (res for _task, res in run_sessions(engine, (start(x, i) for x, i in pairs),
                                                follow_up))  # fmt: skip

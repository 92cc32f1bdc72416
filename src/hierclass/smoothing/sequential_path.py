"""Sequential decisions for a hierarchy's path: alpha split over the smoothed nodes, min radius.

A hierarchy's output at ``x`` is constant within the minimum of the radii of the nodes on
``x``'s path (§IV-C; :mod:`hierclass.smoothing.path`). For sequential certification at radii
``r_1 < ... < r_R`` each of the ``k`` *smoothed* nodes on the path runs its own confidence
sequence (:class:`~hierclass.smoothing.confidence_sequences.GeometricSchedule`) at level
``alpha / k`` on its own votes; clean and constant nodes take no share (their radius is
infinite). By the union bound over the nodes (and, inside each, over its looks), every
node's lower bounds hold at every look at once with probability ``>= 1 - alpha``.

The path is certified at ``r`` once **every** smoothed node is certified at ``r`` (each
node's decision is final, as in :mod:`hierclass.smoothing.sequential`), and is not
certifiable at ``r`` once **any** node is not. Sampling for the path stops when every radius
is decided for the path. On the ``1 - alpha`` event each certified node keeps its choice
within ``r``, so the hierarchy's output does too: the certificate holds simultaneously over
the radii and whenever sampling stops. The per-level certificates follow the same rule over
the routers above each level.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hierclass.smoothing.bounds import check_alpha
from hierclass.smoothing.certificates import ABSTAIN
from hierclass.smoothing.confidence_sequences import GeometricSchedule
from hierclass.smoothing.sampling import STREAM_SELECT, Request, Task
from hierclass.smoothing.sequential import CERTIFIED, REFUTED, UNDECIDED

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
        Class ids the selection draws chose, root first.
    num_smoothed : int
        ``k``: smoothed nodes on the path; each ran at ``alpha / k``.
    node_p_lower : tuple of float
        Each smoothed node's lower bound when sampling stopped, root first.
    n_samples, n_select : int
        Estimation draws (through the path's models) and selection draws.

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

    @property
    def radius(self) -> float:
        """The largest certified radius among :attr:`radii` (0.0 when none is)."""
        cert = [r for r, c in zip(self.radii, self.certified) if c]
        return max(cert) if cert else 0.0


def _node_choice(v: Any) -> tuple[int, int]:
    """``(bin, output)``: the bin whose votes a smoothed node is certified on, and its output."""
    cs = np.asarray(v.counts_select)
    if v.bins is None:
        c = int(np.argmax(cs))  # ties: the smallest, as certify_counts
        return c, c
    lab = np.asarray(v.bins)
    j = int(np.argmax(cs[lab]))
    return int(lab[j]), j


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
    ratio: float = 1.5,
) -> Iterator[PathRadiiResult]:
    """Sequentially certify a :class:`~hierclass.smoothing.hierarchical.HierarchicalSmooth`.

    The ``n0`` selection draws fix each input's path (through every smoothed model); the
    estimation draws then run, look by look, only the models on that path, and every smoothed
    node on it runs its confidence sequence at ``alpha / k`` (see the module docstring).
    Results come out as inputs are decided. Nodes certified with ``method="margin"`` are not
    supported (a margin confidence sequence would bound every competing label).

    Examples
    --------
    >>> import torch
    >>> from hierclass import Hierarchy, LabelPartition, Leaf, Router
    >>> from hierclass.smoothing.hierarchical import HierarchicalSmooth
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
    from hierclass.smoothing.sequential import (
        STREAM_LOOK_BASE,
        _run_sessions,
        check_radii,
        radius_thresholds,
        update_decisions,
    )
    from hierclass.smoothing.smooth import check_count, noise_index

    n0 = check_count("n0", n0)
    max_n = check_count("max_n", max_n)
    alpha = check_alpha(alpha)
    r = check_radii(radii)
    if hsmooth.plan.margin:
        raise ValueError(
            "sequential hierarchy certification supports method='cohen' nodes; this "
            "HierarchicalSmooth certifies renormalised leaves with method='margin'"
        )
    thresholds = radius_thresholds(r, hsmooth.sigma)
    all_groups = {g.gid for g in hsmooth.groups}
    xs_iter = iter(xs)
    idx_iter = iter(indices) if indices is not None else None
    head = next(xs_iter, None)
    if head is None:
        return iter(())
    first_full, first_red = hsmooth._prepare(head)
    if not hsmooth.groups:
        raise ValueError(
            "no node of this hierarchy is smoothed (every radius is infinite); use "
            "HierarchicalSmooth.certify"
        )
    engine = hsmooth._engine(batch_size, first_red)

    def first_tasks() -> Iterator[Task]:
        item = (first_full, first_red)
        while item is not None:
            i = next(idx_iter, None) if idx_iter is not None else noise_index(None)
            if i is None:
                raise ValueError("indices is shorter than the inputs")
            full, red = item
            state = {"groups": all_groups, "full": full, "red": red, "look": -1}
            yield Task(red, noise_index(i), [Request(STREAM_SELECT, n0)], state)
            nxt = next(xs_iter, None)
            item = None if nxt is None else hsmooth._prepare(nxt)

    def start(task: Task, st: dict) -> None:
        st["sel"] = task.counts[0]
        walk = hsmooth._walk(st["full"], st["sel"])
        st["walk"] = walk
        st["smoothed"] = [p for p in walk if p.kind == "smoothed"]
        st["groups"] = {p.group.gid for p in st["smoothed"]}
        k = len(st["smoothed"])
        st["schedule"] = GeometricSchedule(max_n, node_alpha(alpha, k), first=first, ratio=ratio)
        st["lo"] = np.zeros(k)
        st["hi"] = np.ones(k)
        st["status"] = np.zeros((k, len(r)), np.int8)
        st["est"] = None

    def look_task(task: Task, st: dict) -> Task:
        k = st["look"] + 1
        inc = int(st["schedule"].increments()[k])
        return Task(st["red"], task.index, [Request(STREAM_LOOK_BASE + k, inc)], st)

    def follow_up(task: Task):
        st = task.payload
        if st["look"] < 0 and "walk" not in st:
            start(task, st)
            return look_task(task, st), None
        counts = task.counts[0]
        st["est"] = (
            [c.copy() for c in counts]
            if st["est"] is None
            else [a + b for a, b in zip(st["est"], counts)]
        )
        st["look"] += 1
        schedule = st["schedule"]
        n = int(schedule.looks[st["look"]])
        for j, plan in enumerate(st["smoothed"]):
            v = hsmooth.plan.votes(plan, None, st["sel"], st["est"])
            b, _ = _node_choice(v)
            lo, hi = schedule.bounds(int(np.asarray(v.counts)[b]), n, st["look"])
            st["lo"][j] = max(st["lo"][j], float(lo))
            st["hi"][j] = min(st["hi"][j], float(hi))
        st["status"] = update_decisions(st["status"], st["lo"], st["hi"], thresholds)
        path = combine_path(st["status"])
        if st["look"] < len(schedule) - 1 and np.any(path == UNDECIDED):
            return look_task(task, st), None
        return None, _result(task.index, st, path, n)

    def _result(index: int, st: dict, path: np.ndarray, n: int) -> PathRadiiResult:
        walk = st["walk"]
        route = tuple(int(p) for p in walk[-1].path)
        leaf = walk[-1]
        if leaf.kind == "smoothed":
            v = hsmooth.plan.votes(leaf, None, st["sel"], st["est"])
            _, out = _node_choice(v)
        elif leaf.kind == "clean":
            out = hsmooth._clean_choice(leaf, st["full"])
        else:
            out = 0
        leaf_label = int(list(leaf.node.labels)[out])
        abstain = bool(np.any(st["lo"] < 0.5)) or bool(np.any((r == 0) & (path != CERTIFIED)))
        return PathRadiiResult(
            index=index,
            label=ABSTAIN if abstain else leaf_label,
            radii=tuple(float(v) for v in r),
            certified=path == CERTIFIED,
            route=route,
            num_smoothed=len(st["smoothed"]),
            node_p_lower=tuple(float(v) for v in st["lo"]),
            n_samples=n,
            n_select=n0,
        )

    def results() -> Iterator[PathRadiiResult]:
        for _task, result in _run_sessions(engine, first_tasks(), follow_up):
            yield result

    return results()

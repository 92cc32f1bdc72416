"""The hierarchy's certificate from the counts of one sample's path (§IV-C): a pure function.

:func:`certify_path` takes, for each node on the path the selection draws chose (root first),
its votes (:class:`NodeVotes`) and returns a :class:`HierarchyCertificate`: the label and its
radius, and the certified equivalence class at every level of the path with its own radius.
It samples nothing, so a stored run can be re-certified offline, and it is the one place where
node certificates are combined.

Alpha accounting
----------------
Let ``k`` be the number of *smoothed* nodes on the path (nodes that read a perturbed modality
and have more than one output). Each is certified at level ``alpha / k``; by the union bound
all ``k`` node bounds hold together with probability ``>= 1 - alpha``. Clean nodes (reading
only unperturbed modalities) and constant nodes (one output) take no share: nothing random
enters their choice, and their radius is infinite. The path itself is chosen with the ``n0``
selection draws only, which are independent of the estimation draws the bounds use, so the
bounds hold conditionally on the path.

On that one event every statement below holds at once:

* the label: every node on the path keeps its choice within its radius, so the hierarchy's
  output is constant within ``radius = min`` over the path's node radii;
* level ``d`` (the class chosen by the ``d``-th router): constant within the minimum over the
  routers at levels ``0..d`` only. Nodes below level ``d`` cannot change which class is
  chosen at level ``d``, so a deeper abstention or a smaller leaf radius does not weaken it:
  a circle sign is certified to ``R1`` even when its exact label is certified only to
  ``R2 < R1``, or abstains.

So the label certificate and all level certificates hold *simultaneously* with probability
``>= 1 - alpha``; no extra alpha is spent on the levels. A router that abstains ends the
path: the levels above it stay certified, the ones from it on and the label abstain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from hierclass.smoothing.certificates.bounds import check_alpha, check_sigma
from hierclass.smoothing.certificates.counts import (
    ABSTAIN,
    Certificate,
    certify_counts_checked,
    check_bound,
)

__all__ = [
    "HierarchyCertificate",
    "LevelCertificate",
    "NodeCertificate",
    "NodeVotes",
    "certify_path",
]

NodePath = tuple[int, ...]

#: How a node on the path is certified: from noisy votes, from its clean output (it reads
#: nothing the adversary can touch), or without reading anything (a one-label node).
NodeKind = Literal["smoothed", "clean", "constant"]
NODE_KINDS: tuple[NodeKind, ...] = get_args(NodeKind)


def path_name(path: NodePath) -> str:
    """``"root"`` or the dotted child ids, e.g. ``"0.2"``.

    Examples
    --------
    >>> path_name(()), path_name((0, 2))
    ('root', '0.2')
    """
    return ".".join(str(p) for p in path) if path else "root"


@dataclass(frozen=True)
class NodeVotes:
    """What one node on the path contributes: its votes, or its clean choice.

    Attributes
    ----------
    path : tuple of int
        The node's position (``()`` for the root).
    kind : {"smoothed", "clean", "constant"}
        ``"smoothed"``: certified from ``counts_select`` / ``counts``; ``"clean"``: read only
        unperturbed modalities, ``choice`` is its output on the clean input; ``"constant"``:
        one output (``choice`` 0).
    outputs : tuple of tuple of int
        The global labels behind each output: a router's child classes, or one label per
        output of a leaf.
    counts_select : ndarray of int or None
        Votes on the selection and estimation draws (smoothed nodes). Their bins are the
        node's outputs, or global labels when ``bins`` is given.
    counts : ndarray of int or None
        Votes on the selection and estimation draws (smoothed nodes). Their bins are the
        node's outputs, or global labels when ``bins`` is given.
    bins : tuple of int, optional
        For votes over global labels (a renormalised leaf): the bin of each output.
    bound : {"cohen", "margin"}
        The bound on the node's counts (see
        :func:`~hierclass.smoothing.certificates.counts.certify_counts`).
    choice : int, optional
        The output chosen (clean and constant nodes).
    names : tuple of str, optional
        Names of a router's child classes (for level certificates).

    Examples
    --------
    >>> v = NodeVotes((), "smoothed", ((0, 1), (2,)), np.array([9, 1]), np.array([95, 5]))
    >>> v.is_router
    True
    """

    path: NodePath
    kind: NodeKind
    outputs: tuple[tuple[int, ...], ...]
    counts_select: np.ndarray | None = None
    counts: np.ndarray | None = None
    bins: tuple[int, ...] | None = None
    bound: str = "cohen"
    choice: int | None = None
    names: tuple[str, ...] | None = None
    router: bool | None = None

    @property
    def is_router(self) -> bool:
        """True for a router (its outputs are classes); leaves output single labels."""
        if self.router is not None:
            return self.router
        return any(len(o) != 1 for o in self.outputs) or self.names is not None


@dataclass
class NodeCertificate:
    """One node's part of a hierarchical certificate.

    ``choice`` is the node's output index (a class id for a router, a position in the leaf's
    labels) or ``ABSTAIN``; ``certificate`` is ``None`` for a node evaluated without noise
    (infinite radius).

    Examples
    --------
    >>> NodeCertificate((), "clean", 1, math.inf).radius
    inf
    """

    path: NodePath
    kind: NodeKind
    choice: int
    radius: float
    certificate: Certificate | None = None
    counts_select: np.ndarray | None = None
    counts: np.ndarray | None = None


@dataclass(frozen=True)
class LevelCertificate:
    """The certified equivalence class at one level of the path.

    Attributes
    ----------
    depth : int
        0 for the root's choice, 1 for the next router's, ...
    route : tuple of int
        Class ids chosen from the root down to this level (``len(route) == depth + 1``).
    name : str
        The class's name (its router's partition name).
    labels : tuple of int
        The global labels of the class.
    radius : float
        The class is constant within this radius: the minimum over the routers at levels
        ``0..depth``.

    Examples
    --------
    >>> LevelCertificate(0, (1,), "circle", (2, 3), 0.4).route
    (1,)
    """

    depth: int
    route: tuple[int, ...]
    name: str
    labels: tuple[int, ...]
    radius: float


@dataclass
class HierarchyCertificate:
    """A certified prediction of a smoothed hierarchy at one input.

    Attributes
    ----------
    index : int
        Noise index of the input.
    label : int
        Predicted global label or ``ABSTAIN``.
    radius : float
        ``min`` of the path's node radii (0 when abstaining, ``inf`` when no node on the path
        reads a perturbed modality).
    route : tuple of int
        Class ids chosen along the path (shorter when a router abstained).
    nodes : list of NodeCertificate
        The path's nodes, root first (up to the first abstention).
    levels : list of LevelCertificate
        The certified class at each level, root first (up to the first abstaining router).
    alpha_node : float
        The level each smoothed node was certified at (``alpha / k``).
    num_smoothed : int
        ``k``, the smoothed nodes on the path that share ``alpha``.
    flat : Certificate or None
        The flat baseline's certificate from the same draws, when requested.
    flat_counts : (ndarray, ndarray) or None
        The flat baseline's selection and estimation votes.
    seconds : float
        Wall time spent sampling this input (its share of the batches of both phases); for a
        hierarchy that samples nothing, the time of its clean forward passes.

    Examples
    --------
    >>> root = NodeVotes((), "smoothed", ((0, 1), (2, 3)), np.array([1, 99]),
    ...                  np.array([10, 990]), names=("a", "b"))
    >>> leaf = NodeVotes((1,), "smoothed", ((2,), (3,)), np.array([50, 50]),
    ...                  np.array([500, 500]))
    >>> c = certify_path([root, leaf], alpha=0.01, sigma=0.5)
    >>> c.label, c.radius, c.levels[0].name, c.levels[0].radius > 0
    (-1, 0.0, 'b', True)
    """

    index: int
    label: int
    radius: float
    route: tuple[int, ...]
    nodes: list[NodeCertificate]
    alpha_node: float
    levels: list[LevelCertificate] = field(default_factory=list)
    num_smoothed: int = 0
    flat: Certificate | None = None
    flat_counts: tuple[np.ndarray, np.ndarray] | None = None
    seconds: float = 0.0

    @property
    def abstained(self) -> bool:
        """True when the hierarchy abstains on the label."""
        return self.label == ABSTAIN

    def level_radius(self, depth: int) -> float:
        """The radius of the class certified at ``depth`` (0 if none was certified there).

        Examples
        --------
        >>> HierarchyCertificate(0, -1, 0.0, (), [], 0.01).level_radius(0)
        0.0
        """
        return self.levels[depth].radius if depth < len(self.levels) else 0.0

    def route_correct(self, true_route: Sequence[int]) -> bool:
        """True when the certified route is exactly ``true_route`` (no abstention on the way).

        Examples
        --------
        >>> HierarchyCertificate(0, 3, 0.5, (1,), [], 0.01).route_correct([1])
        True
        """
        return tuple(self.route) == tuple(int(r) for r in true_route)


def _node_certificate(v: NodeVotes, alpha_node: float, sigma: float) -> NodeCertificate:
    if v.kind != "smoothed":
        return NodeCertificate(v.path, v.kind, int(v.choice or 0), math.inf)
    cs, ce = np.asarray(v.counts_select), np.asarray(v.counts)
    if v.bins is None:
        cert = certify_counts_checked(cs, ce, alpha_node, sigma, None, v.bound)
        choice = cert.label
    else:
        cert = certify_counts_checked(cs, ce, alpha_node, sigma, v.bins, v.bound)
        choice = ABSTAIN if cert.label == ABSTAIN else list(v.bins).index(cert.label)
    return NodeCertificate(v.path, v.kind, choice, cert.radius, cert, cs, ce)


def certify_path(
    votes: Sequence[NodeVotes],
    alpha: float,
    sigma: float,
    *,
    index: int = 0,
) -> HierarchyCertificate:
    """The hierarchy's certificate (label, radius, per-level classes) from its path's votes.

    Parameters
    ----------
    votes : sequence of NodeVotes
        The nodes on the path chosen by the selection draws, root first, ending at a leaf.
    alpha : float
        Failure probability of the whole certificate; split over the smoothed nodes (see the
        module docstring for the accounting).
    sigma : float
        Noise level.
    index : int
        The input's noise index (recorded).

    Returns
    -------
    HierarchyCertificate

    Examples
    --------
    A root certified with a large margin, a leaf with a small one:

    >>> root = NodeVotes((), "smoothed", ((0, 1), (2, 3)), np.array([0, 100]),
    ...                  np.array([1, 999]), names=("round", "square"))
    >>> leaf = NodeVotes((1,), "smoothed", ((2,), (3,)), np.array([10, 90]),
    ...                  np.array([300, 700]))
    >>> c = certify_path([root, leaf], alpha=0.002, sigma=0.5)
    >>> c.label, c.alpha_node, c.levels[0].name
    (3, 0.001, 'square')
    >>> c.levels[0].radius > c.radius == c.nodes[1].radius
    True
    """
    alpha = check_alpha(alpha)
    sigma = check_sigma(sigma)
    if not votes:
        raise ValueError("a path needs at least one node, got none")
    for v in votes:
        if v.kind not in NODE_KINDS:
            raise ValueError(f"node kind must be one of {NODE_KINDS}, got {v.kind!r}")
        check_bound(v.bound)
    k = sum(1 for v in votes if v.kind == "smoothed")
    alpha_node = alpha / max(1, k)
    nodes: list[NodeCertificate] = []
    levels: list[LevelCertificate] = []
    route: list[int] = []
    label, radius = ABSTAIN, math.inf
    for v in votes:
        node = _node_certificate(v, alpha_node, sigma)
        nodes.append(node)
        if node.choice == ABSTAIN:
            label, radius = ABSTAIN, 0.0
            break
        radius = min(radius, node.radius)
        if v.is_router:
            route.append(node.choice)
            name = v.names[node.choice] if v.names is not None else str(node.choice)
            levels.append(
                LevelCertificate(
                    len(levels), tuple(route), name, tuple(v.outputs[node.choice]), radius
                )
            )
        else:
            label = int(v.outputs[node.choice][0])
            break
    else:
        label, radius = ABSTAIN, 0.0  # the path ended without a leaf: nothing certified
    return HierarchyCertificate(index, label, radius, tuple(route), nodes, alpha_node, levels, k)

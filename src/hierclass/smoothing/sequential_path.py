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

import numpy as np

from hierclass.smoothing.bounds import check_alpha
from hierclass.smoothing.sequential import CERTIFIED, REFUTED, UNDECIDED

__all__ = ["combine_path", "node_alpha"]


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

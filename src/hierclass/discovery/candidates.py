"""Candidate partitions for the search: k-means at several layers (Algorithm 1), spectral
clustering of a confusion matrix, and the user's own proposals, failures kept with their
reason so that the search table shows them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from hierclass.discovery.confusion import confusion_partition
from hierclass.discovery.embeddings import extract_embeddings
from hierclass.discovery.kmeans import kmeans_partition
from hierclass.discovery.report import DiscoveryError, DiscoveryReport
from hierclass.partition import LabelPartition


@dataclass
class Candidate:
    """A proposed partition and where it came from.

    Attributes
    ----------
    source : str
        E.g. ``"kmeans(layer=rest.3, k=2)"``, ``"confusion(k=2)"``, ``"user:shape"``.
    partition : LabelPartition or None
        ``None`` when discovery failed (then ``error`` says why).
    report : DiscoveryReport or None
    error : str or None

    Examples
    --------
    >>> from hierclass.partition import LabelPartition
    >>> Candidate("user:halves", LabelPartition([[0, 1], [2, 3]])).ok
    True
    """

    source: str
    partition: LabelPartition | None
    report: DiscoveryReport | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.partition is not None


def propose_candidates(
    *,
    model: nn.Module | None = None,
    x: Any = None,
    y: Any = None,
    layers: Sequence[str] = (),
    ks: Sequence[int] = (2,),
    confusion: Any = None,
    user: Mapping[str, LabelPartition] | None = None,
    num_labels: int | None = None,
    batch_size: int = 256,
    **kmeans_options: Any,
) -> list[Candidate]:
    """Candidates from k-means at several layers and ``k``, a confusion matrix, and the user.

    Discovery failures (unseparated clusters, a cluster owning no label, ...) are kept as
    candidates with ``partition=None`` and the error, so the search table shows them.

    Parameters
    ----------
    model : optional
        Network, inputs and labels for Algorithm 1 (needed when ``layers`` is non-empty).
    x : optional
        Network, inputs and labels for Algorithm 1 (needed when ``layers`` is non-empty).
    y : optional
        Network, inputs and labels for Algorithm 1 (needed when ``layers`` is non-empty).
    layers : sequence of str
        Layers to cluster (see :func:`~hierclass.discovery.list_layers`).
    ks : sequence of int, default (2,)
        Numbers of classes to try, for k-means and for the confusion matrix.
    confusion : array-like [L, L], optional
        Confusion matrix for spectral clustering.
    user : mapping name -> LabelPartition, optional
        Hand-made proposals (domain knowledge).
    num_labels : int, optional
    batch_size : int, default 256
        For embedding extraction.
    **kmeans_options
        Passed to :class:`~hierclass.discovery.KMeansDiscovery`.

    Returns
    -------
    list of Candidate

    Examples
    --------
    >>> import numpy as np
    >>> c = np.full((4, 4), 1.0) + np.kron(np.eye(2), np.full((2, 2), 20.0))
    >>> [cand.source for cand in propose_candidates(confusion=c, ks=(2, 3))]
    ['confusion(k=2)', 'confusion(k=3)']
    """
    out: list[Candidate] = []
    if layers:
        if model is None or x is None or y is None:
            raise ValueError("k-means candidates need model, x and y")
        embeddings = extract_embeddings(model, x, list(layers), batch_size=batch_size)
        for layer in layers:
            for k in ks:
                source = f"kmeans(layer={layer}, k={k})"
                try:
                    part, rep = kmeans_partition(
                        embeddings[layer],
                        y,
                        k,
                        num_labels=num_labels,
                        layer=layer,
                        **kmeans_options,
                    )
                    out.append(Candidate(source, part, rep))
                except DiscoveryError as err:
                    out.append(Candidate(source, None, err.report, str(err)))
    if confusion is not None:
        for k in ks:
            source = f"confusion(k={k})"
            try:
                part, rep = confusion_partition(confusion, k)
                out.append(Candidate(source, part, rep))
            except DiscoveryError as err:
                out.append(Candidate(source, None, err.report, str(err)))
    for name, part in (user or {}).items():
        if not isinstance(part, LabelPartition):
            raise TypeError(f"user proposal {name!r} must be a LabelPartition, got {type(part)}")
        out.append(Candidate(f"user:{name}", part))
    return out

"""Algorithm 1 (§V-A): equivalence classes from k-means clusters of a network's embeddings."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_score
from torch import nn

from hierclass.discovery._validate import check_embeddings, check_k, check_labels
from hierclass.discovery.embeddings import extract_embeddings
from hierclass.discovery.report import ClusterSeparationError, DiscoveryError, DiscoveryReport
from hierclass.partition import LabelPartition


def repartition_labels(counts: Any) -> list[list[int]]:
    """Step 12 of Algorithm 1: give each label to the cluster holding most of its samples.

    Parameters
    ----------
    counts : array-like [num_labels, k]
        ``counts[y, i]``: samples of label ``y`` in cluster ``i`` (non-negative).

    Returns
    -------
    list of k lists of int
        Disjoint classes covering every label; ties go to the lowest cluster index.

    Raises
    ------
    ValueError
        If a label has no samples (it cannot be placed) or a cluster ends up with no label.

    Examples
    --------
    >>> repartition_labels([[8, 2], [1, 9], [6, 4]])
    [[0, 2], [1]]
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"counts must be 2-D [num_labels, k], got shape {counts.shape}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("counts must be finite and non-negative")
    unseen = np.flatnonzero(counts.sum(axis=1) == 0)
    if unseen.size:
        raise ValueError(
            f"labels {unseen.tolist()} have no samples, so no cluster can claim them; "
            "pass samples of every label (or a smaller num_labels)"
        )
    owner = counts.argmax(axis=1)  # argmax returns the first maximum: ties -> lowest index
    classes = [np.flatnonzero(owner == i).tolist() for i in range(counts.shape[1])]
    empty = [i for i, c in enumerate(classes) if not c]
    if empty:
        raise ValueError(
            f"clusters {empty} hold the majority of no label, so repartitioning leaves them "
            "empty; the data support fewer classes (try a smaller k or another layer)"
        )
    return classes


class KMeansDiscovery:
    """Algorithm 1: cluster embeddings with k-means and turn the clusters into label classes.

    Steps: (1) embeddings are given (see :func:`extract_embeddings`); (2) k-means; (3) check
    that there are ``k`` non-empty, distinct clusters; (4) check that they are separated
    (silhouette score >= ``min_separation``, else :class:`ClusterSeparationError`); (5-8)
    collect each cluster's labels; (9-12) when the label sets overlap, repartition them into
    disjoint classes, each label going to the cluster that holds most of its samples.

    Parameters
    ----------
    k : int
        Number of clusters, i.e. equivalence classes (2 <= k <= number of labels).
    min_separation : float, default 0.0
        Minimum silhouette score (in [-1, 1]); below it ``fit`` raises. 0 rejects clusterings
        whose points sit on average closer to another cluster than to their own.
    min_label_share : float, default 0.0
        Step 7: a label belongs to a cluster's label set when more than this share of the
        label's samples lie in the cluster. 0 keeps the paper's "unique labels" reading (any
        sample counts), so noisy clusters nearly always overlap and step 12 runs.
    n_init : int, default 10
        k-means restarts.
    random_state : int, default 0
        Seed for k-means and the silhouette subsample.
    silhouette_sample_size : int or None, default 2000
        Points used to estimate the silhouette (its cost is quadratic); ``None`` uses all.

    Attributes
    ----------
    partition_ : LabelPartition
        Classes ordered by their smallest label, named ``"class0"``, ``"class1"``, ...
    report_ : DiscoveryReport
    cluster_ids_ : ndarray [N]
        Class id (after reordering) of each embedding's cluster.
    centers_ : ndarray [k, D]
        Cluster centres in class order.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 50)
    >>> centres = np.array([[0, 0], [0, 0], [5, 5], [5, 5]], dtype=float)
    >>> emb = centres[y] + 0.3 * rng.standard_normal((200, 2))
    >>> disc = KMeansDiscovery(k=2, min_separation=0.3).fit(emb, y)
    >>> disc.partition_.classes
    ((0, 1), (2, 3))
    >>> round(disc.report_.agreement, 2)
    1.0
    """

    def __init__(
        self,
        k: int,
        *,
        min_separation: float = 0.0,
        min_label_share: float = 0.0,
        n_init: int = 10,
        random_state: int = 0,
        silhouette_sample_size: int | None = 2000,
    ) -> None:
        self.k = k
        self.min_separation = min_separation
        self.min_label_share = min_label_share
        self.n_init = n_init
        self.random_state = random_state
        self.silhouette_sample_size = silhouette_sample_size

    def fit(
        self,
        embeddings: Any,
        labels: Any,
        *,
        num_labels: int | None = None,
        layer: str | None = None,
    ) -> KMeansDiscovery:
        """Run Algorithm 1 on embeddings ``[N, D]`` with fine labels ``[N]``.

        Parameters
        ----------
        embeddings : array-like or Tensor [N, D]
            Finite embeddings, one row per sample.
        labels : array-like or Tensor [N]
            Integer fine labels in ``0..num_labels-1``.
        num_labels : int, optional
            Size of the label set; defaults to ``max(labels) + 1``. Every label needs samples.
        layer : str, optional
            Layer name, recorded in the report.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad shapes, NaN embeddings, ``k`` out of range, fewer than ``k`` distinct
            clusters (step 3), or a label/cluster that cannot be placed (step 12).
        ClusterSeparationError
            Silhouette score below ``min_separation`` (step 4); ``.report`` has the numbers.
        """
        emb = check_embeddings(embeddings)
        y, num_labels = check_labels(labels, emb.shape[0], num_labels)
        k = check_k(self.k, num_labels)
        if not -1.0 <= float(self.min_separation) <= 1.0:
            raise ValueError(f"min_separation must be in [-1, 1], got {self.min_separation}")
        if not 0.0 <= float(self.min_label_share) < 1.0:
            raise ValueError(f"min_label_share must be in [0, 1), got {self.min_label_share}")
        if emb.shape[0] <= k:
            raise ValueError(f"need more than k={k} embeddings to cluster, got {emb.shape[0]}")

        # Step 2: cluster.
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            try:
                km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state)
                raw = km.fit_predict(emb)
            except ConvergenceWarning as warn:
                raise DiscoveryError(
                    f"step 3 of Algorithm 1 failed: k-means could not find {k} distinct "
                    f"clusters ({warn})"
                ) from None
        # Step 3: k non-empty clusters with distinct centres.
        sizes = np.bincount(raw, minlength=k)
        distinct = np.unique(km.cluster_centers_.round(12), axis=0).shape[0]
        if (sizes == 0).any() or distinct < k:
            raise DiscoveryError(
                f"step 3 of Algorithm 1 failed: expected {k} non-empty distinct clusters, got "
                f"sizes {sizes.tolist()} with {distinct} distinct centres"
            )
        counts_raw = np.zeros((num_labels, k), dtype=np.int64)
        np.add.at(counts_raw, (y, raw), 1)
        # Step 4: separation.
        sample_size = self.silhouette_sample_size
        if sample_size is not None and sample_size >= emb.shape[0]:
            sample_size = None
        separation = float(
            silhouette_score(emb, raw, sample_size=sample_size, random_state=self.random_state)
        )

        # Steps 5-8: each cluster's label set.
        per_label = counts_raw.sum(axis=1, keepdims=True)
        share = np.divide(
            counts_raw, per_label, out=np.zeros(counts_raw.shape), where=per_label > 0
        )
        member = share > self.min_label_share
        overlapping = tuple(int(i) for i in np.flatnonzero(member.sum(axis=1) > 1))
        uncovered = np.flatnonzero(member.sum(axis=1) == 0)
        disjoint = not overlapping and uncovered.size == 0 and member.any(axis=0).all()

        def fail_report(message: str) -> DiscoveryReport:
            return _kmeans_report(
                None,
                counts_raw,
                separation,
                self.min_separation,
                overlapping,
                not disjoint,
                layer,
                message,
                km,
            )

        if separation < self.min_separation:
            message = (
                f"step 4 of Algorithm 1 failed: silhouette score {separation:.4f} is below "
                f"min_separation={self.min_separation}; the {k} clusters are not separated"
            )
            raise ClusterSeparationError(message, fail_report(message))

        # Steps 9-12: disjoint label sets, repartitioning when they overlap.
        if disjoint:
            groups = [np.flatnonzero(member[:, i]).tolist() for i in range(k)]
        else:
            try:
                groups = repartition_labels(counts_raw)
            except ValueError as err:
                message = f"step 12 of Algorithm 1 failed: {err}"
                raise DiscoveryError(message, fail_report(message)) from None

        # Canonical order: classes sorted by smallest label, so reruns compare equal.
        order = sorted(range(k), key=lambda i: groups[i][0])
        partition = LabelPartition([groups[i] for i in order], num_labels=num_labels)
        remap = np.empty(k, dtype=np.int64)
        remap[order] = np.arange(k)
        counts = counts_raw[:, order]
        self.partition_ = partition
        self.cluster_ids_ = remap[raw]
        self.centers_ = km.cluster_centers_[order]
        self.kmeans_ = km
        self.report_ = _kmeans_report(
            partition,
            counts,
            separation,
            self.min_separation,
            overlapping,
            not disjoint,
            layer,
            None,
            km,
        )
        return self


def _kmeans_report(
    partition, counts, separation, threshold, overlapping, repartitioned, layer, failure, km
) -> DiscoveryReport:
    k = counts.shape[1]
    per_label = counts.sum(axis=1)
    if partition is not None:
        owner = np.asarray(partition.label_to_class)
        label_purity = counts[np.arange(counts.shape[0]), owner] / np.maximum(per_label, 1)
        in_class = np.array([counts[list(partition.classes[c]), c].sum() for c in range(k)])
        class_total = np.array([counts[list(partition.classes[c])].sum() for c in range(k)])
        class_purity = in_class / np.maximum(class_total, 1)
        agreement = float(in_class.sum() / max(counts.sum(), 1))
    else:
        label_purity = counts.max(axis=1) / np.maximum(per_label, 1)
        class_purity = np.full(k, np.nan)
        agreement = float(counts.max(axis=1).sum() / max(counts.sum(), 1))
    return DiscoveryReport(
        method="kmeans",
        k=k,
        partition=partition,
        counts=counts,
        label_purity=label_purity,
        class_purity=class_purity,
        agreement=agreement,
        separation=separation,
        separation_threshold=float(threshold),
        overlapping_labels=overlapping,
        repartitioned=bool(repartitioned),
        layer=layer,
        failure=failure,
        extra={"inertia": float(km.inertia_)},
    )


def kmeans_partition(
    embeddings: Any,
    labels: Any,
    k: int,
    *,
    num_labels: int | None = None,
    layer: str | None = None,
    **options: Any,
) -> tuple[LabelPartition, DiscoveryReport]:
    """Algorithm 1 in one call: ``(partition, report)`` from embeddings and labels.

    Parameters
    ----------
    embeddings : array-like or Tensor [N, D]
    labels : array-like or Tensor [N]
    k : int
        Number of classes.
    num_labels : int, optional
    layer : str, optional
        Recorded in the report.
    **options
        Passed to :class:`KMeansDiscovery` (``min_separation``, ``min_label_share``,
        ``n_init``, ``random_state``, ``silhouette_sample_size``).

    Returns
    -------
    (LabelPartition, DiscoveryReport)

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(3), 20)
    >>> emb = np.array([[0.0], [0.0], [9.0]])[y] + np.linspace(0, 1, 60)[:, None]
    >>> part, rep = kmeans_partition(emb, y, k=2)
    >>> part.classes, rep.repartitioned
    (((0, 1), (2,)), False)
    """
    disc = KMeansDiscovery(k, **options).fit(embeddings, labels, num_labels=num_labels, layer=layer)
    return disc.partition_, disc.report_


def model_kmeans_partition(
    model: nn.Module,
    x: torch.Tensor | Mapping[str, torch.Tensor],
    y: Any,
    layer: str,
    k: int,
    *,
    num_labels: int | None = None,
    batch_size: int = 256,
    **options: Any,
) -> tuple[LabelPartition, DiscoveryReport]:
    """Algorithm 1 from a model: embeddings at ``layer`` (step 1), then k-means (steps 2-12).

    Parameters
    ----------
    model : nn.Module
        The trained network ``F``.
    x : Tensor [N, ...] or dict of tensors
        Inputs.
    y : array-like or Tensor [N]
        Fine labels.
    layer : str
        A name from :func:`list_layers`.
    k : int
        Number of classes.
    num_labels : int, optional
    batch_size : int, default 256
    **options
        Passed to :class:`KMeansDiscovery`.

    Returns
    -------
    (LabelPartition, DiscoveryReport)

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Identity())
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.eye(2)), net[0].bias.zero_()
    >>> y = torch.arange(4).repeat_interleave(10)
    >>> x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [1.0, 0.9]])[y]
    >>> part, rep = model_kmeans_partition(net, x, y, layer="1", k=2)
    >>> part.classes
    ((0, 1), (2, 3))
    """
    emb = extract_embeddings(model, x, layer, batch_size=batch_size)
    return kmeans_partition(emb, y, k, num_labels=num_labels, layer=layer, **options)

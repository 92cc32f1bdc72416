"""What a discovery run saw: the numbers behind a data-driven partition."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hierclass.partition import LabelPartition


@dataclass(frozen=True)
class DiscoveryReport:
    """Evidence for a partition found from data (Algorithm 1 or a confusion matrix).

    Cluster/class order is the partition's class order: cluster ``i`` became class ``i``.

    Attributes
    ----------
    method : str
        ``"kmeans"`` or ``"confusion"``.
    k : int
        Number of classes asked for.
    partition : LabelPartition or None
        The resulting partition (``None`` when discovery failed, see ``failure``).
    counts : ndarray [num_labels, k]
        ``counts[y, i]``: samples of label ``y`` in cluster ``i`` (k-means), or confusion
        mass of label ``y`` towards the labels of class ``i`` (confusion matrix).
    label_purity : ndarray [num_labels]
        Share of each label's samples (mass) that falls in the class the label was given.
    class_purity : ndarray [k]
        Per class: share of the samples of its labels that fall in its cluster (k-means), or
        share of its labels' off-diagonal confusion that stays inside it (confusion matrix).
    agreement : float
        Overall share of samples (mass) whose cluster matches their label's class.
    separation : float
        Silhouette score of the clustering (k-means, in [-1, 1]) or the share of all
        off-diagonal confusion mass that stays within classes (confusion matrix, in [0, 1]).
    separation_threshold : float
        The minimum separation the caller required.
    overlapping_labels : tuple of int
        Labels that step 7 of Algorithm 1 put in more than one cluster (before repartition).
    repartitioned : bool
        Whether step 12 (repartition to disjoint classes) was needed.
    layer : str or None
        Layer whose embeddings were clustered, when known.
    failure : str or None
        Why discovery failed, or ``None``.
    extra : dict
        Method-specific numbers (e.g. cluster sizes, inertia, spectral eigenvalues).

    Examples
    --------
    >>> import numpy as np
    >>> from hierclass.partition import LabelPartition
    >>> rep = DiscoveryReport(method="kmeans", k=2,
    ...     partition=LabelPartition([[0], [1]]), counts=np.array([[9, 1], [0, 10]]),
    ...     label_purity=np.array([0.9, 1.0]), class_purity=np.array([0.9, 1.0]),
    ...     agreement=0.95, separation=0.6, separation_threshold=0.1,
    ...     overlapping_labels=(0,), repartitioned=True)
    >>> print(rep.to_markdown().splitlines()[0])
    | class | labels | size | purity |
    """

    method: str
    k: int
    partition: LabelPartition | None
    counts: np.ndarray
    label_purity: np.ndarray
    class_purity: np.ndarray
    agreement: float
    separation: float
    separation_threshold: float
    overlapping_labels: tuple[int, ...]
    repartitioned: bool
    layer: str | None = None
    failure: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def cluster_sizes(self) -> tuple[int, ...]:
        """Samples (k-means) or confusion mass (confusion matrix) per cluster."""
        sizes = self.counts.sum(axis=0)
        return tuple(int(s) if float(s).is_integer() else float(s) for s in sizes)

    @property
    def ok(self) -> bool:
        """True when a partition was produced."""
        return self.partition is not None and self.failure is None

    def to_markdown(self) -> str:
        """Per-class table followed by the summary numbers, as markdown."""
        lines = ["| class | labels | size | purity |", "|---|---|---|---|"]
        sizes = self.cluster_sizes
        for i in range(self.k):
            labels = list(self.partition.classes[i]) if self.partition is not None else "(failed)"
            size = f"{sizes[i]:.3g}" if isinstance(sizes[i], float) else str(sizes[i])
            lines.append(f"| {i} | {labels} | {size} | {self.class_purity[i]:.3f} |")
        lines.append("")
        where = f", layer `{self.layer}`" if self.layer is not None else ""
        lines.append(f"- method: {self.method}{where}, k = {self.k}")
        lines.append(
            f"- separation: {self.separation:.4f} (threshold {self.separation_threshold:.4f})"
        )
        lines.append(f"- agreement (share of samples in their label's class): {self.agreement:.4f}")
        overlap = list(self.overlapping_labels) if self.overlapping_labels else "none"
        lines.append(f"- labels in several clusters before repartition: {overlap}")
        lines.append(f"- repartitioned: {self.repartitioned}")
        worst = int(np.argmin(self.label_purity))
        lines.append(
            f"- least pure label: {worst} ({self.label_purity[worst]:.3f} of it in its class)"
        )
        if self.failure:
            lines.append(f"- FAILED: {self.failure}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


class DiscoveryError(ValueError):
    """Discovery could not produce a valid partition; ``.report`` holds what it saw.

    Examples
    --------
    >>> issubclass(DiscoveryError, ValueError)
    True
    """

    def __init__(self, message: str, report: DiscoveryReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class ClusterSeparationError(DiscoveryError):
    """The clusters are not separated enough (Algorithm 1, step 4).

    Examples
    --------
    >>> issubclass(ClusterSeparationError, DiscoveryError)
    True
    """

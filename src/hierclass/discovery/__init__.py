"""Invariances from data: label partitions found in a network's embeddings or confusions.

- :func:`extract_embeddings` / :func:`list_layers`: what a model computes at a named layer.
- :class:`KMeansDiscovery`, :func:`kmeans_partition`, :func:`model_kmeans_partition`:
  Algorithm 1 of the paper (§V-A).
- :func:`confusion_partition`: spectral clustering of a confusion matrix (App. D, HD-CNN).
- :func:`propose_candidates` (``candidates``), :class:`LinearProbeRootScorer`
  (``root_probe``), :class:`PartitionSearch` / :func:`search_partitions` (``search``): rank
  candidate partitions by the certified-radius gain of renormalised leaves, subject to a
  learnable root (§VII, App. G).

Examples
--------
>>> import numpy as np
>>> from hierclass.discovery import kmeans_partition
>>> y = np.repeat(np.arange(4), 25)
>>> emb = np.array([[0.0], [0.2], [5.0], [5.2]])[y] + np.linspace(0, 0.1, 100)[:, None]
>>> kmeans_partition(emb, y, k=2)[0].classes
((0, 1), (2, 3))
"""

from hierclass.discovery.candidates import Candidate, propose_candidates
from hierclass.discovery.confusion import (
    confusion_from_predictions,
    confusion_partition,
    model_confusion_matrix,
)
from hierclass.discovery.embeddings import extract_embeddings, list_layers
from hierclass.discovery.kmeans import KMeansDiscovery, kmeans_partition, model_kmeans_partition
from hierclass.discovery.report import ClusterSeparationError, DiscoveryError, DiscoveryReport
from hierclass.discovery.root_probe import LinearProbeRootScorer
from hierclass.discovery.search import PartitionScore, PartitionSearch, search_partitions

__all__ = [
    "Candidate",
    "ClusterSeparationError",
    "DiscoveryError",
    "DiscoveryReport",
    "KMeansDiscovery",
    "LinearProbeRootScorer",
    "PartitionScore",
    "PartitionSearch",
    "confusion_from_predictions",
    "confusion_partition",
    "extract_embeddings",
    "kmeans_partition",
    "list_layers",
    "model_confusion_matrix",
    "model_kmeans_partition",
    "propose_candidates",
    "search_partitions",
]

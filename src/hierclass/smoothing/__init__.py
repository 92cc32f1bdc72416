"""Randomized smoothing: Cohen et al.'s certifier, restricted and hierarchical certificates.

``Smooth`` keeps the reference implementation's API (``predict``, ``certify``, ``ABSTAIN``);
:mod:`~hierclass.smoothing.certificates` recomputes certificates from stored counts,
:mod:`~hierclass.smoothing.hierarchical` samples a :class:`~hierclass.Hierarchy` and
:mod:`~hierclass.smoothing.path` turns a path's votes into its certificate (label and
per-level classes), :mod:`~hierclass.smoothing.runner` is the one data-set driver,
:mod:`~hierclass.smoothing.results` writes resumable TSV records and
:mod:`~hierclass.smoothing.analysis` turns them into curves and tables, and
:mod:`~hierclass.smoothing.hierarchy_metrics` into hierarchical precision/recall/F1, per-level
(certified) accuracy and mistake severity.

The package exports what a notebook calls; the parts behind it stay importable from their
modules (e.g. the Clopper-Pearson bounds in :mod:`~hierclass.smoothing.bounds`, the TSV writer
and the table checks in :mod:`~hierclass.smoothing.results` and
:mod:`~hierclass.smoothing.analysis`).
"""

from __future__ import annotations

from hierclass._lazy import lazy_exports

_EXPORTS = {
    "Smooth": "hierclass.smoothing.smooth",
    "SmoothResult": "hierclass.smoothing.flat_result",
    "Certificate": "hierclass.smoothing.certificates",
    "certify_counts": "hierclass.smoothing.certificates",
    "ABSTAIN": "hierclass.smoothing.certificates",
    "subsets_of_size": "hierclass.smoothing.subsets",
    "certify_dataset": "hierclass.smoothing.runner",
    "certify_radii_dataset": "hierclass.smoothing.sequential_runner",
    "certify_hierarchy": "hierclass.smoothing.runner",
    "HierarchicalSmooth": "hierclass.smoothing.hierarchical",
    "HierarchyCertificate": "hierclass.smoothing.path",
    "LevelCertificate": "hierclass.smoothing.path",
    "NodeVotes": "hierclass.smoothing.path",
    "certify_path": "hierclass.smoothing.path",
    "HierarchyResults": "hierclass.smoothing.hierarchy_results",
    "level_certified_accuracy": "hierclass.smoothing.hierarchy_results",
    "comparison_table": "hierclass.smoothing.analysis",
    "certified_accuracy": "hierclass.smoothing.analysis",
    "average_certified_radius": "hierclass.smoothing.analysis",
    "hierarchical_precision_recall_f1": "hierclass.smoothing.hierarchy_metrics",
    "level_accuracy": "hierclass.smoothing.hierarchy_metrics",
    "path_certified_accuracy": "hierclass.smoothing.hierarchy_metrics",
    "mistake_severity": "hierclass.smoothing.hierarchy_metrics",
    "paths_from_results": "hierclass.smoothing.hierarchy_metrics",
    "hierarchy_report": "hierclass.smoothing.hierarchy_metrics",
    "read_results": "hierclass.smoothing.results",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

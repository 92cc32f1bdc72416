"""Randomized smoothing: Cohen et al.'s certifier, restricted and hierarchical certificates.

``Smooth`` keeps the reference implementation's API (``predict``, ``certify``, ``ABSTAIN``).
The package is layered; each subpackage imports only those above it in this list:

* :mod:`~hierclass.smoothing.certificates`: bounds, certificates from counts, label
  subsets, confidence sequences, a hierarchy path's certificate;
* :mod:`~hierclass.smoothing.engine`: noise, batching, batch-size probe, precision, the
  sampling loop;
* :mod:`~hierclass.smoothing.sequential`: sequential certification at given radii;
* :mod:`~hierclass.smoothing.records`: TSV files and every row builder;
* :mod:`~hierclass.smoothing.analysis`: curves, tables and hierarchy metrics over records;
* :mod:`~hierclass.smoothing.flat`: :class:`~hierclass.Smooth`, its results, ISS;
* :mod:`~hierclass.smoothing.hierarchy`: :class:`HierarchicalSmooth` and its plan;
* :mod:`~hierclass.smoothing.runs`: the data-set drivers and distributed runs.

The package exports what a notebook calls; the parts behind it are imported from their
modules (e.g. the Clopper-Pearson bounds from
:mod:`~hierclass.smoothing.certificates.bounds`, the TSV writer from
:mod:`~hierclass.smoothing.records.tsv`).
"""

from __future__ import annotations

from hierclass._lazy import lazy_exports

#: The subpackages, bottom layer first: a module imports only its own layer and those before
#: it (``tests/test_layers.py`` checks it; the API page lists them in this order).
LAYERS = (
    "certificates", "engine", "sequential", "records", "analysis", "flat", "hierarchy", "runs",
)  # fmt: skip

_EXPORTS = {
    "Smooth": "hierclass.smoothing.flat.smooth",
    "SmoothResult": "hierclass.smoothing.flat.result",
    "Certificate": "hierclass.smoothing.certificates.counts",
    "certify_counts": "hierclass.smoothing.certificates.counts",
    "ABSTAIN": "hierclass.smoothing.certificates.counts",
    "subsets_of_size": "hierclass.smoothing.certificates.subsets",
    "certify_dataset": "hierclass.smoothing.runs.fixed_n",
    "certify_radii_dataset": "hierclass.smoothing.runs.sequential",
    "certify_hierarchy": "hierclass.smoothing.runs.fixed_n",
    "HierarchicalSmooth": "hierclass.smoothing.hierarchy.smooth",
    "HierarchyCertificate": "hierclass.smoothing.certificates.path",
    "LevelCertificate": "hierclass.smoothing.certificates.path",
    "NodeVotes": "hierclass.smoothing.certificates.path",
    "certify_path": "hierclass.smoothing.certificates.path",
    "HierarchyResults": "hierclass.smoothing.analysis.hierarchy_results",
    "level_certified_accuracy": "hierclass.smoothing.analysis.hierarchy_results",
    "comparison_table": "hierclass.smoothing.analysis.tables",
    "certified_accuracy": "hierclass.smoothing.analysis.tables",
    "average_certified_radius": "hierclass.smoothing.analysis.tables",
    "hierarchical_precision_recall_f1": "hierclass.smoothing.analysis.hierarchy_metrics",
    "level_accuracy": "hierclass.smoothing.analysis.hierarchy_metrics",
    "path_certified_accuracy": "hierclass.smoothing.analysis.hierarchy_metrics",
    "mistake_severity": "hierclass.smoothing.analysis.hierarchy_metrics",
    "paths_from_results": "hierclass.smoothing.analysis.hierarchy_metrics",
    "hierarchy_report": "hierclass.smoothing.analysis.hierarchy_metrics",
    "read_results": "hierclass.smoothing.records.tsv",
    "RadiiResult": "hierclass.smoothing.sequential.sessions",
    "ISSResult": "hierclass.smoothing.flat.iss",
    "PathRadiiResult": "hierclass.smoothing.hierarchy.sequential",
    "Prepared": "hierclass.smoothing.engine.protocol",
    "Smoothed": "hierclass.smoothing.engine.protocol",
}

__all__ = sorted([*_EXPORTS, "LAYERS"])

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

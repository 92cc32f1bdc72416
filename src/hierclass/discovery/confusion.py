"""Equivalence classes from a confusion matrix (App. D; HD-CNN's spectral clustering).

Labels a (robustly) trained model confuses with each other belong together: the paper's
CIFAR-10 split into living and non-living objects comes from reading such a matrix.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from sklearn.cluster import SpectralClustering

from hierclass._utils.checks import positive_int
from hierclass._utils.modules import model_device
from hierclass.batch import batch_size as batch_size_of
from hierclass.batch import slice_batch
from hierclass.discovery._validate import as_numpy, check_k, check_labels
from hierclass.discovery.report import DiscoveryError, DiscoveryReport
from hierclass.partition import LabelPartition


def confusion_from_predictions(y_true: Any, y_pred: Any, num_labels: int) -> np.ndarray:
    """Confusion matrix ``C[true, predicted]`` (counts) from two label vectors.

    Parameters
    ----------
    y_true : array-like or Tensor [N]
        Integer labels in ``0..num_labels-1``.
    y_pred : array-like or Tensor [N]
        Integer labels in ``0..num_labels-1``.
    num_labels : int

    Returns
    -------
    ndarray [num_labels, num_labels] of int64

    Examples
    --------
    >>> confusion_from_predictions([0, 0, 1, 2], [0, 1, 1, 1], num_labels=3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 1, 0]])
    """
    t, num_labels = check_labels(y_true, np.shape(as_numpy(y_true, "y_true"))[0], num_labels)
    p, _ = check_labels(y_pred, t.shape[0], num_labels)
    flat = np.bincount(t * num_labels + p, minlength=num_labels * num_labels)
    return flat.reshape(num_labels, num_labels).astype(np.int64)


def model_confusion_matrix(
    model: Callable[[Any], torch.Tensor],
    x: torch.Tensor | Mapping[str, torch.Tensor],
    y: Any,
    num_labels: int,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Confusion matrix of any callable returning logits ``[B, num_labels]`` on ``(x, y)``.

    Parameters
    ----------
    model : callable
        ``model(x_batch) -> logits [B, num_labels]`` (a model, a Hierarchy's forward, ...).
    x : Tensor [N, ...] or dict of tensors
    y : array-like or Tensor [N]
    num_labels : int
    batch_size : int, default 256
    device : torch.device or str, optional
        Where batches are sent; defaults to the device of the model's first parameter (CPU
        for plain callables).

    Returns
    -------
    ndarray [num_labels, num_labels] of int64, rows = true labels.

    Examples
    --------
    >>> import torch
    >>> model = lambda x: torch.stack([x[:, 0], 1 - x[:, 0]], dim=1)
    >>> model_confusion_matrix(model, torch.tensor([[0.9], [0.2], [0.7]]), [0, 1, 1], 2)
    array([[1, 0],
           [1, 1]])
    """
    batch_size = positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else model_device(model)
    n = batch_size_of(x)
    preds = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            logits = model(slice_batch(x, start, start + batch_size, device))
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                raise TypeError("model must return a 2-D logits tensor [B, num_labels]")
            if logits.shape[1] != num_labels:
                raise ValueError(
                    f"model returned {logits.shape[1]} scores per input, expected {num_labels}"
                )
            preds.append(logits.argmax(dim=1).cpu())
    return confusion_from_predictions(y, torch.cat(preds).numpy(), num_labels)


def confusion_affinity(confusion: Any, *, floor: float = 1e-6) -> np.ndarray:
    """Symmetric label-similarity matrix from a confusion matrix.

    Rows are normalised to confusion *rates* (so frequent labels do not dominate), the
    matrix is symmetrised, ``A = (R + R^T) / 2``, and the diagonal (correct predictions,
    which say nothing about similarity) is zeroed. ``floor * max(A)`` is added off the
    diagonal so that labels a model never confuses still form one connected graph; set
    ``floor=0`` to disable.

    Parameters
    ----------
    confusion : array-like [L, L]
        Non-negative counts or rates, rows = true labels.
    floor : float, default 1e-6
        Relative floor added to every off-diagonal affinity.

    Returns
    -------
    ndarray [L, L]

    Examples
    --------
    >>> confusion_affinity([[8, 2], [0, 10]], floor=0).round(2)
    array([[0. , 0.1],
           [0.1, 0. ]])
    """
    c = check_confusion(confusion)
    rates = c / c.sum(axis=1, keepdims=True)
    a = (rates + rates.T) / 2.0
    np.fill_diagonal(a, 0.0)
    if not float(floor) >= 0.0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    peak = a.max()
    if peak <= 0.0:
        raise ValueError(
            "the confusion matrix has no off-diagonal mass: the model never confuses two "
            "labels, so it carries no class structure"
        )
    a = a + float(floor) * peak * (1.0 - np.eye(a.shape[0]))
    return a


def check_confusion(confusion: Any) -> np.ndarray:
    """Validate a confusion matrix: square, finite, non-negative, every row non-empty.

    Examples
    --------
    >>> check_confusion([[1, 0], [2, 3]]).shape
    (2, 2)
    """
    c = as_numpy(confusion, "confusion")
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion matrix must be square [L, L], got shape {tuple(c.shape)}")
    if c.dtype.kind not in "fiu":
        raise TypeError(f"confusion matrix must be numeric, got dtype {c.dtype}")
    c = c.astype(np.float64)
    if not np.isfinite(c).all():
        raise ValueError("confusion matrix contains NaN or inf")
    if (c < 0).any():
        raise ValueError("confusion matrix has negative entries; expected counts or rates")
    empty = np.flatnonzero(c.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"labels {empty.tolist()} have no samples (all-zero rows)")
    return c


def confusion_partition(
    confusion: Any,
    k: int,
    *,
    min_separation: float = 0.0,
    floor: float = 1e-6,
    random_state: int = 0,
) -> tuple[LabelPartition, DiscoveryReport]:
    """Spectral clustering of the symmetrised confusion matrix into ``k`` label classes.

    Parameters
    ----------
    confusion : array-like [L, L]
        Confusion matrix of a (robustly) trained model, rows = true labels.
    k : int
        Number of classes (2 <= k <= L).
    min_separation : float, default 0.0
        Minimum share of the off-diagonal confusion (rates, symmetrised) that must stay
        inside classes; below it :class:`DiscoveryError` is raised. The report's
        ``extra["chance_within_share"]`` is the share a structure-free matrix would give.
    floor : float, default 1e-6
        See :func:`confusion_affinity`.
    random_state : int, default 0
        Seed for the spectral embedding's label assignment.

    Returns
    -------
    (LabelPartition, DiscoveryReport)
        Classes ordered by their smallest label.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.full((4, 4), 1.0) + np.kron(np.eye(2), np.full((2, 2), 20.0)) + 50 * np.eye(4)
    >>> part, rep = confusion_partition(c, k=2)
    >>> part.classes
    ((0, 1), (2, 3))
    >>> rep.separation > rep.extra["chance_within_share"]
    True
    """
    c = check_confusion(confusion)
    num_labels = c.shape[0]
    k = check_k(k, num_labels)
    affinity = confusion_affinity(c, floor=floor)
    with warnings.catch_warnings():
        # sklearn warns about graphs that are not fully connected; the floor handles that.
        warnings.simplefilter("ignore", UserWarning)
        # with k close to L, sklearn falls back to a dense eigensolver and says so; harmless.
        warnings.filterwarnings("ignore", message="k >= N", category=RuntimeWarning)
        model = SpectralClustering(
            n_clusters=k,
            affinity="precomputed",
            assign_labels="cluster_qr",
            random_state=random_state,
        )
        raw = model.fit_predict(affinity)
    groups = [np.flatnonzero(raw == i).tolist() for i in range(k)]
    if any(not g for g in groups):
        raise DiscoveryError(
            f"spectral clustering produced {sum(bool(g) for g in groups)} non-empty classes, "
            f"expected {k}"
        )
    groups.sort(key=lambda g: g[0])
    partition = LabelPartition(groups, num_labels=num_labels)
    owner = np.asarray(partition.label_to_class)
    # counts[y, c]: symmetrised confusion rate of label y towards the labels of class c.
    off = affinity.copy() if floor == 0 else confusion_affinity(c, floor=0.0)
    counts = np.stack([off[:, list(g)].sum(axis=1) for g in partition.classes], axis=1)
    per_label = counts.sum(axis=1)
    label_purity = counts[np.arange(num_labels), owner] / np.maximum(per_label, 1e-300)
    within = np.array([counts[list(g), i].sum() for i, g in enumerate(partition.classes)])
    class_total = np.array([counts[list(g)].sum() for g in partition.classes])
    class_purity = within / np.maximum(class_total, 1e-300)
    separation = float(within.sum() / counts.sum())
    sizes = np.array(partition.sizes, dtype=float)
    chance = float((sizes * (sizes - 1)).sum() / (num_labels * (num_labels - 1)))
    report = DiscoveryReport(
        method="confusion",
        k=k,
        partition=partition,
        counts=counts,
        label_purity=label_purity,
        class_purity=class_purity,
        agreement=separation,
        separation=separation,
        separation_threshold=float(min_separation),
        overlapping_labels=(),
        repartitioned=False,
        extra={"chance_within_share": chance, "affinity": affinity},
    )
    if separation < min_separation:
        message = (
            f"the classes keep {separation:.4f} of the confusion inside them, below "
            f"min_separation={min_separation} (chance level {chance:.4f})"
        )
        raise DiscoveryError(message, replace(report, failure=message))
    return partition, report

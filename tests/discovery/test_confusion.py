"""Confusion-matrix partitions: planted block structure, helpers, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from hierclass.discovery import (
    DiscoveryError,
    confusion_from_predictions,
    confusion_partition,
    model_confusion_matrix,
)
from hierclass.discovery.confusion import confusion_affinity


def planted_confusion(classes, *, per_label=500, acc=0.7, within=0.8, seed=0):
    """Sampled confusion counts: a label is right with prob ``acc``; its errors go to its own
    class with prob ``within`` (uniformly), elsewhere otherwise."""
    rng = np.random.default_rng(seed)
    num_labels = sum(len(c) for c in classes)
    owner = np.empty(num_labels, dtype=int)
    for i, group in enumerate(classes):
        owner[list(group)] = i
    c = np.zeros((num_labels, num_labels), dtype=np.int64)
    for y in range(num_labels):
        same = [v for v in range(num_labels) if owner[v] == owner[y] and v != y]
        other = [v for v in range(num_labels) if owner[v] != owner[y]]
        probs = np.zeros(num_labels)
        probs[y] = acc
        if same:
            probs[same] = (1 - acc) * within / len(same)
            probs[other] = (1 - acc) * (1 - within) / len(other)
        else:
            probs[other] = (1 - acc) / len(other)
        c[y] = rng.multinomial(per_label, probs)
    return c


LIVING = ((0, 1, 8, 9), (2, 3, 4, 5, 6, 7))  # CIFAR-10: vehicles vs animals


def test_recovers_cifar_like_living_split():
    c = planted_confusion(LIVING)
    part, rep = confusion_partition(c, k=2)
    assert part.classes == LIVING
    # within-class share of confusion ~ 0.8 planted, far above the structure-free share
    assert rep.separation > 0.7 > rep.extra["chance_within_share"]
    assert rep.method == "confusion" and rep.counts.shape == (10, 2)
    assert np.all(rep.label_purity > 0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_planted_blocks_with_shuffled_labels(seed):
    perm = np.random.default_rng(100 + seed).permutation(12)
    classes = (perm[:3], perm[3:7], perm[7:])
    c = planted_confusion(classes, per_label=300, within=0.75, seed=seed)
    part, _ = confusion_partition(c, k=3, random_state=seed)
    assert sorted(part.classes) == sorted(tuple(sorted(g.tolist())) for g in classes)


def test_structure_free_matrix_fails_a_separation_threshold():
    rng = np.random.default_rng(0)
    c = rng.multinomial(1000, np.full(8, 1 / 8), size=8)
    with pytest.raises(DiscoveryError, match="below min_separation") as err:
        confusion_partition(c, k=2, min_separation=0.6)
    assert err.value.report.separation < 0.6


def test_affinity_is_symmetric_rate_based_with_zero_diagonal():
    c = np.array([[90, 10, 0], [0, 5, 5], [1, 1, 8]])
    a = confusion_affinity(c, floor=0.0)
    np.testing.assert_allclose(a, a.T)
    np.testing.assert_allclose(np.diag(a), 0.0)
    np.testing.assert_allclose(a[0, 1], (0.1 + 0.0) / 2)
    np.testing.assert_allclose(a[1, 2], (0.5 + 0.1) / 2)


def test_confusion_from_predictions_matches_sklearn():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    np.testing.assert_array_equal(
        confusion_from_predictions(t, p, 5), confusion_matrix(t, p, labels=range(5))
    )


def test_model_confusion_matrix_uses_argmax_of_logits():
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    x = torch.tensor([[3.0, 0, 0], [0, 2.0, 0], [0, 0, 1.0], [5.0, 0, 0]])
    y = torch.tensor([0, 1, 1, 2])
    c = model_confusion_matrix(lambda b: b @ w, x, y, 3, batch_size=3)
    np.testing.assert_array_equal(c, [[1, 0, 0], [0, 1, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="2 scores per input, expected 3"):
        model_confusion_matrix(lambda b: b[:, :2], x, y, 3)


@pytest.mark.parametrize(
    ("c", "k", "error", "match"),
    [
        (np.ones((3, 4)), 2, ValueError, "square"),
        (np.ones(3), 2, ValueError, "square"),
        (-np.ones((3, 3)), 2, ValueError, "negative"),
        (np.full((3, 3), np.nan), 2, ValueError, "NaN"),
        (np.array([[1, 1, 0], [0, 0, 0], [1, 0, 1]]), 2, ValueError, r"labels \[1\] have no"),
        (np.eye(3) * 10, 2, ValueError, "never confuses"),
        (np.ones((3, 3)), 1, ValueError, "between 2 and the number of labels"),
        (np.ones((3, 3)), 4, ValueError, r"number of labels \(3\)"),
    ],
)
def test_bad_confusion_inputs(c, k, error, match):
    with pytest.raises(error, match=match):
        confusion_partition(c, k=k)

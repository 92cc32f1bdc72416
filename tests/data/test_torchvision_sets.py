"""The full-data-set loaders, exercised on tiny files written in the real on-disk formats."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hierclass.data import load_cifar10, load_gtsrb, load_mnist


@pytest.mark.parametrize("train", [True, False])
def test_mnist_reads_idx_files(mnist_root, train: bool) -> None:
    root, arrays = mnist_root
    x, y = load_mnist(root, train=train)
    key = "train" if train else "test"
    expected = torch.from_numpy(arrays[f"{key}_x"]).float().unsqueeze(1) / 255.0
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (len(arrays[f"{key}_y"]), 1, 28, 28)
    torch.testing.assert_close(x, expected, rtol=0, atol=0)
    assert y.tolist() == arrays[f"{key}_y"].tolist()


def test_mnist_missing_files_say_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, train=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in message
    assert "download=True" in message
    assert not (tmp_path / "MNIST").exists()  # nothing was created or downloaded


@pytest.mark.parametrize("train", [True, False])
def test_cifar10_reads_python_batches(cifar_root, train: bool) -> None:
    root, arrays = cifar_root
    x, y = load_cifar10(root, train=train, verify=False)
    key = "train" if train else "test"
    data = arrays[f"{key}_x"]
    assert x.shape == (len(data), 3, 32, 32) and x.dtype == torch.float32
    # Channel-major rows: 1024 red values, then green, then blue, each row by row.
    i, c, h, w = len(data) - 1, 2, 5, 17
    assert x[i, c, h, w].item() == pytest.approx(data[i, c * 1024 + h * 32 + w] / 255.0)
    torch.testing.assert_close(x.reshape(len(data), -1) * 255.0, torch.from_numpy(data).float())
    assert y.tolist() == arrays[f"{key}_y"].tolist()


def test_cifar10_verify_rejects_files_that_are_not_the_release(cifar_root) -> None:
    root, _ = cifar_root
    with pytest.raises(ValueError, match="md5 of the official CIFAR-10 release.*verify=False"):
        load_cifar10(root, train=False)


def test_cifar10_reader_refuses_code_in_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": Exploit(), "labels": [0]}, fh, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays are allowed"):
        load_cifar10(tmp_path, train=False, verify=False)
    assert not marker.exists()


def test_cifar10_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data_batch_5[\s\S]*download=True"):
        load_cifar10(tmp_path, train=True)


def test_gtsrb_train_labels_come_from_folder_names(gtsrb_root) -> None:
    root, written = gtsrb_root
    train_set = written["train"]
    x, y = load_gtsrb(root, "train", image_size=16, verbose=False)
    assert x.shape == (len(train_set), 3, 16, 16) and x.dtype == torch.float32
    assert y.tolist() == [label for label, _, _ in train_set]
    # Uniform images stay uniform after resizing: each pixel is the colour / 255.
    for i, (_, _, colour) in enumerate(train_set):
        expected = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255.0
        torch.testing.assert_close(x[i], expected.expand(3, 16, 16), rtol=0, atol=1e-6)


def test_gtsrb_test_split_reads_annotation_csv(gtsrb_root) -> None:
    root, written = gtsrb_root
    test_set = written["test"]
    x, y = load_gtsrb(root, "test", image_size=8, verbose=False)
    assert x.shape == (2, 3, 8, 8)
    assert y.tolist() == [label for label, _, _ in test_set]
    assert x[1].min().item() == 1.0  # the white "Yield" stand-in


def test_gtsrb_errors(tmp_path: Path, gtsrb_root) -> None:
    root, _ = gtsrb_root
    with pytest.raises(FileNotFoundError, match=r"GTSRB train split not found[\s\S]*Training"):
        load_gtsrb(tmp_path / "empty", "train")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_gtsrb(root, "val")
    with pytest.raises(ValueError, match="image_size must be an int >= 1"):
        load_gtsrb(root, "train", image_size=0)
    with pytest.raises(TypeError, match="root must be a str or pathlib.Path"):
        load_gtsrb(None, "train")  # type: ignore[arg-type]


def test_uint8_range_maps_onto_unit_interval(mnist_root) -> None:
    root, _ = mnist_root
    x, _ = load_mnist(root)
    assert 0.0 <= x.min().item() and x.max().item() <= 1.0
    assert np.allclose((x * 255).numpy(), np.round((x * 255).numpy()), atol=1e-4)

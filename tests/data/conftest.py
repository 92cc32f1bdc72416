"""Writers of tiny data sets in the real on-disk formats (MNIST idx, CIFAR pickles, GTSRB ppm).

Files are generated into ``tmp_path`` by each test, so nothing large is stored in the
repository and nothing is downloaded.
"""

from __future__ import annotations

import csv
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3 (magic 0x00000803): big-endian int32 count, rows, cols, then uint8 pixels."""
    n, rows, cols = images.shape
    path.write_bytes(
        struct.pack(">iiii", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()
    )


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1 (magic 0x00000801): big-endian int32 count, then uint8 labels."""
    path.write_bytes(
        struct.pack(">ii", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()
    )


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train_x": rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, size=7).astype(np.uint8),
        "test_x": rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8),
        "test_y": np.array([9, 0, 4], dtype=np.uint8),
    }
    write_idx_images(raw / "train-images-idx3-ubyte", arrays["train_x"])
    write_idx_labels(raw / "train-labels-idx1-ubyte", arrays["train_y"])
    write_idx_images(raw / "t10k-images-idx3-ubyte", arrays["test_x"])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", arrays["test_y"])
    return tmp_path, arrays


def _cifar_batch(path: Path, data: np.ndarray, labels: list[int], name: str) -> None:
    entry = {
        "batch_label": name,
        "labels": labels,
        "data": data,
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)  # the release is a Python-2 era protocol-2 pickle


@pytest.fixture
def cifar_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train_x, train_y = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=2)]
        _cifar_batch(folder / f"data_batch_{i}", data, labels, f"training batch {i} of 5")
        train_x.append(data)
        train_y += labels
    test_x = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    _cifar_batch(folder / "test_batch", test_x, [3, 9, 0], "testing batch 1 of 1")
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(
            {
                "label_names": [
                    "airplane",
                    "automobile",
                    "bird",
                    "cat",
                    "deer",
                    "dog",
                    "frog",
                    "horse",
                    "ship",
                    "truck",
                ],
                "num_cases_per_batch": 10000,
                "num_vis": 3072,
            },
            fh,
            protocol=2,
        )
    arrays = {
        "train_x": np.concatenate(train_x),
        "train_y": np.array(train_y),
        "test_x": test_x,
        "test_y": np.array([3, 9, 0]),
    }
    return tmp_path, arrays


# (class id, (width, height), RGB colour) of each training image; sizes vary as in GTSRB.
GTSRB_TRAIN = [
    (0, (30, 31), (255, 0, 0)),
    (0, (45, 40), (250, 10, 0)),
    (14, (52, 52), (200, 0, 20)),
    (40, (29, 33), (0, 0, 255)),
]
GTSRB_TEST = [(12, (40, 42), (255, 255, 0)), (13, (35, 35), (255, 255, 255))]


def _ppm(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    Image.new("RGB", size, colour).save(path, format="PPM")


@pytest.fixture
def gtsrb_root(tmp_path: Path) -> tuple[Path, dict[str, list]]:
    base = tmp_path / "gtsrb"
    train = base / "GTSRB" / "Training"
    header = ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"]
    for k, (label, size, colour) in enumerate(GTSRB_TRAIN):
        folder = train / f"{label:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"00000_{k:05d}.ppm"
        _ppm(folder / name, size, colour)
        # Per-class annotation file of the real release (not needed for reading labels).
        with open(folder / f"GT-{label:05d}.csv", "a", newline="") as fh:
            writer = csv.writer(fh, delimiter=";")
            if fh.tell() == 0:
                writer.writerow(header)
            writer.writerow([name, *size, 5, 5, size[0] - 5, size[1] - 5, label])
    images = base / "GTSRB" / "Final_Test" / "Images"
    images.mkdir(parents=True)
    with open(base / "GT-final_test.csv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(header)
        for k, (label, size, colour) in enumerate(GTSRB_TEST):
            name = f"{k:05d}.ppm"
            _ppm(images / name, size, colour)
            writer.writerow([name, *size, 5, 5, size[0] - 5, size[1] - 5, label])
    return tmp_path, {"train": GTSRB_TRAIN, "test": GTSRB_TEST}


def write_cifar100_split(path: Path, data: np.ndarray, fine: list[int], coarse: list[int]) -> None:
    """A CIFAR-100 split pickle as a Python 3 re-export writes it: bytes keys, protocol 2."""
    entry = {
        b"filenames": [f"img_{i}.png".encode() for i in range(len(fine))],
        b"batch_label": b"training batch 1 of 1",
        b"fine_labels": fine,
        b"coarse_labels": coarse,
        b"data": data,
    }
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)


CIFAR100_FINE_NAMES = [f"fine_{k:02d}" for k in range(100)]
CIFAR100_COARSE_NAMES = [f"coarse_{k:02d}" for k in range(20)]


@pytest.fixture
def cifar100_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    arrays = {}
    for split, n in (("train", 5), ("test", 3)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        fine[0] = 99  # the top of the range is a label
        coarse = [f // 5 for f in fine]
        write_cifar100_split(folder / split, data, fine, coarse)
        arrays[f"{split}_x"] = data
        arrays[f"{split}_fine"] = np.array(fine)
        arrays[f"{split}_coarse"] = np.array(coarse)
    with open(folder / "meta", "wb") as fh:
        pickle.dump(
            {
                b"fine_label_names": [n.encode() for n in CIFAR100_FINE_NAMES],
                b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE_NAMES],
            },
            fh,
            protocol=2,
        )
    return tmp_path, arrays

"""Full MNIST, CIFAR-10 and GTSRB from a user-given root directory, as tensors.

Nothing is downloaded unless ``download=True`` is passed (downloads go through torchvision).
Every loader returns ``(x, y)``: ``x`` float32 in [0, 1] with shape ``[N, C, H, W]`` and ``y``
int64 ``[N]``, ready for :func:`hierclass.training.fit`. The whole split is held in memory
(CIFAR-10 train is about 600 MB as float32).

On-disk layouts (the ones torchvision's downloads produce):

* MNIST: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (read by
  ``torchvision.datasets.MNIST``).
* CIFAR-10: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the "python version"
  pickles). These are read by a small reader of that format that only admits the numpy
  array types the files contain, so a tampered file cannot run code. With ``verify=True``
  (default) each file's md5 must match the official release -- the same check torchvision
  makes; pass ``verify=False`` to read files in that format that are not the official ones
  (e.g. a re-export or a test fixture).
* GTSRB: ``root/gtsrb/GTSRB/Training/<5-digit class id>/*.ppm`` for train,
  ``root/gtsrb/GTSRB/Final_Test/Images/*.ppm`` with ``root/gtsrb/GT-final_test.csv``
  (``;``-separated, columns ``Filename`` and ``ClassId``) for test. Train labels are read
  from the folder names. Whole images are resized (bilinear) to ``image_size``; the ROI
  columns of the annotation files are not used (as in torchvision).
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import torch

from hierclass._utils.checks import positive_int

from ._common import check_root, progress

_MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]

CIFAR10_CLASSES = (
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
)


def _missing(what: str, paths: list[Path], how: str) -> FileNotFoundError:
    listed = "\n  ".join(str(p) for p in paths)
    return FileNotFoundError(f"{what} not found; expected these files:\n  {listed}\n{how}")


def load_mnist(
    root: str | Path, train: bool = True, *, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the full MNIST train (60,000) or test (10,000) split.

    Parameters
    ----------
    root : str or Path
        Directory that contains ``MNIST/raw/``.
    train : bool, default True
        Train split if True, test split otherwise.
    download : bool, default False
        Download into ``root`` through torchvision if the files are missing.

    Returns
    -------
    x : torch.Tensor
        float32 ``[N, 1, 28, 28]`` in [0, 1] (pixel / 255).
    y : torch.Tensor
        int64 ``[N]`` digits.

    Raises
    ------
    FileNotFoundError
        If the raw files are missing and ``download`` is False.

    Examples
    --------
    >>> load_mnist("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: MNIST train split not found; expected these files: ...
    """
    from torchvision.datasets import MNIST

    root = check_root(root)
    raw = root / "MNIST" / "raw"
    paths = [raw / name for name in _MNIST_FILES[bool(train)]]
    if not download and not all(p.is_file() for p in paths):
        raise _missing(
            f"MNIST {'train' if train else 'test'} split",
            paths,
            "Pass download=True to fetch them with torchvision, or copy the unpacked "
            "idx-ubyte files from http://yann.lecun.com/exdb/mnist/ into that folder.",
        )
    dataset = MNIST(str(root), train=bool(train), download=download)
    x = dataset.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return x, dataset.targets.to(torch.int64)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: only numpy array reconstruction is allowed."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol-2 pickles store bytes through it
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"CIFAR-10 batch refers to {module}.{name}; only numpy arrays are allowed"
            )
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        entry = _ArrayOnlyUnpickler(fh, encoding="latin1").load()
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise ValueError(f"{path} is not a CIFAR-10 python batch (no 'data'/'labels' entries)")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: expected 'data' uint8 of shape [N, 3072], got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: expected {data.shape[0]} labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(
    root: str | Path, train: bool = True, *, download: bool = False, verify: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load CIFAR-10's train (50,000) or test (10,000) split from the python-version batches.

    Parameters
    ----------
    root : str or Path
        Directory that contains ``cifar-10-batches-py/``.
    train : bool, default True
        Train split (``data_batch_1..5``) if True, ``test_batch`` otherwise.
    download : bool, default False
        Download into ``root`` through torchvision if the files are missing.
    verify : bool, default True
        Check each file's md5 against the official release; ``ValueError`` on mismatch.

    Returns
    -------
    x : torch.Tensor
        float32 ``[N, 3, 32, 32]`` in [0, 1] (pixel / 255).
    y : torch.Tensor
        int64 ``[N]``; names in :data:`CIFAR10_CLASSES`.

    Examples
    --------
    >>> load_cifar10("/nonexistent", train=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: CIFAR-10 test split not found; expected these files: ...
    """
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    root = check_root(root)
    folder = root / _CIFAR_FOLDER
    names = _CIFAR_TRAIN if train else _CIFAR_TEST
    paths = [folder / n for n in names]
    if not all(p.is_file() for p in paths):
        if not download:
            raise _missing(
                f"CIFAR-10 {'train' if train else 'test'} split",
                paths,
                "Pass download=True to fetch them with torchvision, or unpack "
                "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
                f"into {root}.",
            )
        CIFAR10(str(root), train=bool(train), download=True)
    if verify:
        official = dict(CIFAR10.train_list + CIFAR10.test_list)
        for p in paths:
            if not check_integrity(str(p), official[p.name]):
                raise ValueError(
                    f"{p} does not match the md5 of the official CIFAR-10 release "
                    f"({official[p.name]}); the file is corrupted or is not the official one. "
                    "Pass verify=False to read a file in this format anyway."
                )
    parts = [_read_cifar_batch(p) for p in paths]
    x = torch.from_numpy(np.concatenate([d for d, _ in parts])).to(torch.float32).div_(255.0)
    y = torch.from_numpy(np.concatenate([lab for _, lab in parts]))
    return x, y


def _gtsrb_samples(base: Path, split: str) -> list[tuple[Path, int]]:
    if split == "train":
        folder = base / "GTSRB" / "Training"
        if not folder.is_dir():
            raise _missing_gtsrb(split, folder)
        samples = []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not class_dir.name.isdigit():
                raise ValueError(
                    f"unexpected folder {class_dir} in GTSRB training data; expected "
                    "5-digit class ids such as 00014"
                )
            label = int(class_dir.name)
            samples += [(f, label) for f in sorted(class_dir.glob("*.ppm"))]
        return samples
    folder = base / "GTSRB" / "Final_Test" / "Images"
    annotations = base / "GT-final_test.csv"
    if not folder.is_dir() or not annotations.is_file():
        raise _missing_gtsrb(split, folder, annotations)
    with open(annotations, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";", skipinitialspace=True))
    if rows and not {"Filename", "ClassId"} <= set(rows[0]):
        raise ValueError(f"{annotations} needs 'Filename' and 'ClassId' columns")
    return [(folder / r["Filename"], int(r["ClassId"])) for r in rows]


def _missing_gtsrb(split: str, *paths: Path) -> FileNotFoundError:
    return _missing(
        f"GTSRB {split} split",
        list(paths),
        "Pass download=True to fetch it with torchvision, or unpack GTSRB-Training_fixed.zip "
        "(train) / GTSRB_Final_Test_Images.zip and GTSRB_Final_Test_GT.zip (test) from "
        "https://benchmark.ini.rub.de/ into root/gtsrb/.",
    )


def load_gtsrb(
    root: str | Path,
    split: str = "train",
    image_size: int = 32,
    *,
    download: bool = False,
    verbose: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load GTSRB's train (39,209) or test (12,630) images, resized to a square size.

    Parameters
    ----------
    root : str or Path
        Directory that contains ``gtsrb/`` (torchvision's layout).
    split : {"train", "test"}
        Which split.
    image_size : int, default 32
        Side length after bilinear resizing of the whole image.
    download : bool, default False
        Download into ``root`` through torchvision if the files are missing.
    verbose : bool or None, default None
        Progress bar while decoding images: always, never, or (``None``) on a terminal.

    Returns
    -------
    x : torch.Tensor
        float32 ``[N, 3, image_size, image_size]`` in [0, 1].
    y : torch.Tensor
        int64 ``[N]`` class ids 0..42; shapes in :mod:`hierclass.data.gtsrb`.

    Examples
    --------
    >>> load_gtsrb("/nonexistent", "test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: GTSRB test split not found; expected these files: ...
    """
    from PIL import Image

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_size = positive_int(image_size, "image_size")
    root = check_root(root)
    base = root / "gtsrb"
    try:
        samples = _gtsrb_samples(base, split)
    except FileNotFoundError:
        if not download:
            raise
        from torchvision.datasets import GTSRB

        GTSRB(str(root), split=split, download=True)
        samples = _gtsrb_samples(base, split)
    if not samples:
        raise FileNotFoundError(f"no GTSRB {split} images (*.ppm) found under {base}")
    x = torch.empty(len(samples), 3, image_size, image_size, dtype=torch.float32)
    y = torch.empty(len(samples), dtype=torch.int64)
    for i, (path, label) in enumerate(progress(samples, "GTSRB", verbose)):
        if not 0 <= label <= 42:
            raise ValueError(f"{path}: GTSRB class id must be in 0..42, got {label}")
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        x[i] = torch.from_numpy(np.asarray(rgb, dtype=np.float32)).permute(2, 0, 1)
        y[i] = label
    return x.div_(255.0), y

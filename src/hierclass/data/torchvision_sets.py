"""Full MNIST, CIFAR-10, CIFAR-100 and GTSRB from a user-given root directory, as tensors.

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
* CIFAR-100: ``root/cifar-100-python/{train,test}`` (one pickle per split, with
  ``fine_labels`` 0..99 and ``coarse_labels`` 0..19) and ``root/cifar-100-python/meta``
  (the class names). Read by the same safe reader; ``verify`` as for CIFAR-10, with the md5s
  torchvision's ``CIFAR100`` lists.
* GTSRB: ``root/gtsrb/GTSRB/Training/<5-digit class id>/*.ppm`` for train,
  ``root/gtsrb/GTSRB/Final_Test/Images/*.ppm`` with ``root/gtsrb/GT-final_test.csv``
  (``;``-separated, columns ``Filename`` and ``ClassId``) for test. Train labels are read
  from the folder names. Whole images are resized (bilinear) to ``image_size``; the ROI
  columns of the annotation files are not used (as in torchvision).

The ``read_*`` functions return what the files hold (uint8 arrays, file lists) without the
float conversion, for :func:`hierclass.data.open_dataset`, which reads inputs lazily.
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
_CIFAR100_FOLDER = "cifar-100-python"
# label key in the CIFAR-100 pickles and number of labels, per labelling
_CIFAR100_LABELS = {"fine": ("fine_labels", 100), "coarse": ("coarse_labels", 20)}

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
    images, labels = read_mnist_arrays(root, train, download=download)
    x = torch.from_numpy(images).unsqueeze(1).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(labels)


def read_mnist_arrays(
    root: str | Path, train: bool = True, *, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's idx files as they are: uint8 images ``[N, 28, 28]`` and int64 labels ``[N]``.

    Same files, checks and ``download`` as :func:`load_mnist` (which divides by 255).

    Examples
    --------
    >>> read_mnist_arrays("/nonexistent", train=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: MNIST test split not found; expected these files: ...
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
    return dataset.data.numpy(), dataset.targets.to(torch.int64).numpy()


class _RefusedPickleError(ValueError, pickle.UnpicklingError):
    """A CIFAR pickle that asks to build something other than numpy arrays (never built).

    A ``ValueError`` like every other unreadable file, and a ``pickle.UnpicklingError`` for
    callers that caught that before.
    """


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
            raise _RefusedPickleError(f"refers to {module}.{name}; only numpy arrays are allowed")
        return super().find_class(module, name)


def _unpickle_dict(path: Path, what: str) -> dict[str, object]:
    """The dict a CIFAR pickle holds, keys as str (Python 3 re-exports write bytes keys)."""
    try:
        with open(path, "rb") as fh:
            entry = _ArrayOnlyUnpickler(fh, encoding="latin1").load()
    except _RefusedPickleError as err:
        raise _RefusedPickleError(f"{path}: the {what} file {err}") from None
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways
        raise ValueError(
            f"{path} is not a readable {what} python pickle ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: expected a {what} pickle of a dict, got {type(entry).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _read_cifar_batch(
    path: Path, label_key: str = "labels", num_labels: int = 10, what: str = "CIFAR-10"
) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 [N, 3, 32, 32], int64 [N])`` of one CIFAR python batch, checked."""
    entry = _unpickle_dict(path, what)
    if "data" not in entry or label_key not in entry:
        raise ValueError(
            f"{path} is not a {what} python batch (no 'data'/{label_key!r} entries; "
            f"found {sorted(map(str, entry))})"
        )
    data = np.asarray(entry["data"])
    try:
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: {label_key!r} must be a list of integer labels") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: expected 'data' uint8 of shape [N, 3072], got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"{path}: expected {data.shape[0]} {label_key!r} (one per row of 'data'), "
            f"got shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        bad = labels[(labels < 0) | (labels >= num_labels)][0]
        raise ValueError(f"{path}: expected {label_key!r} in 0..{num_labels - 1}, found {int(bad)}")
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_names(path: Path, key: str, count: int, what: str) -> tuple[str, ...] | None:
    """Class names stored under ``key`` of a CIFAR meta pickle, or None without the file."""
    if not path.is_file():
        return None
    entry = _unpickle_dict(path, what)
    if key not in entry:
        return None
    names = entry[key]
    if not isinstance(names, list | tuple) or len(names) != count:
        got = len(names) if isinstance(names, list | tuple) else type(names).__name__
        raise ValueError(f"{path}: expected {count} names under {key!r}, got {got}")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _check_md5(paths: list[Path], official: dict[str, str], release: str) -> None:
    from torchvision.datasets.utils import check_integrity

    for p in paths:
        if not check_integrity(str(p), official[p.name]):
            raise ValueError(
                f"{p} does not match the md5 of the official {release} release "
                f"({official[p.name]}); the file is corrupted or is not the official one. "
                "Pass verify=False to read a file in this format anyway."
            )


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
    data, labels, _ = read_cifar10_arrays(root, train, download=download, verify=verify)
    return torch.from_numpy(data).to(torch.float32).div_(255.0), torch.from_numpy(labels)


def read_cifar10_arrays(
    root: str | Path, train: bool = True, *, download: bool = False, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """CIFAR-10's batches as they are: ``(uint8 [N, 3, 32, 32], int64 [N], class names)``.

    Same files, checks, ``download`` and ``verify`` as :func:`load_cifar10` (which divides
    by 255).

    Examples
    --------
    >>> read_cifar10_arrays("/nonexistent", train=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: CIFAR-10 test split not found; expected these files: ...
    """
    from torchvision.datasets import CIFAR10

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
        _check_md5(paths, dict(CIFAR10.train_list + CIFAR10.test_list), "CIFAR-10")
    parts = [_read_cifar_batch(p) for p in paths]
    data = np.concatenate([d for d, _ in parts])
    return data, np.concatenate([lab for _, lab in parts]), CIFAR10_CLASSES


def load_cifar100(
    root: str | Path,
    train: bool = True,
    *,
    labels: str = "fine",
    verify: bool = True,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load CIFAR-100's train (50,000) or test (10,000) split from the python-version pickles.

    Parameters
    ----------
    root : str or Path
        Directory that contains ``cifar-100-python/``.
    train : bool, default True
        The ``train`` pickle if True, ``test`` otherwise.
    labels : {"fine", "coarse"}, default "fine"
        The 100 fine classes or the 20 coarse superclasses.
    verify : bool, default True
        Check the file's md5 (and the ``meta`` file's, when present) against the official
        release, as torchvision lists them; ``ValueError`` on mismatch.
    download : bool, default False
        Download into ``root`` through torchvision if the files are missing.

    Returns
    -------
    x : torch.Tensor
        float32 ``[N, 3, 32, 32]`` in [0, 1] (pixel / 255).
    y : torch.Tensor
        int64 ``[N]``: 0..99 (fine) or 0..19 (coarse); names from
        :func:`read_cifar100_arrays`.

    Examples
    --------
    >>> load_cifar100("/nonexistent", train=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: CIFAR-100 test split not found; expected these files: ...
    >>> load_cifar100("/nonexistent", labels="superclass")
    Traceback (most recent call last):
    ...
    ValueError: labels must be 'fine' or 'coarse', got 'superclass'
    """
    data, y, _ = read_cifar100_arrays(root, train, labels=labels, verify=verify, download=download)
    return torch.from_numpy(data).to(torch.float32).div_(255.0), torch.from_numpy(y)


def read_cifar100_arrays(
    root: str | Path,
    train: bool = True,
    *,
    labels: str = "fine",
    verify: bool = True,
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """CIFAR-100's pickle as it is: ``(uint8 [N, 3, 32, 32], int64 [N], class names)``.

    Same files, checks, ``download`` and ``verify`` as :func:`load_cifar100`. The names are
    the ``fine_label_names``/``coarse_label_names`` of ``cifar-100-python/meta``, or None
    when that file is absent.

    Examples
    --------
    >>> read_cifar100_arrays("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: CIFAR-100 train split not found; expected these files: ...
    """
    from torchvision.datasets import CIFAR100

    if labels not in _CIFAR100_LABELS:
        raise ValueError(f"labels must be 'fine' or 'coarse', got {labels!r}")
    label_key, count = _CIFAR100_LABELS[labels]
    root = check_root(root)
    folder = root / _CIFAR100_FOLDER
    path = folder / ("train" if train else "test")
    meta = folder / CIFAR100.meta["filename"]
    if not path.is_file():
        if not download:
            raise _missing(
                f"CIFAR-100 {'train' if train else 'test'} split",
                [path],
                "Pass download=True to fetch it with torchvision, or unpack "
                "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
                f"into {root}.",
            )
        CIFAR100(str(root), train=bool(train), download=True)
    if verify:
        official = dict(CIFAR100.train_list + CIFAR100.test_list)
        official[meta.name] = CIFAR100.meta["md5"]
        _check_md5([path, meta] if meta.is_file() else [path], official, "CIFAR-100")
    data, y = _read_cifar_batch(path, label_key, count, "CIFAR-100")
    names = _read_cifar_names(meta, f"{labels}_label_names", count, "CIFAR-100")
    return data, y, names


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
    samples = read_gtsrb_samples(root, split, download=download)
    x = torch.empty(len(samples), 3, image_size, image_size, dtype=torch.float32)
    y = torch.empty(len(samples), dtype=torch.int64)
    for i, (path, label) in enumerate(progress(samples, "GTSRB", verbose)):
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        x[i] = torch.from_numpy(np.asarray(rgb, dtype=np.float32)).permute(2, 0, 1)
        y[i] = label
    return x.div_(255.0), y


def read_gtsrb_samples(
    root: str | Path, split: str = "train", *, download: bool = False
) -> list[tuple[Path, int]]:
    """GTSRB's ``(image file, class id)`` pairs of a split, listed without opening an image.

    Same layout, checks and ``download`` as :func:`load_gtsrb`; class ids are checked to be
    in 0..42 here.

    Examples
    --------
    >>> read_gtsrb_samples("/nonexistent", "test")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: GTSRB test split not found; expected these files: ...
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
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
    for path, label in samples:
        if not 0 <= label <= 42:
            raise ValueError(f"{path}: GTSRB class id must be in 0..42, got {label}")
    return samples

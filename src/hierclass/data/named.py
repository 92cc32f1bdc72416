"""Data sets named by one string (``cifar10:/data``, ``imagenet:/data/ILSVRC``), read lazily.

:func:`open_dataset` turns a name into :class:`NamedData`: the inputs, the labels and the
class names of one split. Opening reads labels and lists files only; the inputs of the
on-disk sets are a :class:`~hierclass.data.lazy.LazyInputs`, so an image is decoded when it
is indexed, and a split of ImageNet never has to fit in memory. The embedded sets are small
and come as tensors.

Accepted names (:data:`DATASET_SCHEMES`), with the layout each expects under ``ROOT``:

* ``digits``, ``mnist5k`` -- embedded (:func:`~hierclass.data.load_digits`,
  :func:`~hierclass.data.load_mnist_subset`); no path.
* ``mnist:ROOT`` -- ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``;
  inputs ``[1, 28, 28]``.
* ``cifar10:ROOT`` -- ``ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}``.
* ``cifar100:ROOT`` (100 fine labels), ``cifar100-coarse:ROOT`` (20 superclasses) --
  ``ROOT/cifar-100-python/{train,test}``, class names from ``meta`` when present.
* ``gtsrb:ROOT`` -- torchvision's ``ROOT/gtsrb/`` layout; images resized to 32 x 32.
* ``imagenet:ROOT`` -- ``ROOT/val/<wnid>/`` (test; or ``ROOT/<wnid>/`` directly) and
  ``ROOT/train/<wnid>/`` (train), exactly 1000 class folders; Cohen et al.'s transform
  (resize to 256, centre crop 224).
* ``imagefolder:PATH`` -- ``PATH/<class>/<images>``, labels by sorted class name; images are
  not resized, so all must have one size; no splits.

The CIFAR pickles are read with their format checked but without the md5 check of
:func:`~hierclass.data.load_cifar10` (``verify=False``): re-exports of the sets in the same
format are common and are read as they are. Nothing is ever downloaded.

Class folders (ImageNet, imagefolder) are ordered and walked as torchvision's
``ImageFolder`` does, so item ``i`` here is item ``i`` there -- except that folders whose
name starts with a dot (``.ipynb_checkpoints``) are not classes here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .lazy import LazyInputs

__all__ = ["DATASET_SCHEMES", "NamedData", "open_dataset"]

DATASET_SCHEMES: tuple[str, ...] = (
    "digits",
    "mnist5k",
    "mnist:ROOT",
    "cifar10:ROOT",
    "cifar100:ROOT",
    "cifar100-coarse:ROOT",
    "gtsrb:ROOT",
    "imagenet:ROOT",
    "imagefolder:PATH",
)
"""The forms :func:`open_dataset` accepts."""

_LAYOUTS = {
    "mnist": "ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    "cifar10": "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}",
    "cifar100": "ROOT/cifar-100-python/{train,test,meta}",
    "cifar100-coarse": "ROOT/cifar-100-python/{train,test,meta}",
    "gtsrb": (
        "ROOT/gtsrb/GTSRB/Training/<class id>/*.ppm (train) and "
        "ROOT/gtsrb/GTSRB/Final_Test/Images/*.ppm with ROOT/gtsrb/GT-final_test.csv (test)"
    ),
    "imagenet": "ROOT/val/<wnid>/*.JPEG (test) and ROOT/train/<wnid>/*.JPEG (train)",
    "imagefolder": "PATH/<class>/<image files>",
}
_EMBEDDED = ("digits", "mnist5k")
_SPLITS = ("train", "test")
_IMAGENET_CLASSES = 1000
_WNID = re.compile(r"n\d{8}")
_DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True, eq=False)
class NamedData:
    """One split of a named data set: inputs, labels and class names.

    Attributes
    ----------
    inputs : torch.Tensor or LazyInputs
        ``[N, C, H, W]`` float32 in [0, 1]; a :class:`~hierclass.data.lazy.LazyInputs` for
        the sets read from disk (``inputs[i]`` reads one, ``inputs[a:b]`` a batch).
    labels : torch.Tensor
        int64 ``[N]`` in ``0..num_classes-1``.
    classes : tuple of str or None
        The name of each label, when the files say (CIFAR-100 without ``meta`` does not).

    Examples
    --------
    >>> data = NamedData(torch.zeros(3, 1, 2, 2), torch.tensor([0, 2, 1]), ("a", "b", "c"))
    >>> len(data), data.num_classes
    (3, 3)
    >>> NamedData(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1]), None)
    Traceback (most recent call last):
    ...
    ValueError: NamedData: 3 inputs but 2 labels
    """

    inputs: torch.Tensor | LazyInputs
    labels: torch.Tensor
    classes: tuple[str, ...] | None

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, torch.Tensor | LazyInputs):
            raise TypeError(
                f"NamedData: inputs must be a tensor or LazyInputs, got "
                f"{type(self.inputs).__name__}"
            )
        labels = self.labels
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1:
            got = (
                f"{labels.dtype} of shape {tuple(labels.shape)}"
                if isinstance(labels, torch.Tensor)
                else type(labels).__name__
            )
            raise ValueError(f"NamedData: labels must be an int64 tensor [N], got {got}")
        if len(self.inputs) != len(labels):
            raise ValueError(f"NamedData: {len(self.inputs)} inputs but {len(labels)} labels")
        if self.classes is not None:
            if not isinstance(self.classes, tuple) or not all(
                isinstance(c, str) for c in self.classes
            ):
                raise TypeError("NamedData: classes must be a tuple of str or None")
            if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(self.classes):
                raise ValueError(
                    f"NamedData: labels must be in 0..{len(self.classes) - 1} "
                    f"({len(self.classes)} classes), found "
                    f"{int(labels.min())}..{int(labels.max())}"
                )

    @property
    def num_classes(self) -> int:
        """``len(classes)``, or ``max(labels) + 1`` when the class names are unknown."""
        if self.classes is not None:
            return len(self.classes)
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        kind = type(self.inputs).__name__
        return f"NamedData({len(self)} inputs ({kind}), num_classes={self.num_classes})"


def open_dataset(spec: str, split: str | None = None) -> NamedData:
    """Open one split of the data set ``spec`` names (see :data:`DATASET_SCHEMES`).

    Parameters
    ----------
    spec : str
        ``digits``, ``mnist5k``, or ``SCHEME:ROOT`` with SCHEME one of ``mnist``,
        ``cifar10``, ``cifar100``, ``cifar100-coarse``, ``gtsrb``, ``imagenet``,
        ``imagefolder`` (layouts in the module docstring).
    split : {"train", "test"} or None, default None
        None means ``"test"``. ``imagefolder`` has no splits: point it at the split's
        folder instead.

    Returns
    -------
    NamedData
        Labels and class names read, files listed; inputs of on-disk sets not yet read.

    Raises
    ------
    ValueError
        For an unknown scheme, a missing ROOT or file (naming it and the layout expected),
        a split the set does not have, or a file not in the set's format (naming it).

    Examples
    --------
    >>> data = open_dataset("digits")
    >>> tuple(data.inputs.shape[1:]), data.num_classes, data.classes[:3]
    ((1, 8, 8), 10, ('0', '1', '2'))
    >>> open_dataset("digits", split="val")
    Traceback (most recent call last):
    ...
    ValueError: digits: split must be 'train' or 'test' (or None for test), got 'val'
    >>> open_dataset("svhn:/data")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown data set 'svhn:/data'; expected one of digits, mnist5k, mnist:ROOT, ...
    >>> open_dataset("imagefolder:")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: imagefolder: needs a PATH after the colon (imagefolder:PATH with ...)
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str such as 'cifar10:/data', got {type(spec).__name__}")
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str or None, got {type(split).__name__}")
    scheme, colon, rest = spec.partition(":")
    if scheme in _EMBEDDED:
        if colon:
            raise ValueError(f"{scheme} is embedded and takes no path, got {spec!r}")
        return _embedded(scheme, _split(scheme, split))
    if scheme not in _LAYOUTS:
        raise ValueError(f"unknown data set {spec!r}; expected one of {', '.join(DATASET_SCHEMES)}")
    if scheme == "imagefolder" and split is not None:
        raise ValueError(
            f"imagefolder: has no splits (got split={split!r}); point PATH at the split's folder"
        )
    chosen = None if scheme == "imagefolder" else _split(scheme, split)
    what = "PATH" if scheme == "imagefolder" else "ROOT"
    if not rest:
        # An empty path would be the working directory: never scanned by accident.
        raise ValueError(
            f"{scheme}: needs a {what} after the colon ({scheme}:{what} with {_LAYOUTS[scheme]})"
        )
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise ValueError(f"{spec}: {root} is not a directory; expected {_LAYOUTS[scheme]}")
    if scheme == "imagefolder":
        return _imagefolder(spec, root)
    assert chosen is not None
    try:
        if scheme == "mnist":
            return _mnist(spec, root, chosen)
        if scheme in ("cifar10", "cifar100", "cifar100-coarse"):
            return _cifar(spec, scheme, root, chosen)
        if scheme == "gtsrb":
            return _gtsrb(spec, root, chosen)
        return _imagenet(spec, root, chosen)
    except FileNotFoundError as err:
        raise ValueError(f"{spec}: {_one_line(err)}") from None


def _split(scheme: str, split: str | None) -> str:
    if split is None:
        return "test"
    if split not in _SPLITS:
        raise ValueError(
            f"{scheme}: split must be 'train' or 'test' (or None for test), got {split!r}"
        )
    return split


def _one_line(err: FileNotFoundError) -> str:
    """The loaders' "not found; expected these files: ..." message without its download tip."""
    lines = str(err).splitlines()
    listed = [line.strip() for line in lines[1:] if line.startswith(" ")]
    return lines[0] + (" " + ", ".join(listed) if listed else "")


def _what(spec: str, split: str) -> str:
    return f"{spec} ({split})"


def _embedded(scheme: str, split: str) -> NamedData:
    from .embedded import load_digits, load_mnist_subset

    data = load_digits() if scheme == "digits" else load_mnist_subset()
    if split == "test":
        return NamedData(data.x_test, data.y_test, _DIGITS)
    return NamedData(data.x_train, data.y_train, _DIGITS)


def _mnist(spec: str, root: Path, split: str) -> NamedData:
    from .torchvision_sets import read_mnist_arrays

    raw = root / "MNIST" / "raw"
    try:
        images, labels = read_mnist_arrays(root, train=split == "train")
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - torchvision's idx parser asserts and views
        raise ValueError(
            f"{spec}: the MNIST {split} idx files in {raw} are not readable "
            f"({type(err).__name__}: {err})"
        ) from None
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(
            f"{spec}: the MNIST {split} files in {raw} hold {len(images)} images of shape "
            f"{images.shape[1:]} but {len(labels)} labels"
        )
    if labels.size and not 0 <= labels.min() <= labels.max() <= 9:
        raise ValueError(f"{spec}: the MNIST {split} labels in {raw} must be digits 0..9")
    inputs = LazyInputs.from_uint8(images, _what(spec, split))
    return NamedData(inputs, torch.from_numpy(labels), _DIGITS)


def _cifar(spec: str, scheme: str, root: Path, split: str) -> NamedData:
    from .torchvision_sets import read_cifar10_arrays, read_cifar100_arrays

    train = split == "train"
    if scheme == "cifar10":
        data, labels, classes = read_cifar10_arrays(root, train, verify=False)
    else:
        kind = "coarse" if scheme == "cifar100-coarse" else "fine"
        data, labels, classes = read_cifar100_arrays(root, train, labels=kind, verify=False)
    # [N, 3, 32, 32] -> [N, 32, 32, 3] is a view: rows are still converted one at a time.
    inputs = LazyInputs.from_uint8(data.transpose(0, 2, 3, 1), _what(spec, split))
    return NamedData(inputs, torch.from_numpy(labels), classes)


def _gtsrb(spec: str, root: Path, split: str) -> NamedData:
    from .gtsrb import GTSRB_NAMES
    from .images import resize_transform
    from .torchvision_sets import read_gtsrb_samples

    samples = read_gtsrb_samples(root, split)
    inputs = LazyInputs.from_files(
        [path for path, _ in samples], resize_transform(32), _what(spec, split)
    )
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return NamedData(inputs, labels, GTSRB_NAMES)


def _class_folders(folder: Path) -> list[str]:
    """Sorted names of the class folders (dot-folders are not classes)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _image_files(folder: Path, classes: list[str]) -> tuple[list[str], list[int]]:
    """Image files of each class folder, in torchvision ImageFolder's order; none opened."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        for where, _, files in sorted(os.walk(folder / name, followlinks=True)):
            for file in sorted(files):
                if file.lower().endswith(IMG_EXTENSIONS):
                    paths.append(os.path.join(where, file))
                    labels.append(label)
    return paths, labels


def _imagenet(spec: str, root: Path, split: str) -> NamedData:
    from .images import cohen_imagenet_transform

    if split == "train":
        folder = root / "train"
        if not folder.is_dir():
            raise ValueError(
                f"{spec}: {folder} is not a directory; expected {_LAYOUTS['imagenet']}"
            )
    elif (root / "val").is_dir():
        folder = root / "val"
    elif any(_WNID.fullmatch(name) for name in _class_folders(root)):
        folder = root
    else:
        raise ValueError(
            f"{spec}: {root} holds neither val/ nor wnid class folders (e.g. n01440764); "
            f"expected {_LAYOUTS['imagenet']}"
        )
    classes = _class_folders(folder)
    if len(classes) != _IMAGENET_CLASSES:
        raise ValueError(
            f"{spec}: {folder} holds {len(classes)} class folders; ImageNet needs exactly "
            f"{_IMAGENET_CLASSES} (one per wnid)"
        )
    paths, labels = _image_files(folder, classes)
    if not paths:
        raise ValueError(f"{spec}: the 1000 class folders of {folder} hold no image files")
    inputs = LazyInputs.from_files(paths, cohen_imagenet_transform(), _what(spec, split))
    return NamedData(inputs, torch.tensor(labels, dtype=torch.int64), tuple(classes))


def _imagefolder(spec: str, root: Path) -> NamedData:
    classes = _class_folders(root)
    if not classes:
        raise ValueError(f"{spec}: {root} has no class folders; expected {_LAYOUTS['imagefolder']}")
    paths, labels = _image_files(root, classes)
    if not paths:
        raise ValueError(f"{spec}: the {len(classes)} class folders of {root} hold no image files")
    inputs = LazyInputs.from_files(paths, None, spec)
    return NamedData(inputs, torch.tensor(labels, dtype=torch.int64), tuple(classes))

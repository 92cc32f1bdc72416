"""Label partitions of public data sets, by name: the invariances users certify with.

Each entry is a fact about a data set's label ids, with its source:

* ``cifar10-living``: CIFAR-10's non-living objects {airplane, automobile, ship, truck} and
  living objects {bird, cat, deer, dog, frog, horse} (the paper, §V and App. E).
* ``cifar100-superclasses``: CIFAR-100's 20 superclasses of 5 fine labels each, as the
  ``coarse_labels`` of the official release (Krizhevsky, 2009) assign them.
* ``restricted-imagenet``: the nine classes of Restricted ImageNet (Tsipras et al., 2019,
  "Robustness may be at odds with accuracy"), inclusive ranges of ImageNet-1k ids, plus the
  797 other labels as a tenth class so that the partition covers all 1000.
* ``gtsrb-shapes``: GTSRB's 43 signs by shape (see :mod:`hierclass.data.gtsrb`).
* ``mnist-round``: MNIST's digits {0, 2, 3, 5, 6, 8} and {1, 4, 7, 9}, the two clusters the
  paper finds in a network's embeddings (§V); ``hierclass demo`` uses it.

:func:`load_partition` reads a name or a JSON file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hierclass.partition import LabelPartition

__all__ = [
    "CIFAR100_COARSE_NAMES",
    "CIFAR100_COARSE_OF_FINE",
    "PARTITIONS",
    "RESTRICTED_IMAGENET_RANGES",
    "get_partition",
    "load_partition",
]

#: Coarse label of each CIFAR-100 fine label 0..99 (the official release's ``coarse_labels``).
CIFAR100_COARSE_OF_FINE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
)  # fmt: skip

#: The release's ``coarse_label_names``, in id order.
CIFAR100_COARSE_NAMES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip

#: Restricted ImageNet's classes: inclusive ranges of ImageNet-1k label ids (Tsipras et al.).
RESTRICTED_IMAGENET_RANGES = {
    "dog": (151, 268),
    "cat": (281, 285),
    "frog": (30, 32),
    "turtle": (33, 37),
    "bird": (80, 100),
    "primate": (365, 382),
    "fish": (389, 397),
    "crab": (118, 121),
    "insect": (300, 319),
}


def _cifar10_living() -> LabelPartition:
    return LabelPartition({"non_living": [0, 1, 8, 9], "living": [2, 3, 4, 5, 6, 7]}, num_labels=10)


def _cifar100_superclasses() -> LabelPartition:
    classes: dict[str, list[int]] = {name: [] for name in CIFAR100_COARSE_NAMES}
    for fine, coarse in enumerate(CIFAR100_COARSE_OF_FINE):
        classes[CIFAR100_COARSE_NAMES[coarse]].append(fine)
    return LabelPartition(classes, num_labels=100)


def _restricted_imagenet() -> LabelPartition:
    classes = {n: list(range(lo, hi + 1)) for n, (lo, hi) in RESTRICTED_IMAGENET_RANGES.items()}
    taken = {label for labels in classes.values() for label in labels}
    classes["other"] = [label for label in range(1000) if label not in taken]
    return LabelPartition(classes, num_labels=1000)


def _mnist_round() -> LabelPartition:
    return LabelPartition({"round": [0, 2, 3, 5, 6, 8], "straight": [1, 4, 7, 9]}, num_labels=10)


def _gtsrb_shapes() -> LabelPartition:
    from .gtsrb import gtsrb_shape_partition

    return gtsrb_shape_partition()


#: Shipped partitions by name (each built on request).
PARTITIONS: dict[str, Callable[[], LabelPartition]] = {
    "cifar10-living": _cifar10_living,
    "cifar100-superclasses": _cifar100_superclasses,
    "restricted-imagenet": _restricted_imagenet,
    "gtsrb-shapes": _gtsrb_shapes,
    "mnist-round": _mnist_round,
}


def get_partition(name: str) -> LabelPartition:
    """A shipped partition by name (see :data:`PARTITIONS`).

    Examples
    --------
    >>> p = get_partition("cifar100-superclasses")
    >>> p.num_classes, set(p.sizes), p.labels_of("people")
    (20, {5}, (2, 11, 35, 46, 98))
    >>> get_partition("restricted-imagenet").sizes
    (118, 5, 3, 5, 21, 18, 9, 4, 20, 797)
    """
    if name not in PARTITIONS:
        raise ValueError(f"unknown partition {name!r}; shipped: {', '.join(PARTITIONS)}")
    return PARTITIONS[name]()


def load_partition(source: str | Path, num_labels: int | None = None) -> LabelPartition:
    """A partition from a shipped name or a JSON file.

    Parameters
    ----------
    source : str or Path
        A key of :data:`PARTITIONS`, or a JSON file holding ``{"name": [labels], ...}``,
        ``[[labels], ...]``, or ``LabelPartition.to_dict()``'s ``{"classes": ..., ...}``.
    num_labels : int, optional
        The classifier's number of labels: the partition must cover exactly ``0..num_labels-1``.

    Examples
    --------
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.json")
    >>> with open(path, "w") as f:
    ...     json.dump({"even": [0, 2], "odd": [1, 3]}, f)
    >>> load_partition(path, num_labels=4).names
    ('even', 'odd')
    >>> load_partition("cifar10-living", num_labels=100)
    Traceback (most recent call last):
    ...
    ValueError: partition 'cifar10-living' covers labels 0..9 but the classifier has 100 labels
    """
    text = str(source)
    if text in PARTITIONS:
        partition = get_partition(text)
    else:
        path = Path(text)
        if path.suffix != ".json" and not path.exists():
            raise ValueError(
                f"partition {text!r} is neither a shipped one ({', '.join(PARTITIONS)}) nor a "
                "JSON file"
            )
        partition = _read_json(path)
    if num_labels is not None and partition.num_labels != num_labels:
        raise ValueError(
            f"partition {text!r} covers labels 0..{partition.num_labels - 1} but the "
            f"classifier has {num_labels} labels"
        )
    return partition


def _read_json(path: Path) -> LabelPartition:
    try:
        spec: Any = json.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"partition file {path} cannot be read ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"partition file {path} is not JSON ({err})") from None
    try:
        if isinstance(spec, dict) and "classes" in spec:
            return LabelPartition.from_dict(spec)
        if isinstance(spec, (dict, list)):
            return LabelPartition(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"partition file {path}: {err}") from None
    raise ValueError(
        f"partition file {path} must hold {{name: [labels]}} or [[labels], ...], got "
        f"{type(spec).__name__}"
    )

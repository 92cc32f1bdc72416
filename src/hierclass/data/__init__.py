"""Data for hierclass: embedded real sets, torchvision-backed full sets, case-study simulators.

* Embedded (no files needed): :func:`load_digits`, :func:`load_mnist_subset`.
* From a root directory you provide: :func:`load_mnist`, :func:`load_cifar10`,
  :func:`load_cifar100`, :func:`load_gtsrb` (never download unless ``download=True``).
* By name, read lazily: :func:`open_dataset` (``cifar10:/data``, ``imagenet:/data``, ...;
  see :data:`DATASET_SCHEMES`) gives :class:`NamedData` whose inputs are a
  :class:`LazyInputs` reading one image per index; :func:`read_image` decodes one file.
* GTSRB shape invariant and speed-limit rule; the full class tables (``GTSRB_CLASSES``,
  ``GTSRB_SHAPE_OF``, ``SPEED_LIMIT_LABELS``, ...) are in :mod:`hierclass.data.gtsrb`.
* Simulators of the paper's case studies: :mod:`hierclass.data.roadsigns`,
  :mod:`hierclass.data.speaker` (imported on first use).
"""

from __future__ import annotations

from hierclass._lazy import lazy_exports

from .embedded import EmbeddedDataset, load_digits, load_mnist_subset
from .gtsrb import (
    GTSRB_NAMES,
    LOCATION_NAMES,
    SHAPES,
    gtsrb_shape_partition,
    speed_limit_partition,
    speed_limit_rule,
)
from .images import read_image
from .lazy import LazyInputs
from .named import DATASET_SCHEMES, NamedData, open_dataset
from .torchvision_sets import (
    CIFAR10_CLASSES,
    load_cifar10,
    load_cifar100,
    load_gtsrb,
    load_mnist,
)

# Simulators are heavier and optional for most users: resolved lazily on attribute access.
_LAZY = {
    "RoadSignBatch": "hierclass.data.roadsigns",
    "RoadSignSimulator": "hierclass.data.roadsigns",
    "simulate_road_signs": "hierclass.data.roadsigns",
    "GENDER_NAMES": "hierclass.data.speaker",
    "SpeakerBatch": "hierclass.data.speaker",
    "SpeakerSimulator": "hierclass.data.speaker",
    "simulate_speakers": "hierclass.data.speaker",
}

__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_SCHEMES",
    "GENDER_NAMES",
    "LOCATION_NAMES",
    "EmbeddedDataset",
    "GTSRB_NAMES",
    "LazyInputs",
    "NamedData",
    "RoadSignBatch",
    "RoadSignSimulator",
    "SHAPES",
    "SpeakerBatch",
    "SpeakerSimulator",
    "gtsrb_shape_partition",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_gtsrb",
    "load_mnist",
    "load_mnist_subset",
    "open_dataset",
    "read_image",
    "simulate_road_signs",
    "simulate_speakers",
    "speed_limit_partition",
    "speed_limit_rule",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)

"""GTSRB's 43 classes, their names and the shape of each sign (the paper's §VI-A invariance).

Shapes follow the German road-sign code (StVO): prohibitions, mandatory signs and
end-of-restriction signs are circles; danger warnings are triangles (point up); "Yield" is the
inverted triangle, "Stop" the octagon and "Priority road" the diamond. Resulting class sizes:
25 circles, 15 triangles, one each of the other three.

The second invariant of the road-sign case study (§VI-A4) lives here too: the speed-limit
labels among the circles, their partition and the rule that routes by map data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hierclass.partition import LabelPartition

SHAPES = ("circle", "triangle", "inverted_triangle", "octagon", "diamond")
"""Shape names in the order of the class ids of :func:`gtsrb_shape_partition`."""

# (class id, name, shape); class ids are those of the official GTSRB release.
GTSRB_CLASSES: tuple[tuple[int, str, str], ...] = (
    (0, "Speed limit (20km/h)", "circle"),
    (1, "Speed limit (30km/h)", "circle"),
    (2, "Speed limit (50km/h)", "circle"),
    (3, "Speed limit (60km/h)", "circle"),
    (4, "Speed limit (70km/h)", "circle"),
    (5, "Speed limit (80km/h)", "circle"),
    (6, "End of speed limit (80km/h)", "circle"),
    (7, "Speed limit (100km/h)", "circle"),
    (8, "Speed limit (120km/h)", "circle"),
    (9, "No passing", "circle"),
    (10, "No passing for vehicles over 3.5 metric tons", "circle"),
    (11, "Right-of-way at the next intersection", "triangle"),
    (12, "Priority road", "diamond"),
    (13, "Yield", "inverted_triangle"),
    (14, "Stop", "octagon"),
    (15, "No vehicles", "circle"),
    (16, "Vehicles over 3.5 metric tons prohibited", "circle"),
    (17, "No entry", "circle"),
    (18, "General caution", "triangle"),
    (19, "Dangerous curve to the left", "triangle"),
    (20, "Dangerous curve to the right", "triangle"),
    (21, "Double curve", "triangle"),
    (22, "Bumpy road", "triangle"),
    (23, "Slippery road", "triangle"),
    (24, "Road narrows on the right", "triangle"),
    (25, "Road work", "triangle"),
    (26, "Traffic signals", "triangle"),
    (27, "Pedestrians", "triangle"),
    (28, "Children crossing", "triangle"),
    (29, "Bicycles crossing", "triangle"),
    (30, "Beware of ice/snow", "triangle"),
    (31, "Wild animals crossing", "triangle"),
    (32, "End of all speed and passing limits", "circle"),
    (33, "Turn right ahead", "circle"),
    (34, "Turn left ahead", "circle"),
    (35, "Ahead only", "circle"),
    (36, "Go straight or right", "circle"),
    (37, "Go straight or left", "circle"),
    (38, "Keep right", "circle"),
    (39, "Keep left", "circle"),
    (40, "Roundabout mandatory", "circle"),
    (41, "End of no passing", "circle"),
    (42, "End of no passing by vehicles over 3.5 metric tons", "circle"),
)

GTSRB_NAMES: tuple[str, ...] = tuple(name for _, name, _ in GTSRB_CLASSES)
"""Sign name of each class id."""

GTSRB_SHAPE_OF: tuple[str, ...] = tuple(shape for _, _, shape in GTSRB_CLASSES)
"""Shape of each class id."""


GTSRB_SHAPE_IDS: tuple[int, ...] = tuple(SHAPES.index(shape) for shape in GTSRB_SHAPE_OF)
"""Shape id (index into :data:`SHAPES`) of each class id."""


def gtsrb_shape_partition(labels: Sequence[int] | None = None) -> LabelPartition:
    """Partition of GTSRB labels by sign shape.

    Parameters
    ----------
    labels : sequence of int, optional
        Use only these GTSRB class ids, relabelled ``0..len(labels)-1`` in the order given
        (for a model trained on a subset); shapes left without a class are dropped.
        Default: all 43 classes with their official ids.

    Returns
    -------
    LabelPartition
        Classes named by shape, in the order of :data:`SHAPES`.

    Examples
    --------
    >>> p = gtsrb_shape_partition()
    >>> p.names
    ('circle', 'triangle', 'inverted_triangle', 'octagon', 'diamond')
    >>> p.labels_of("octagon"), p.labels_of("diamond"), p.sizes
    ((14,), (12,), (25, 15, 1, 1, 1))
    >>> gtsrb_shape_partition([14, 1, 2]).classes
    ((1, 2), (0,))
    """
    if labels is None:
        pool = list(range(len(GTSRB_CLASSES)))
    else:
        pool = list(labels)
        for c in pool:
            if isinstance(c, bool) or not isinstance(c, int | np.integer):
                raise TypeError(f"labels must be ints, got {c!r} ({type(c).__name__})")
            if not 0 <= c < len(GTSRB_CLASSES):
                raise ValueError(f"GTSRB class ids are 0..42, got {int(c)}")
        if len(set(pool)) != len(pool) or not pool:
            raise ValueError(f"labels must be distinct and non-empty, got {pool}")
    groups = {
        shape: [i for i, c in enumerate(pool) if GTSRB_SHAPE_OF[c] == shape] for shape in SHAPES
    }
    return LabelPartition({k: v for k, v in groups.items() if v}, num_labels=len(pool))


#: GTSRB speed-limit signs (the "SpeedLimit" labels of Fig. 8; "end of speed limit 80" is not one).
SPEED_LIMIT_LABELS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 7, 8)

#: Location codes: what map data says about the place where a sign stands.
LOCATION_NAMES: tuple[str, ...] = ("other", "speed_limit_zone")


def speed_limit_partition():
    """Second invariant (§VI-A4): circular signs split into speed limits and the rest.

    Returns
    -------
    NestedPartition
        Over the 25 circular GTSRB labels (global ids), classes
        ``("speed_limit", "other_circle")``, for a router below the circle class of
        :func:`~hierclass.data.gtsrb.gtsrb_shape_partition`; :func:`speed_limit_rule` routes
        into it from the location code.

    Examples
    --------
    >>> p = speed_limit_partition()
    >>> p.names, p.labels_of("speed_limit")
    (('speed_limit', 'other_circle'), (0, 1, 2, 3, 4, 5, 7, 8))
    """
    circles = gtsrb_shape_partition().labels_of("circle")
    return gtsrb_shape_partition().restrict(
        "circle",
        {
            "speed_limit": list(SPEED_LIMIT_LABELS),
            "other_circle": [c for c in circles if c not in SPEED_LIMIT_LABELS],
        },
    )


def speed_limit_rule(location: torch.Tensor) -> torch.Tensor:
    """Class id in :func:`speed_limit_partition` from the location code (map data).

    Parameters
    ----------
    location : LongTensor, shape [N]
        Codes into :data:`LOCATION_NAMES`.

    Returns
    -------
    LongTensor, shape [N]
        0 (``"speed_limit"``) where the map marks a speed-limit zone, else 1.

    Examples
    --------
    >>> speed_limit_rule(torch.tensor([1, 0])).tolist()
    [0, 1]
    """
    if not isinstance(location, torch.Tensor) or location.is_floating_point():
        raise TypeError(f"location must be an integer tensor of codes, got {location!r}")
    bad = location[(location < 0) | (location >= len(LOCATION_NAMES))]
    if bad.numel():
        raise ValueError(
            f"location codes must be in 0..{len(LOCATION_NAMES) - 1}, got {bad.tolist()}"
        )
    return (1 - location).long()

"""The sign plates shared by camera and LiDAR: each shape's gauge function and size."""

from __future__ import annotations

import math

import numpy as np

# Plate circumradius in metres (the radius of the circle through the corners), per shape:
# 60 cm discs and octagons, 90 cm triangles, 60 cm-sided diamonds.
PLATE_RADIUS_M = np.array([0.30, 0.52, 0.52, 0.32, 0.42])

_OCT_INRADIUS = math.cos(math.pi / 8)


def shape_radius(shape_id: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gauge function of each plate shape (circumradius 1): a point is on the plate iff <= 1.

    ``shape_id`` is ``[N]``; ``x`` and ``y`` are ``[N, ...]`` plate coordinates (y points up).
    """
    out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype=np.result_type(x, y))
    for k in np.unique(shape_id):  # evaluate each sample's own shape only
        rows = shape_id == k
        sx, sy = x[rows], y[rows]
        ax, ay = np.abs(sx), np.abs(sy)
        if k == 0:  # circle
            out[rows] = np.sqrt(sx * sx + sy * sy)
        elif k in (1, 2):  # equilateral triangle: inradius 1/2, edge normals at -90, 30, 150 deg
            sy = sy if k == 1 else -sy
            out[rows] = np.maximum(-sy, 0.5 * sy + 0.8660254 * ax) / 0.5
        elif k == 3:  # octagon with a flat top
            out[rows] = np.maximum(np.maximum(ax, ay), (ax + ay) / math.sqrt(2.0)) / _OCT_INRADIUS
        else:  # diamond
            out[rows] = ax + ay
    return out

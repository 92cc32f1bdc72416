"""A simulator of the paper's road-sign case study (§VI-A): camera crops paired with LiDAR.

The paper's data set (KITTI crops of GTSRB signs with their LiDAR returns, annotated by hand)
is not public, so hierclass ships a simulator that keeps the structure that matters:

* the **image** shows one of the 43 GTSRB signs (shape, colours, border, digits or a pictogram)
  under random lighting, colour cast, viewing angle, placement and pixel noise;
* the **point cloud** samples the sign *plate* on a LiDAR-like scan grid (range noise, dropout,
  distance, viewing angle). It carries the sign's shape and nothing else: perturbing the image's
  pixels cannot change it, which is why a root reading it has an infinite radius under a
  pixel threat model (§VI-A2);
* a **location** code stands in for map data (§VI-A4): it marks the places where a speed-limit
  sign stands, so a :class:`~hierclass.RuleRouter` can narrow circular signs to speed limits.

Everything is simulated; numbers obtained on it are not the paper's KITTI numbers. The class
table and the shape invariant itself live in :mod:`hierclass.data.gtsrb`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from hierclass._utils.checks import positive_int

# The speed-limit table and rule are GTSRB's; re-exported here, where they used to live.
from .gtsrb import (
    GTSRB_SHAPE_IDS,
    LOCATION_NAMES,
    SPEED_LIMIT_LABELS,
    speed_limit_partition,
    speed_limit_rule,
)

__all__ = [
    "LOCATION_NAMES",
    "SPEED_LIMIT_LABELS",
    "RoadSignBatch",
    "RoadSignSimulator",
    "simulate_road_signs",
    "speed_limit_partition",
    "speed_limit_rule",
]


_SPEED_TEXT = {0: "20", 1: "30", 2: "50", 3: "60", 4: "70", 5: "80", 6: "80", 7: "100", 8: "120"}

# A 3x5 digit font: enough for the speed-limit numbers and legible at 32x32.
_DIGITS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
}

_RED = (0.80, 0.08, 0.10)
_WHITE = (0.95, 0.95, 0.93)
_BLACK = (0.06, 0.06, 0.08)
_BLUE = (0.08, 0.25, 0.70)
_YELLOW = (0.98, 0.78, 0.08)
_GREY = (0.45, 0.45, 0.47)

# Plate circumradius in metres (the radius of the circle through the corners), per shape:
# 60 cm discs and octagons, 90 cm triangles, 60 cm-sided diamonds.
_PLATE_RADIUS_M = np.array([0.30, 0.52, 0.52, 0.32, 0.42])
# Border width as a fraction of the circumradius, per shape.
_BORDER = np.array([0.20, 0.28, 0.28, 0.08, 0.16])
# Half-height of the pictogram box in plate units, per shape (triangles have little room).
_GLYPH_HALF = np.array([0.42, 0.22, 0.20, 0.30, 0.40])
_GLYPH_CENTER_Y = np.array([0.0, -0.10, 0.12, 0.0, 0.0])
_GLYPH_ROWS, _GLYPH_COLS = 5, 11
_OCT_INRADIUS = math.cos(math.pi / 8)
_CHUNK = 1024


def _text_bitmap(text: str) -> np.ndarray:
    columns: list[np.ndarray] = []
    for i, ch in enumerate(text):
        if i:
            columns.append(np.zeros((5, 1)))
        columns.append(np.array([[c == "1" for c in row] for row in _DIGITS[ch]], dtype=float))
    return np.concatenate(columns, axis=1)


def _class_appearance() -> tuple[np.ndarray, ...]:
    """Colours and pictograms of the 43 classes (fixed; does not depend on any seed)."""
    border = np.empty((43, 3))
    interior = np.empty((43, 3))
    ink = np.empty((43, 3))
    glyph = np.zeros((43, _GLYPH_ROWS, _GLYPH_COLS))
    glyph_cols = np.full(43, 5)
    # Pictograms are fixed random 5x5 patterns (seeded by the class id), distinct from each other.
    pict = np.random.default_rng(1234)
    seen: set[bytes] = set()
    for c in range(43):
        border[c], interior[c], ink[c] = _RED, _WHITE, _BLACK
        if c in _SPEED_TEXT:
            bitmap = _text_bitmap(_SPEED_TEXT[c])
        elif c in (13, 15):  # yield and "no vehicles" are blank inside
            bitmap = np.zeros((5, 5))
        else:
            while True:
                bitmap = (pict.random((5, 5)) < 0.45).astype(float)
                key = bitmap.tobytes()
                if bitmap.sum() >= 6 and key not in seen:
                    seen.add(key)
                    break
        if c == 6 or c in (32, 41, 42):  # "end of" signs: white, grey ink, black diagonal
            border[c], ink[c] = _BLACK, _GREY
            if c == 32:
                bitmap = np.zeros((5, 5))
        if 33 <= c <= 40:  # mandatory: blue disc, white arrow-like pictogram
            border[c], interior[c], ink[c] = _BLUE, _BLUE, _WHITE
        if c == 12:  # priority road: white rim, yellow centre, no pictogram
            border[c], interior[c] = _WHITE, _YELLOW
            bitmap = np.zeros((5, 5))
        if c == 14:  # stop: red plate, white lettering
            border[c], interior[c], ink[c] = _WHITE, _RED, _WHITE
        if c == 17:  # no entry: red disc with a white bar
            border[c], interior[c], ink[c] = _RED, _RED, _WHITE
            bitmap = np.zeros((5, 5))
            bitmap[2, :] = 1.0
        glyph[c, :, : bitmap.shape[1]] = bitmap
        glyph_cols[c] = bitmap.shape[1]
    return border, interior, ink, glyph, glyph_cols


_BORDER_RGB, _INTERIOR_RGB, _INK_RGB, _GLYPHS, _GLYPH_COLS_OF = _class_appearance()
_DIAGONAL = np.zeros(43, dtype=bool)
_DIAGONAL[[6, 32, 41, 42]] = True


def _shape_radius(shape_id: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
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


@dataclass(frozen=True)
class RoadSignBatch:
    """Simulated road signs: camera image, LiDAR points of the plate, and map location.

    Attributes
    ----------
    image : torch.Tensor
        ``[N, 3, H, W]`` float32 RGB crops in [0, 1] (the perturbable modality).
    lidar : torch.Tensor
        ``[N, P, 3]`` float32 points in metres, ``(x right, y up, z away from the sensor)``,
        centred on their mean (as after cropping the sign out of a scan).
    location : torch.Tensor
        ``[N]`` int64 codes into :data:`LOCATION_NAMES` (map data; never perturbed).
    label : torch.Tensor
        ``[N]`` int64 GTSRB class ids in ``0..42``.
    shape_id : torch.Tensor
        ``[N]`` int64 shape ids into :data:`hierclass.data.gtsrb.SHAPES`.
    distance : torch.Tensor
        ``[N]`` float32 distance from the sensor to the plate, metres.
    view_angle : torch.Tensor
        ``[N]`` float32 yaw of the plate relative to the line of sight, degrees.
    num_returns : torch.Tensor
        ``[N]`` int64 number of distinct LiDAR returns before resampling to ``P`` points.

    Examples
    --------
    >>> batch = RoadSignSimulator(image_size=16, num_points=32).generate(4, seed=0)
    >>> len(batch), sorted(batch.inputs)
    (4, ['image', 'lidar', 'location'])
    >>> batch[:2].image.shape
    torch.Size([2, 3, 16, 16])
    """

    image: torch.Tensor
    lidar: torch.Tensor
    location: torch.Tensor
    label: torch.Tensor
    shape_id: torch.Tensor
    distance: torch.Tensor
    view_angle: torch.Tensor
    num_returns: torch.Tensor

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """The model inputs as a dict batch ``{"image", "lidar", "location"}``."""
        return {"image": self.image, "lidar": self.lidar, "location": self.location}

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def __getitem__(self, index: Any) -> RoadSignBatch:
        """Sub-batch selected by a slice, an index tensor/array or a boolean mask."""
        if isinstance(index, int):
            raise TypeError(
                "index a RoadSignBatch with a slice, an index array or a mask, not an int"
            )
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        return RoadSignBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> RoadSignBatch:
        """Copy of the batch with every tensor on ``device``."""
        return RoadSignBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class RoadSignSimulator:
    """Generates road-sign images paired with LiDAR-like point clouds of the sign plate.

    Class appearance (shapes, colours, digits, pictograms) is fixed; everything else (lighting,
    placement, viewing angle, distance, sensor noise) is drawn from the ``seed`` given to
    :meth:`generate`, so two calls with the same seed return identical batches.

    Parameters
    ----------
    image_size : int, default 32
        Side ``H = W`` of the square image crops.
    num_points : int, default 128
        Points per cloud ``P``; returns are resampled with replacement to this count.
    pixel_noise : float, default 0.03
        Standard deviation of Gaussian pixel noise (before clipping to [0, 1]).
    lighting : tuple of float, default (0.45, 1.25)
        Range of the global brightness factor.
    max_view_angle : float, default 50.0
        Largest absolute yaw of the plate, degrees (foreshortens image and point cloud alike).
    distance_range : tuple of float, default (5.0, 20.0)
        Range of sensor-to-sign distances, metres (farther signs get fewer returns).
    beam_spacing_deg : tuple of float, default (0.4, 0.2)
        Vertical and horizontal angular spacing of the scan grid, degrees (a 64-beam
        spinning LiDAR is about 0.4 by 0.2).
    range_noise : float, default 0.015
        Standard deviation of the noise along each beam, metres.
    dropout : float, default 0.1
        Probability that a return on the plate is lost.
    map_error : float, default 0.0
        Probability that the location code of a sign is wrong (0 keeps location an invariant).

    Examples
    --------
    >>> sim = RoadSignSimulator(image_size=16, num_points=32)
    >>> batch = sim.generate(6, seed=1)
    >>> batch.image.shape, batch.lidar.shape
    (torch.Size([6, 3, 16, 16]), torch.Size([6, 32, 3]))
    >>> bool(((batch.image >= 0) & (batch.image <= 1)).all())
    True
    >>> bool(torch.equal(batch.label, sim.generate(6, seed=1).label))
    True
    """

    def __init__(
        self,
        image_size: int = 32,
        num_points: int = 128,
        *,
        pixel_noise: float = 0.03,
        lighting: tuple[float, float] = (0.45, 1.25),
        max_view_angle: float = 50.0,
        distance_range: tuple[float, float] = (5.0, 20.0),
        beam_spacing_deg: tuple[float, float] = (0.4, 0.2),
        range_noise: float = 0.015,
        dropout: float = 0.1,
        map_error: float = 0.0,
    ) -> None:
        self.image_size = image_size
        self.num_points = num_points
        self.pixel_noise = pixel_noise
        self.lighting = lighting
        self.max_view_angle = max_view_angle
        self.distance_range = distance_range
        self.beam_spacing_deg = beam_spacing_deg
        self.range_noise = range_noise
        self.dropout = dropout
        self.map_error = map_error

    def _validate(self) -> None:
        for name in ("image_size", "num_points"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 8:
                raise ValueError(f"{name} must be an int >= 8, got {value!r}")
        for name in ("pixel_noise", "range_noise"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        for name in ("dropout", "map_error"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not 0 <= self.max_view_angle < 80:
            raise ValueError(
                f"max_view_angle must be in [0, 80) degrees, got {self.max_view_angle!r}"
            )
        lo, hi = self.lighting
        if not 0 < lo <= hi:
            raise ValueError(
                f"lighting must be (low, high) with 0 < low <= high, got {self.lighting!r}"
            )
        lo, hi = self.distance_range
        if not 0 < lo <= hi:
            raise ValueError(
                "distance_range must be (near, far) with 0 < near <= far, "
                f"got {self.distance_range!r}"
            )
        if len(self.beam_spacing_deg) != 2 or not min(self.beam_spacing_deg) > 0:
            raise ValueError(
                f"beam_spacing_deg must be two positive angles, got {self.beam_spacing_deg!r}"
            )

    def generate(
        self,
        n: int,
        seed: int = 0,
        labels: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        class_weights: Sequence[float] | np.ndarray | None = None,
    ) -> RoadSignBatch:
        """Draw ``n`` signs.

        Parameters
        ----------
        n : int
            Number of signs.
        seed : int, default 0
            Seed of everything random in the batch.
        labels : sequence of int, optional
            GTSRB class ids to draw from (uniformly unless ``class_weights``); default all 43.
            To fix the label of every sample instead, use :meth:`render`.
        class_weights : sequence of float, optional
            Relative frequency of each entry of ``labels``.

        Returns
        -------
        RoadSignBatch
        """
        n = positive_int(n, "n")
        pool = np.arange(43) if labels is None else _as_label_array(labels, "labels")
        if pool.size == 0:
            raise ValueError("labels must name at least one GTSRB class, got an empty sequence")
        rng = np.random.default_rng(seed)
        if class_weights is None:
            p = None
        else:
            p = np.asarray(class_weights, dtype=float)
            if p.shape != pool.shape or (p < 0).any() or not p.sum() > 0:
                raise ValueError(
                    f"class_weights must be {pool.size} non-negative numbers with a positive sum, "
                    f"got {class_weights!r}"
                )
            p = p / p.sum()
        drawn = rng.choice(pool, size=n, p=p)
        return self._render(drawn, rng)

    def render(
        self, labels: Sequence[int] | np.ndarray | torch.Tensor, seed: int = 0
    ) -> RoadSignBatch:
        """Draw one sign for each given GTSRB label, in order.

        Examples
        --------
        >>> RoadSignSimulator(image_size=16).render([14, 14, 0], seed=0).shape_id.tolist()
        [3, 3, 0]
        """
        label_array = _as_label_array(labels, "labels")
        if label_array.size == 0:
            raise ValueError("labels must name at least one GTSRB class, got an empty sequence")
        return self._render(label_array, np.random.default_rng(seed))

    # ------------------------------------------------------------------ internals
    def _render(self, labels: np.ndarray, rng: np.random.Generator) -> RoadSignBatch:
        self._validate()
        n = labels.size
        shape = np.asarray(GTSRB_SHAPE_IDS)[labels]
        yaw = np.deg2rad(rng.uniform(-self.max_view_angle, self.max_view_angle, n))
        distance = rng.uniform(*self.distance_range, n)
        images, clouds, counts = [], [], []
        for start in range(0, n, _CHUNK):  # chunks bound the memory of the per-pixel arrays
            part = slice(start, start + _CHUNK)
            images.append(self._image(labels[part], shape[part], yaw[part], rng))
            cloud, count = self._lidar(shape[part], yaw[part], distance[part], rng)
            clouds.append(cloud)
            counts.append(count)
        image, lidar, returns = (np.concatenate(a) for a in (images, clouds, counts))
        location = np.isin(labels, SPEED_LIMIT_LABELS).astype(np.int64)
        if self.map_error > 0:
            flip = rng.random(n) < self.map_error
            location = np.where(flip, 1 - location, location)
        return RoadSignBatch(
            image=torch.from_numpy(image),
            lidar=torch.from_numpy(lidar),
            location=torch.from_numpy(location),
            label=torch.from_numpy(labels.astype(np.int64)),
            shape_id=torch.from_numpy(shape.astype(np.int64)),
            distance=torch.from_numpy(distance.astype(np.float32)),
            view_angle=torch.from_numpy(np.rad2deg(yaw).astype(np.float32)),
            num_returns=torch.from_numpy(returns.astype(np.int64)),
        )

    def _image(
        self, labels: np.ndarray, shape: np.ndarray, yaw: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        n, s = labels.size, self.image_size
        coords = (np.arange(s) + 0.5) / s * 2.0 - 1.0
        u = coords[None, None, :]  # right
        v = -coords[None, :, None]  # up (image rows go down)
        scale = rng.uniform(0.70, 0.92, n)[:, None, None]
        tx, ty = (rng.uniform(-0.08, 0.08, (2, n)))[:, :, None, None]
        roll = np.deg2rad(rng.uniform(-8, 8, n))[:, None, None]
        du, dv = (u - tx) / scale, (v - ty) / scale
        x = (np.cos(roll) * du + np.sin(roll) * dv) / np.cos(yaw)[:, None, None]
        y = -np.sin(roll) * du + np.cos(roll) * dv
        r = _shape_radius(shape, x, y)  # [N, S, S]
        pixel = 2.0 / (s * scale)  # one pixel in plate units: soft edges over about a pixel
        on_plate = _smoothstep((1.0 - r) / pixel)
        inner = 1.0 - _BORDER[shape][:, None, None]
        in_interior = _smoothstep((inner - r) / pixel)

        half = _GLYPH_HALF[shape][:, None, None]
        cols = _GLYPH_COLS_OF[labels][:, None, None]
        half_w = half * cols / _GLYPH_ROWS
        gy = y - _GLYPH_CENTER_Y[shape][:, None, None]
        col = np.floor((x + half_w) / (2 * half_w) * cols).astype(np.int64)
        row = np.floor((half - gy) / (2 * half) * _GLYPH_ROWS).astype(np.int64)
        inside = (col >= 0) & (col < cols) & (row >= 0) & (row < _GLYPH_ROWS)
        ink = _GLYPHS[
            labels[:, None, None], row.clip(0, _GLYPH_ROWS - 1), col.clip(0, _GLYPH_COLS - 1)
        ]
        ink = ink * inside
        diag = _DIAGONAL[labels][:, None, None] & (np.abs(x + y) < 0.12 * np.sqrt(2.0))
        ink = np.maximum(ink, diag) * (r < inner)

        lab = labels[:, None, None]
        sign = (
            _BORDER_RGB[lab] * (on_plate - in_interior)[..., None]
            + _INTERIOR_RGB[lab] * (in_interior * (1 - ink))[..., None]
            + np.where(diag[..., None], _BLACK, _INK_RGB[lab]) * (in_interior * ink)[..., None]
        )
        # Background: a random colour with a random linear gradient (sky, foliage, buildings).
        base = rng.uniform(0.1, 0.8, (n, 1, 1, 3))
        grad = rng.normal(0.0, 0.15, (n, 2, 1, 1, 1))
        background = base + grad[:, 0] * u[..., None] + grad[:, 1] * v[..., None]
        img = background * (1 - on_plate)[..., None] + sign
        # Lighting: global brightness, per-channel colour cast, a soft shadow gradient.
        bright = rng.uniform(*self.lighting, (n, 1, 1, 1))
        cast = rng.uniform(0.85, 1.15, (n, 1, 1, 3))
        shadow = 1.0 + rng.normal(0.0, 0.12, (n, 1, 1, 1)) * (u + v)[..., None]
        img = img * bright * cast * shadow
        img = img + rng.normal(0.0, self.pixel_noise, img.shape) if self.pixel_noise else img
        # The camera saturates: intensities outside [0, 1] are clipped by the sensor model.
        return np.ascontiguousarray(np.clip(img, 0.0, 1.0).transpose(0, 3, 1, 2), dtype=np.float32)

    def _lidar(
        self, shape: np.ndarray, yaw: np.ndarray, distance: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        n, p = shape.size, self.num_points
        radius = _PLATE_RADIUS_M[shape] * rng.uniform(0.9, 1.1, n)
        cos_yaw, sin_yaw = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        step_v, step_h = np.deg2rad(self.beam_spacing_deg)
        # A scan grid (beam rows x azimuth steps) in the plane facing the sensor, with a random
        # phase; its spacing grows with distance. Sized for the widest plate of the chunk.
        dv, dh = distance * step_v, distance * step_h
        k_v = int(np.ceil((2 * radius / dv).max())) + 2
        k_h = int(np.ceil((2 * radius * cos_yaw[:, 0] / dh).max())) + 2
        phase = rng.uniform(-0.5, 0.5, (2, n, 1))
        rows = ((np.arange(k_v) - (k_v - 1) / 2)[None] + phase[0]) * dv[:, None]  # [n, k_v], y
        cols = ((np.arange(k_h) - (k_h - 1) / 2)[None] + phase[1]) * dh[:, None]  # [n, k_h], x
        # A beam hitting the facing plane at x meets the yawed plate at x / cos(yaw).
        r = _shape_radius(
            shape,
            np.broadcast_to((cols / (cos_yaw * radius[:, None]))[:, None, :], (n, k_v, k_h)),
            np.broadcast_to((rows / radius[:, None])[:, :, None], (n, k_v, k_h)),
        )
        hit = ((r <= 1.0) & (rng.random(r.shape, dtype=np.float32) >= self.dropout)).reshape(n, -1)
        count = hit.sum(axis=1)
        lacking = np.flatnonzero(count < 3)
        if lacking.size:
            raise RuntimeError(
                f"{lacking.size} simulated signs got fewer than 3 LiDAR returns; lower dropout, "
                f"the beam spacing or the far distance (got dropout={self.dropout}, "
                f"beam_spacing_deg={self.beam_spacing_deg}, distance_range={self.distance_range})"
            )
        noise = rng.standard_normal(hit.shape, dtype=np.float32) * np.float32(self.range_noise)
        # Resample the returns to exactly P points (with replacement, random order): the j-th
        # return of sample i is flat[start[i] + j] in the row-major list of all hits.
        flat = np.flatnonzero(hit)
        start = np.cumsum(count) - count
        pick = np.floor(rng.random((n, p)) * count[:, None]).astype(np.int64)
        cell = flat[start[:, None] + pick] - (np.arange(n) * hit.shape[1])[:, None]
        iv, ih = np.divmod(cell, k_h)
        # Points on the plate in sensor coordinates (x right, y up, z away from the sensor).
        px = np.take_along_axis(cols, ih, axis=1)
        py = np.take_along_axis(rows, iv, axis=1)
        pz = distance[:, None] + px / cos_yaw * sin_yaw
        pts = np.stack([px, py, pz], axis=-1)
        # Range noise moves each return along its beam (the same return keeps the same noise).
        ray = pts / np.linalg.norm(pts, axis=-1, keepdims=True)
        pts = pts + ray * np.take_along_axis(noise, cell, axis=1)[..., None]
        return (pts - pts.mean(axis=1, keepdims=True)).astype(np.float32), count


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return np.clip(t + 0.5, 0.0, 1.0)


def _as_label_array(labels: Any, name: str) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError(f"{name} must be a 1-D sequence of int class ids, got {labels!r}")
    bad = arr[(arr < 0) | (arr > 42)]
    if bad.size:
        raise ValueError(
            f"{name} must be GTSRB class ids in 0..42, got {sorted(set(bad.tolist()))}"
        )
    return arr.astype(np.int64)


def simulate_road_signs(n: int, seed: int = 0, **kwargs: Any) -> RoadSignBatch:
    """Shortcut for ``RoadSignSimulator(**kwargs).generate(n, seed)``.

    Examples
    --------
    >>> simulate_road_signs(3, seed=0, image_size=16).label.shape
    torch.Size([3])
    """
    return RoadSignSimulator(**kwargs).generate(n, seed=seed)

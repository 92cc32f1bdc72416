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
table and the shape invariant itself live in :mod:`hierclass.data.gtsrb`. This module draws the
scenes and assembles the batch; the camera and the LiDAR are ``hierclass.data._roadsigns``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from hierclass._utils.checks import positive_int
from hierclass.data._roadsigns.camera import render_images
from hierclass.data._roadsigns.lidar import scan_plates

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


_CHUNK = 1024  # signs rendered at once


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
        camera = {
            "image_size": self.image_size,
            "pixel_noise": self.pixel_noise,
            "lighting": self.lighting,
        }
        scanner = {
            "num_points": self.num_points,
            "beam_spacing_deg": self.beam_spacing_deg,
            "range_noise": self.range_noise,
            "dropout": self.dropout,
        }
        images, clouds, counts = [], [], []
        for start in range(0, n, _CHUNK):  # chunks bound the memory of the per-pixel arrays
            part = slice(start, start + _CHUNK)
            images.append(render_images(labels[part], shape[part], yaw[part], rng, **camera))
            cloud, count = scan_plates(shape[part], yaw[part], distance[part], rng, **scanner)
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

"""The LiDAR: a scan grid swept over the (yawed) sign plate, with dropout and range noise,
resampled to a fixed number of points. It sees the plate's shape and nothing printed on it."""

from __future__ import annotations

import numpy as np

from hierclass.data._roadsigns.plate import PLATE_RADIUS_M, shape_radius


def scan_plates(
    shape: np.ndarray,
    yaw: np.ndarray,
    distance: np.ndarray,
    rng: np.random.Generator,
    *,
    num_points: int,
    beam_spacing_deg: tuple[float, float],
    range_noise: float,
    dropout: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Point clouds ``[N, P, 3]`` float32 (centred, metres) of plates of shapes ``shape`` [N] at
    yaw ``yaw`` [N] (radians) and ``distance`` [N] (metres), with the scan settings of
    :class:`~hierclass.data.RoadSignSimulator`; and the number of distinct returns ``[N]``
    before resampling to ``P`` points.

    Raises
    ------
    RuntimeError
        A plate got fewer than 3 returns (the settings are too sparse to see it).
    """
    n, p = shape.size, num_points
    radius = PLATE_RADIUS_M[shape] * rng.uniform(0.9, 1.1, n)
    cos_yaw, sin_yaw = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    step_v, step_h = np.deg2rad(beam_spacing_deg)
    # A scan grid (beam rows x azimuth steps) in the plane facing the sensor, with a random
    # phase; its spacing grows with distance. Sized for the widest plate of the chunk.
    dv, dh = distance * step_v, distance * step_h
    k_v = int(np.ceil((2 * radius / dv).max())) + 2
    k_h = int(np.ceil((2 * radius * cos_yaw[:, 0] / dh).max())) + 2
    phase = rng.uniform(-0.5, 0.5, (2, n, 1))
    rows = ((np.arange(k_v) - (k_v - 1) / 2)[None] + phase[0]) * dv[:, None]  # [n, k_v], y
    cols = ((np.arange(k_h) - (k_h - 1) / 2)[None] + phase[1]) * dh[:, None]  # [n, k_h], x
    # A beam hitting the facing plane at x meets the yawed plate at x / cos(yaw).
    r = shape_radius(
        shape,
        np.broadcast_to((cols / (cos_yaw * radius[:, None]))[:, None, :], (n, k_v, k_h)),
        np.broadcast_to((rows / radius[:, None])[:, :, None], (n, k_v, k_h)),
    )
    hit = ((r <= 1.0) & (rng.random(r.shape, dtype=np.float32) >= dropout)).reshape(n, -1)
    count = hit.sum(axis=1)
    lacking = np.flatnonzero(count < 3)
    if lacking.size:
        raise RuntimeError(
            f"{lacking.size} simulated signs got fewer than 3 LiDAR returns; lower dropout, "
            f"the beam spacing or the far distance (got dropout={dropout}, "
            f"beam_spacing_deg={beam_spacing_deg}, signs up to {distance.max():.1f} m away)"
        )
    noise = rng.standard_normal(hit.shape, dtype=np.float32) * np.float32(range_noise)
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

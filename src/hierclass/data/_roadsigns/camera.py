"""The camera: how each of the 43 GTSRB classes looks (colours, border, digits, pictograms)
and the rendering of image crops under random placement, lighting and pixel noise."""

from __future__ import annotations

import numpy as np

from hierclass.data._roadsigns.plate import shape_radius

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

# Border width as a fraction of the circumradius, per shape.
_BORDER = np.array([0.20, 0.28, 0.28, 0.08, 0.16])
# Half-height of the pictogram box in plate units, per shape (triangles have little room).
_GLYPH_HALF = np.array([0.42, 0.22, 0.20, 0.30, 0.40])
_GLYPH_CENTER_Y = np.array([0.0, -0.10, 0.12, 0.0, 0.0])
_GLYPH_ROWS, _GLYPH_COLS = 5, 11


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


def render_images(
    labels: np.ndarray,
    shape: np.ndarray,
    yaw: np.ndarray,
    rng: np.random.Generator,
    *,
    image_size: int,
    pixel_noise: float,
    lighting: tuple[float, float],
) -> np.ndarray:
    """Image crops ``[N, 3, H, W]`` float32 in [0, 1] of signs ``labels`` [N] (shapes ``shape``
    [N], yaw ``yaw`` [N] in radians); settings as in :class:`~hierclass.data.RoadSignSimulator`."""
    n, s = labels.size, image_size
    coords = (np.arange(s) + 0.5) / s * 2.0 - 1.0
    u = coords[None, None, :]  # right
    v = -coords[None, :, None]  # up (image rows go down)
    scale = rng.uniform(0.70, 0.92, n)[:, None, None]
    tx, ty = (rng.uniform(-0.08, 0.08, (2, n)))[:, :, None, None]
    roll = np.deg2rad(rng.uniform(-8, 8, n))[:, None, None]
    du, dv = (u - tx) / scale, (v - ty) / scale
    x = (np.cos(roll) * du + np.sin(roll) * dv) / np.cos(yaw)[:, None, None]
    y = -np.sin(roll) * du + np.cos(roll) * dv
    r = shape_radius(shape, x, y)  # [N, S, S]
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
    ink = _GLYPHS[labels[:, None, None], row.clip(0, _GLYPH_ROWS - 1), col.clip(0, _GLYPH_COLS - 1)]
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
    bright = rng.uniform(*lighting, (n, 1, 1, 1))
    cast = rng.uniform(0.85, 1.15, (n, 1, 1, 3))
    shadow = 1.0 + rng.normal(0.0, 0.12, (n, 1, 1, 1)) * (u + v)[..., None]
    img = img * bright * cast * shadow
    img = img + rng.normal(0.0, pixel_noise, img.shape) if pixel_noise else img
    # The camera saturates: intensities outside [0, 1] are clipped by the sensor model.
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0).transpose(0, 3, 1, 2), dtype=np.float32)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return np.clip(t + 0.5, 0.0, 1.0)

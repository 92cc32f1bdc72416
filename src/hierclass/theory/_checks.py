"""Argument checks of the Tsipras-setting modules (probabilities, counts, magnitudes)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _check_prob(p: float, name: str, *, open_low: float = 0.5) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(p).__name__}")
    if not open_low <= float(p) < 1.0:
        raise ValueError(f"{name} must be in [{open_low}, 1), got {p}")
    return float(p)


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bound}, got {value}")
    return int(value)


def _check_pos(value: Any, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        what = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {what}, got {value}")
    return float(value)

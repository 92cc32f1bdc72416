"""Small helpers shared by the data loaders (progress bars: hierclass._utils.progress)."""

from __future__ import annotations

from pathlib import Path

from hierclass._utils.progress import progress

__all__ = ["check_root", "progress"]


def check_root(root: object) -> Path:
    """Validate a data root argument (``str`` or ``Path``)."""
    if not isinstance(root, str | Path):
        raise TypeError(f"root must be a str or pathlib.Path, got {type(root).__name__}")
    return Path(root).expanduser()

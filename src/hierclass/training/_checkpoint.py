"""Atomic per-epoch checkpoints for the training loop (tensors and plain data only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "hierclass.fit/1"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (write a sibling file, then rename).

    A process killed while writing leaves the previous checkpoint intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, **state}, tmp)
    os.replace(tmp, path)


def load(path: Path, device: torch.device) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`; never unpickles code (``weights_only``)."""
    from hierclass.persistence import describe_load_error

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        # torch's message advises weights_only=False, which runs the file's code: never pass
        # that on.
        raise ValueError(
            f"{path} cannot be read as a hierclass.training.fit checkpoint "
            f"({describe_load_error(exc)})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a hierclass.training.fit checkpoint (format "
            f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}, "
            f"expected {FORMAT!r})"
        )
    return state

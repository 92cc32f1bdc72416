"""Atomic per-epoch checkpoints for the training loop (tensors and plain data only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

FORMAT = "hierclass.train/2"
#: Earlier formats this version resumes exactly (same seeding and state layout).
COMPATIBLE = ("hierclass.fit/1",)


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (write a sibling file, then rename).

    A process killed while writing leaves the previous checkpoint intact; the folder is
    created if needed.
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
            f"cannot read training checkpoint {path} ({describe_load_error(exc)}); delete it "
            "or choose another checkpoint path to start afresh"
        ) from None
    tag = state.get("format") if isinstance(state, dict) else None
    if tag == FORMAT or tag in COMPATIBLE:
        missing = {"config", "epoch", "model", "optimizer", "history"} - set(state)
        if not missing:
            return state
        raise ValueError(f"training checkpoint {path} lacks {sorted(missing)}; it is damaged")
    if isinstance(state, dict) and tag is None and {"config", "model", "history"} <= set(state):
        raise ValueError(
            f"{path} was written by an older hierclass adversarial trainer (no format tag), "
            "whose per-epoch seeding differs, so it cannot be resumed exactly; delete it or "
            "choose another checkpoint path to start afresh"
        )
    found = repr(tag) if tag is not None else type(state).__name__
    raise ValueError(
        f"{path} is not a hierclass training checkpoint (format {found}, expected {FORMAT!r})"
    )

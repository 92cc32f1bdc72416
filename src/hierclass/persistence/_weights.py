"""Reading an untrusted ``weights.pt`` with ``torch.load(weights_only=True)`` and sorting its
tensors into the saved models' and the nodes' own; why ``torch.load`` refused a file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from hierclass.persistence._format import WEIGHTS_FILE, fail, short


def describe_load_error(exc: BaseException) -> str:
    """The reason ``torch.load`` failed, without torch's advice to retry unsafely.

    torch's message for a file ``weights_only=True`` refuses suggests re-running with
    ``weights_only=False``, which executes whatever the file contains: a message from this
    library never passes that advice on.

    Examples
    --------
    >>> describe_load_error(RuntimeError(
    ...     "Weights only load failed. Re-running `torch.load` with `weights_only` set to "
    ...     "`False` will likely succeed. Please file an issue."))
    'Weights only load failed. Please file an issue.'
    """
    text = str(exc).strip() or type(exc).__name__
    kept = []
    for line in text.splitlines():
        # Drop every sentence that mentions turning weights_only off (torch words it several
        # ways across versions) and torch's pointers to its docs about doing so.
        sentences = re.split(r"(?<=[.!?])\s+", line.strip())
        sentences = [
            s
            for s in sentences
            if s
            and not re.search(r"weights_only|can still be loaded|\btrust", s, re.I)
            and not re.search(r"safe_globals|pytorch\.org/docs", s)
        ]
        if sentences:
            kept.append(" ".join(sentences))
    short = " ".join(kept).strip()
    if len(short) > 300:
        short = short[:297] + "..."
    return short or "the file is not a tensor archive torch.load(weights_only=True) accepts"


def read_weights(weights_path: Path, map_location: Any) -> dict[str, torch.Tensor]:
    """The name -> tensor dict in ``weights_path``, read without unpickling code."""
    try:
        weights = torch.load(weights_path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise fail(
            weights_path,
            f"cannot be read as saved tensors ({describe_load_error(exc)}); expected the "
            f"{WEIGHTS_FILE} written by save()",
        ) from None
    if not isinstance(weights, dict):
        raise fail(weights_path, f"holds a {type(weights).__name__}, expected a dict of tensors")
    bad = [k for k, v in weights.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise fail(weights_path, f"entries {short(bad)} are not name -> tensor pairs")
    return weights


def split_weights(
    weights: dict[str, torch.Tensor], spec: dict[str, Any], weights_path: Path
) -> tuple[list[dict[str, torch.Tensor]], dict[int, dict[str, torch.Tensor]]]:
    """Each model's state (``"<i>.<key>"``) and each node's own (``"node<id>.<key>"``)."""
    models: list[dict[str, torch.Tensor]] = [{} for _ in spec["models"]]
    nodes: dict[int, dict[str, torch.Tensor]] = {}
    stray = []
    for key, value in weights.items():
        head, _, rest = key.partition(".")
        if head.isdigit() and int(head) < len(models) and rest:
            models[int(head)][rest] = value
        elif head.startswith("node") and head[4:].isdigit() and rest:
            nodes.setdefault(int(head[4:]), {})[rest] = value
        else:
            stray.append(key)
    if stray:
        raise fail(
            weights_path, f"holds tensors {short(stray)} that belong to no saved model or node"
        )
    return models, nodes

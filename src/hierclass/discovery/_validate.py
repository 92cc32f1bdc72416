"""Boundary checks shared by the discovery routines."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}") from err


def check_embeddings(embeddings: Any) -> np.ndarray:
    arr = as_numpy(embeddings, "embeddings")
    if arr.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D [N, D], got shape {tuple(arr.shape)}; "
            "flatten them first (extract_embeddings(..., flatten=True) does)"
        )
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"embeddings must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"embeddings contain {int(bad.sum())} NaN/inf values in {rows.size} rows "
            f"(first rows: {rows[:10].tolist()}); expected finite values"
        )
    return arr


def check_labels(labels: Any, n: int, num_labels: int | None) -> tuple[np.ndarray, int]:
    arr = as_numpy(labels, "labels")
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {arr.dtype}")
    if arr.shape[0] != n:
        raise ValueError(f"labels has {arr.shape[0]} entries but there are {n} embeddings")
    if n and arr.min() < 0:
        raise ValueError(f"labels must be >= 0, got {sorted(set(arr[arr < 0].tolist()))}")
    if num_labels is None:
        num_labels = int(arr.max()) + 1 if n else 0
    elif isinstance(num_labels, bool) or not isinstance(num_labels, (int, np.integer)):
        raise TypeError(f"num_labels must be an int, got {type(num_labels).__name__}")
    num_labels = int(num_labels)
    if n and arr.max() >= num_labels:
        raise ValueError(
            f"labels {sorted(set(arr[arr >= num_labels].tolist()))} are >= num_labels "
            f"({num_labels})"
        )
    return arr.astype(np.int64, copy=False), num_labels


def check_k(k: Any, num_labels: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 2 <= int(k) <= num_labels:
        raise ValueError(
            f"k must be between 2 and the number of labels ({num_labels}), got {int(k)}"
        )
    return int(k)

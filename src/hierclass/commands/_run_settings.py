"""What a ``hierclass certify`` OUTFILE was computed with, kept beside it to guard resumes.

A resumed run appends to the rows already in OUTFILE, so those rows must come from the same
computation. ``OUTFILE.settings.json`` records sigma, N, N0, alpha, seed, the leaf
certificate, the data set and a fingerprint of the model's weights; a rerun that differs in
any of them, or a sidecar recording a setting this version does not (one written before a
setting was renamed), is refused in one line instead of mixing two runs' rows in one table.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_run_settings", "model_fingerprint", "settings_path"]


def settings_path(outfile: Path) -> Path:
    """``OUTFILE.settings.json``: the sidecar of ``outfile``."""
    return outfile.with_name(outfile.name + ".settings.json")


def _modules(model: Any) -> Iterable[torch.nn.Module]:
    if isinstance(model, torch.nn.Module):
        return [model]
    modules = getattr(model, "modules", None)  # a Hierarchy: its nodes' modules
    return list(modules()) if callable(modules) else []


def model_fingerprint(model: Any) -> str:
    """A digest of a model's classes and weights (names, dtypes, shapes and values).

    Two loads of the same checkpoint agree; a retrained or different model does not.
    A callable without weights is named by its qualified name.

    Examples
    --------
    >>> a = torch.nn.Linear(2, 2)
    >>> model_fingerprint(a) == model_fingerprint(a), model_fingerprint(a) == model_fingerprint(
    ...     torch.nn.Linear(2, 2))
    (True, False)
    """
    digest = hashlib.sha256()
    modules = list(_modules(model))
    if not modules:
        digest.update(f"{type(model).__module__}.{getattr(model, '__qualname__', '')}".encode())
    seen: set[tuple] = set()  # a model shared by several nodes is hashed once
    for module in modules:
        for name, tensor in module.state_dict().items():
            key = (name, tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))
            if key in seen:
                continue
            seen.add(key)
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            data = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


#: Settings an older hierclass recorded under another name: old -> new.
_RENAMED = {"method": "leaf_certificate"}


def _describe(key: str, value: Any) -> str:
    return f"{key} {value}" if key != "model" else f"model weights {value}"


def check_run_settings(outfile: Path, settings: dict[str, Any], resume: bool, write: bool) -> None:
    """Refuse to resume ``outfile`` under other settings; record the settings for next time.

    Parameters
    ----------
    outfile : Path
        The run's TSV.
    settings : dict
        JSON-serialisable settings of this run.
    resume : bool
        Whether the run resumes (``--no-resume`` replaces the file, and its sidecar).
    write : bool
        Write the sidecar (the process that writes OUTFILE; other ranks only check).

    Raises
    ------
    ValueError
        When ``outfile`` holds rows and its sidecar records other settings or a setting this
        version does not record (e.g. ``method``, now ``leaf_certificate``), or the sidecar
        is a link or unreadable.
    """
    sidecar = settings_path(outfile)
    if sidecar.is_symlink():
        raise ValueError(f"{sidecar} is a symbolic link; refusing to read or write through it")
    if resume and outfile.exists() and sidecar.exists():
        try:
            recorded = json.loads(sidecar.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            raise ValueError(
                f"{sidecar} (the settings {outfile.name} was computed with) is not readable "
                "JSON; delete it to resume anyway, or pass --no-resume"
            ) from None
        if not isinstance(recorded, dict):
            recorded = {}
        unknown = [k for k in recorded if k not in settings]
        if unknown:
            was = ", ".join(_describe(k, recorded[k]) for k in unknown)
            renamed = [f"{k} -> {_RENAMED[k]}" for k in unknown if k in _RENAMED]
            hint = f" (renamed since: {', '.join(renamed)})" if renamed else ""
            raise ValueError(
                f"{outfile} holds rows computed with {was}, which this version of hierclass "
                f"does not record{hint}: rename the key in {sidecar.name} if the setting is "
                "the same, pass --no-resume to replace the rows, or choose another OUTFILE"
            )
        changed = [k for k in settings if k in recorded and recorded[k] != settings[k]]
        if changed:
            was = ", ".join(_describe(k, recorded[k]) for k in changed)
            now = ", ".join(_describe(k, settings[k]) for k in changed)
            raise ValueError(
                f"{outfile} holds rows computed with {was}; this run asks for {now}: rerun "
                "with the recorded settings to resume it, pass --no-resume to replace it, or "
                "choose another OUTFILE"
            )
    if write:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_name(sidecar.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, sidecar)

"""Read the smoothed-model checkpoints researchers already have, with ``weights_only=True``.

Formats, told apart by their keys:

* ``"hierclass"``: ``{"spec", "state_dict"}``, written by
  ``hierclass.commands._loading.save_model_file``.
* ``"cohen"``: ``{"arch", "state_dict", "epoch", "optimizer"}`` of Cohen et al.'s
  ``train.py``, also written by SmoothAdv and consistency training. The state dict is that of
  ``Sequential(NormalizeLayer, net)``: keys ``1.conv1.weight`` (CIFAR) or
  ``1.module.conv1.weight`` (ImageNet, ``net`` a ``DataParallel``).
* ``"macer"``: ``{"net", "epoch"}`` of MACER; the network alone, trained without
  normalisation (so ``"none"`` is its default).
* ``"state_dict"``: a bare state dict (every value a tensor); the architecture must be named.

Nothing but tensors, numbers and strings is unpickled: a file that needs code to load is
refused by ``torch.load`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .smoothing_archs import SMOOTHING_ARCHS, smoothing_arch

__all__ = ["Checkpoint", "load_checkpoint", "model_from_blob", "read_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """A model read from a checkpoint file, with what the file said about it.

    Attributes
    ----------
    model : nn.Module
        In eval mode, on the requested device; inputs in [0, 1].
    format : str
        ``"hierclass"``, ``"cohen"``, ``"macer"`` or ``"state_dict"``.
    arch : str or None
        The architecture name (``None`` for hierclass files, whose spec names the model).
    normalization : str or None
        The key of :data:`hierclass.models.smoothing_archs.NORMALIZATIONS` applied.
    num_classes : int or None
        Outputs of the model's head.
    epoch : int or None
        The epoch the file records, if any.

    Examples
    --------
    >>> from hierclass.models import smoothing_arch
    >>> Checkpoint(smoothing_arch("cifar_resnet20"), "state_dict", "cifar_resnet20", "cifar10",
    ...            10).describe()
    'state_dict checkpoint: cifar_resnet20, 10 classes, normalization cifar10'
    """

    model: nn.Module
    format: str
    arch: str | None = None
    normalization: str | None = None
    num_classes: int | None = None
    epoch: int | None = None

    def describe(self) -> str:
        """One line for a log: format, architecture, classes, normalisation.

        Examples
        --------
        >>> from torch import nn
        >>> Checkpoint(nn.Linear(2, 2), "macer", "cifar_resnet110", "none", 10, 440).describe()
        'macer checkpoint: cifar_resnet110, 10 classes, normalization none, epoch 440'
        """
        if self.format == "hierclass":
            return f"hierclass model file ({type(self.model).__name__})"  # nothing to explain
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        return (
            f"{self.format} checkpoint: {self.arch}, {self.num_classes} classes, "
            f"normalization {self.normalization}{epoch}"
        )


def _first_line(err: BaseException) -> str:
    """The first line of ``err`` that does not advise ``weights_only=False`` (which would run
    the file's code: never passed on)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    lines = [ln for ln in lines if "weights_only" not in ln]
    return lines[0] if lines else type(err).__name__


def read_weights_only(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, any failure one ``ValueError`` naming the file.

    Examples
    --------
    >>> read_weights_only("no/such.pt")
    Traceback (most recent call last):
    ...
    ValueError: no/such.pt does not exist
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch fails in many ways on a damaged file
        raise ValueError(
            f"{path} cannot be read as a weights-only checkpoint: not a complete torch.save "
            f"file, or one that needs code to unpickle (torch.load: {_first_line(err)})"
        ) from None


def _format_of(blob: Any) -> str:
    if isinstance(blob, Mapping):
        if "spec" in blob and "state_dict" in blob:
            return "hierclass"
        if "state_dict" in blob and isinstance(blob["state_dict"], Mapping):
            return "cohen"
        if "net" in blob and isinstance(blob["net"], Mapping):
            return "macer"
        if blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
            return "state_dict"
    keys = f" with keys {sorted(map(str, blob))[:12]}" if isinstance(blob, Mapping) else ""
    raise ValueError(
        "expected a checkpoint: {'spec', 'state_dict'} (hierclass), {'arch', 'state_dict', ...} "
        "(Cohen et al., SmoothAdv, consistency training), {'net', ...} (MACER) or a bare "
        f"state dict of tensors; got a {type(blob).__name__}{keys}"
    )


def _strip(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Drop ``prefix`` from every key when every key carries it (a wrapper's name)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _network_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The network's keys, without ``Sequential``'s ``1.`` and ``DataParallel``'s ``module.``."""
    return _strip(_strip(state, "1."), "module.")


def _classes_in(state: Mapping[str, Any]) -> int | None:
    head = state.get("fc.weight")
    return int(head.shape[0]) if isinstance(head, torch.Tensor) and head.dim() == 2 else None


def _cifar_depth(state: Mapping[str, Any]) -> int | None:
    """``6n + 2`` of a projection-shortcut CIFAR ResNet's keys (``layer1.<i>.conv1.weight``)."""
    blocks = {k.split(".")[1] for k in state if k.startswith("layer1.") and k.count(".") >= 2}
    if "layer4.0.conv1.weight" in state or not blocks:
        return None
    return 6 * len(blocks) + 2


def _infer_arch(state: Mapping[str, Any], num_classes: int | None) -> str | None:
    depth = _cifar_depth(state)
    if depth in (20, 110):
        return (
            "imagenet32_resnet110"
            if depth == 110 and num_classes == 1000
            else f"cifar_resnet{depth}"
        )
    if "layer4.2.conv3.weight" in state and "layer4.3.conv1.weight" not in state:
        return "resnet50"
    return None


def model_from_blob(
    blob: Any,
    path: str | Path,
    *,
    arch: str | None = None,
    normalization: str | None = None,
    map_location: Any = "cpu",
) -> Checkpoint:
    """The :class:`Checkpoint` in an already-read file ``blob`` (see :func:`read_checkpoint`).

    ``path`` only names the file in errors; the CLI reads a file once and dispatches on it.

    Examples
    --------
    >>> from hierclass.models import smoothing_arch
    >>> state = smoothing_arch("cifar_resnet20")[1].state_dict()
    >>> model_from_blob({"net": state, "epoch": 1}, "macer.pth").arch
    'cifar_resnet20'
    """
    try:
        fmt = _format_of(blob)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if fmt == "hierclass":
        return _hierclass_model(blob, path, map_location)
    state = blob if fmt == "state_dict" else blob["state_dict" if fmt == "cohen" else "net"]
    state = _network_state(state)
    num_classes = _classes_in(state)
    saved_arch = blob.get("arch") if fmt == "cohen" else None
    if arch is not None and saved_arch is not None and arch != saved_arch:
        raise ValueError(f"{path} holds a {saved_arch!r} checkpoint; arch {arch!r} was asked for")
    arch = arch or saved_arch or (_infer_arch(state, num_classes) if fmt == "macer" else None)
    if arch is None:
        raise ValueError(
            f"{path} is a bare state dict that names no architecture; name it (--arch / arch=) "
            f"as one of {sorted(SMOOTHING_ARCHS)}"
        )
    if arch not in SMOOTHING_ARCHS:
        raise ValueError(
            f"{path}: architecture {arch!r} is not one hierclass can rebuild; expected one of "
            f"{sorted(SMOOTHING_ARCHS)} (or load the network yourself and pass it as a model)"
        )
    if normalization is None and fmt == "macer":
        normalization = "none"
    model = smoothing_arch(arch, num_classes=num_classes, normalization=normalization)
    try:
        model[1].load_state_dict(state)
    except RuntimeError as err:
        missing = set(model[1].state_dict()) - set(state)
        extra = set(state) - set(model[1].state_dict())
        detail = _first_line(err)
        if missing or extra:
            detail = (
                f"{len(missing)} missing keys (e.g. {sorted(missing)[:3]}), "
                f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})"
            )
        raise ValueError(f"{path}: the weights do not fit {arch} ({detail})") from None
    epoch = blob.get("epoch") if fmt in ("cohen", "macer") else None
    return Checkpoint(
        model=model.to(map_location).eval(),
        format=fmt,
        arch=arch,
        normalization=model_normalization(model),
        num_classes=num_classes,
        epoch=int(epoch) if isinstance(epoch, int) else None,
    )


def model_normalization(model: nn.Module) -> str | None:
    """The normalisation name a :func:`smoothing_arch` model was built with."""
    from ._base import read_spec

    spec = read_spec(model)
    return spec["kwargs"].get("normalization") if spec else None


def _hierclass_model(blob: Mapping[str, Any], path: str | Path, map_location: Any) -> Checkpoint:
    from .registry import build_from_spec

    try:
        model = build_from_spec(blob["spec"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: its spec cannot build a model ({_first_line(err)})") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: the saved weights do not fit the model its spec builds ({_first_line(err)})"
        ) from None
    return Checkpoint(model=model.to(map_location).eval(), format="hierclass")


def read_checkpoint(
    path: str | Path,
    *,
    arch: str | None = None,
    normalization: str | None = None,
    map_location: Any = "cpu",
) -> Checkpoint:
    """Read a checkpoint file of any supported format into a model.

    Parameters
    ----------
    path : str or Path
        The file (``.pth.tar``, ``.pth``, ``.pt``, ...), read with ``weights_only=True``.
    arch : str, optional
        The architecture (see :data:`~hierclass.models.smoothing_archs.SMOOTHING_ARCHS`):
        required for a bare state dict, checked against the file's for Cohen-format files,
        inferred from the keys for MACER's.
    normalization : str, optional
        Override the architecture's default input normalisation (e.g. ``"cifar10-center"``
        for SmoothAdv, whose files do not say which layer they were trained with).
    map_location : str or torch.device, default "cpu"
        Where the model is put.

    Returns
    -------
    Checkpoint
        ``.model`` in eval mode, plus the format, architecture and normalisation used.

    Examples
    --------
    >>> import os, tempfile
    >>> from hierclass.models import smoothing_arch
    >>> net = smoothing_arch("cifar_resnet20")
    >>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.pth.tar")
    >>> torch.save({"arch": "cifar_resnet20", "state_dict": net.state_dict(), "epoch": 90}, path)
    >>> read_checkpoint(path).describe()
    'cohen checkpoint: cifar_resnet20, 10 classes, normalization cifar10, epoch 90'
    """
    blob = read_weights_only(path, map_location=map_location)
    return model_from_blob(
        blob, path, arch=arch, normalization=normalization, map_location=map_location
    )


def load_checkpoint(path: str | Path, **kwargs: Any) -> nn.Module:
    """``read_checkpoint(path, **kwargs).model``: the model alone.

    Examples
    --------
    >>> import os, tempfile
    >>> from hierclass.models import smoothing_arch
    >>> path = os.path.join(tempfile.mkdtemp(), "macer.pth")
    >>> torch.save({"net": smoothing_arch("cifar_resnet20")[1].state_dict(), "epoch": 3}, path)
    >>> load_checkpoint(path)(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 10])
    """
    return read_checkpoint(path, **kwargs).model

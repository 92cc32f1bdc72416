"""The architectures of the randomized-smoothing literature, state-dict compatible with its files.

Cohen et al. (2019), Salman et al.'s SmoothAdv (2019), Jeong & Shin's consistency training
(2020) and MACER (Zhai et al., 2020) publish checkpoints of a few architectures:

* ``cifar_resnet20`` / ``cifar_resnet110``: He et al.'s CIFAR ResNet with *projection*
  shortcuts (a 1x1 convolution plus batch norm where the shape changes, "option B"), widths
  16/32/64, 8x8 average pooling and a linear head ``fc``. This is not hierclass's
  :class:`~hierclass.models.CifarResNet` (parameter-free option-A shortcuts): ResNet-20 has
  128 state-dict entries here against 116 there, so the files only load into this layout.
* ``imagenet32_resnet110``: the same ResNet-110 with 1000 outputs (SmoothAdv's pretraining on
  32x32 ImageNet), normalised with the CIFAR-10 statistics as in SmoothAdv's ``datasets.py``.
* ``resnet50``: torchvision's ResNet-50 (ImageNet).

Their training code wraps the network as ``Sequential(NormalizeLayer, net)``; the normalise
layer holds no state, so the saved keys read ``1.conv1.weight`` (and ``1.module.conv1.weight``
when ``net`` was a ``DataParallel``). :class:`SmoothingNet` reproduces that wrapping: the
normalisation is part of the model (inputs stay in [0, 1], the noise is added before it, as
the certificates assume) and its buffers are not saved, so the original state dicts load with
``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._base import Normalize, check_num_classes, record_spec

__all__ = [
    "NORMALIZATIONS",
    "SMOOTHING_ARCHS",
    "CohenCifarResNet",
    "SmoothingNet",
    "smoothing_arch",
]

# (mean, std) per channel, from the datasets.py of Cohen et al. and SmoothAdv.
_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

#: Input normalisations by name: ``(mean, std)``. The ``-center`` variants are SmoothAdv's
#: ``InputCenterLayer`` (subtract the mean, divide by nothing); ``"none"`` is MACER's.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "cifar10": _CIFAR10_STATS,
    "imagenet": _IMAGENET_STATS,
    "cifar10-center": (_CIFAR10_STATS[0], (1.0, 1.0, 1.0)),
    "imagenet-center": (_IMAGENET_STATS[0], (1.0, 1.0, 1.0)),
    "none": None,
}

#: Architecture name -> (default class count, default normalisation).
SMOOTHING_ARCHS: dict[str, tuple[int, str]] = {
    "cifar_resnet20": (10, "cifar10"),
    "cifar_resnet110": (10, "cifar10"),
    "imagenet32_resnet110": (1000, "cifar10"),
    "resnet50": (1000, "imagenet"),
}


class _Block(nn.Module):
    """Basic residual block with the original attribute names (conv1, bn1, ..., downsample)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CohenCifarResNet(nn.Module):
    """CIFAR ResNet with projection shortcuts, in the layout of the smoothing papers' files.

    Parameters
    ----------
    depth : int
        ``6n + 2`` (20, 110, ...).
    num_classes : int, default 10
        Outputs of the head ``fc``.

    Examples
    --------
    >>> net = CohenCifarResNet(20)
    >>> len(net.state_dict()), net(torch.rand(2, 3, 32, 32)).shape
    (128, torch.Size([2, 10]))
    """

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 (20, 110, ...), got {depth!r}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [_Block(in_planes, planes, stride)]
            blocks += [_Block(planes, planes, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, check_num_classes(num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SmoothingNet(nn.Sequential):
    """``Sequential(normalisation, net)``: the wrapping of the smoothing papers' checkpoints.

    The normalisation's buffers are not part of the state dict (the originals' layer holds
    none), so ``state_dict()`` keys are ``1.<name in net>`` exactly as in their files.

    Parameters
    ----------
    net : nn.Module
        The network proper, fed normalised inputs.
    mean : sequence of float or None
        Per-channel means subtracted from inputs in [0, 1]; ``None`` for no normalisation.
    std : sequence of float or None
        Per-channel divisors applied after the mean (``None`` with ``mean=None``).

    Examples
    --------
    >>> model = SmoothingNet(torch.nn.Linear(3, 2), [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    >>> list(model.state_dict())  # the normalisation's buffers are not saved
    ['1.weight', '1.bias']
    """

    def __init__(
        self, net: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> None:
        norm: nn.Module = nn.Identity()
        if mean is not None:
            norm = Normalize(mean, std, persistent=False)  # type: ignore[arg-type]
        super().__init__(norm, net)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, D]`` (the input of the head ``fc``).

        Examples
        --------
        >>> smoothing_arch("cifar_resnet20").embed(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 64])
        """
        features: list[torch.Tensor] = []
        handle = self[1].fc.register_forward_hook(lambda m, i, o: features.append(i[0]))
        try:
            self(x)
        finally:
            handle.remove()
        return features[0]


def _network(arch: str, num_classes: int) -> nn.Module:
    if arch == "resnet50":
        from torchvision.models import resnet50

        return resnet50(weights=None, num_classes=num_classes)
    depth = 20 if arch == "cifar_resnet20" else 110
    return CohenCifarResNet(depth, num_classes)


def smoothing_arch(
    arch: str, num_classes: int | None = None, normalization: str | None = None
) -> SmoothingNet:
    """A fresh smoothing-literature architecture wrapped with its input normalisation.

    Parameters
    ----------
    arch : str
        One of :data:`SMOOTHING_ARCHS`: ``cifar_resnet20``, ``cifar_resnet110``,
        ``imagenet32_resnet110``, ``resnet50``.
    num_classes : int, optional
        Outputs; the architecture's data set's by default (10 or 1000).
    normalization : str, optional
        A key of :data:`NORMALIZATIONS`; the architecture's data set's by default
        (``cifar10`` for the CIFAR and ImageNet-32 networks, ``imagenet`` for ``resnet50``).
        SmoothAdv's checkpoints were trained with ``cifar10-center``/``imagenet-center``.

    Returns
    -------
    SmoothingNet
        Maps ``[B, 3, H, W]`` inputs in [0, 1] to ``[B, num_classes]`` logits.

    Examples
    --------
    >>> model = smoothing_arch("cifar_resnet20", num_classes=4)
    >>> model(torch.rand(1, 3, 32, 32)).shape, next(iter(model.state_dict()))
    (torch.Size([1, 4]), '1.conv1.weight')
    """
    if arch not in SMOOTHING_ARCHS:
        raise ValueError(f"arch {arch!r} is not one of {sorted(SMOOTHING_ARCHS)}")
    default_classes, default_norm = SMOOTHING_ARCHS[arch]
    num_classes = default_classes if num_classes is None else check_num_classes(num_classes)
    normalization = default_norm if normalization is None else normalization
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization {normalization!r} is not one of {sorted(NORMALIZATIONS)}")
    stats = NORMALIZATIONS[normalization]
    mean, std = (None, None) if stats is None else stats
    model = SmoothingNet(_network(arch, num_classes), mean, std)
    spec: dict[str, Any] = dict(arch=arch, num_classes=num_classes, normalization=normalization)
    record_spec(model, "smoothing_arch", spec)
    return model

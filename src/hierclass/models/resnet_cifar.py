"""CIFAR ResNets of He et al. (2016, §4.2): 6n+2 layers, widths 16/32/64, option-A shortcuts.

ResNet-20 (n=3) has about 0.27M parameters and ResNet-110 (n=18) about 1.7M, the sizes the
original paper reports; the parameter-free option-A shortcut (stride-2 subsampling plus zero
channel padding) is what gives those counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SplitModel, check_num_classes, make_input_layer, record_spec


class _PadShortcut(nn.Module):
    """Option-A shortcut: subsample spatially by ``stride`` and zero-pad the new channels."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = _PadShortcut(stride, planes - in_planes)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(SplitModel):
    """He et al.'s CIFAR ResNet with ``depth = 6n + 2`` layers.

    Parameters
    ----------
    depth : int
        Total depth, ``6n + 2`` (20, 32, 44, 56, 110, ...).
    num_classes : int, default 10
        Number of output logits.
    in_channels : int, default 3
        Input channels.
    mean : sequence of float, optional
        Per-channel input normalisation applied inside ``layer_one``.
    std : sequence of float, optional
        Per-channel input normalisation applied inside ``layer_one``.

    Attributes
    ----------
    layer_one : nn.Module
        Normalisation (if any) and the first 3x3 convolution, ``[B, C, H, W] -> [B, 16, H, W]``.
    rest : nn.Sequential
        BatchNorm, ReLU, three stages, global average pooling and the linear head.

    Examples
    --------
    >>> import torch
    >>> model = CifarResNet(8, num_classes=5)
    >>> model(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        *,
        _spec_name: str = "cifar_resnet",
    ) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                f"depth must be 6n + 2 with n >= 1 (20, 32, 56, 110, ...), got {depth!r}"
            )
        n = (depth - 2) // 6
        self.depth = depth
        self.num_classes = num_classes
        self.layer_one = make_input_layer(
            nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), mean, std, in_channels
        )
        layers: list[nn.Module] = [nn.BatchNorm2d(16), nn.ReLU()]
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
        self.rest = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)
        kwargs = dict(num_classes=num_classes, in_channels=in_channels, mean=mean, std=std)
        if _spec_name == "cifar_resnet":
            kwargs = dict(depth=depth, **kwargs)
        record_spec(self, _spec_name, kwargs)


def resnet20(
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> CifarResNet:
    """ResNet-20 for 32x32 inputs (about 0.27M parameters).

    Examples
    --------
    >>> sum(p.numel() for p in resnet20(10).parameters())
    269722
    """
    return CifarResNet(20, num_classes, in_channels, mean, std, _spec_name="resnet20")


def resnet110(
    num_classes: int = 10,
    in_channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> CifarResNet:
    """ResNet-110 for 32x32 inputs (about 1.7M parameters), the smoothing baseline of Cohen et al.

    Examples
    --------
    >>> resnet110(10).depth
    110
    """
    return CifarResNet(110, num_classes, in_channels, mean, std, _spec_name="resnet110")

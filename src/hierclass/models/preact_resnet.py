"""Pre-activation ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks", 2016).

The CIFAR variant common in adversarial-training work (3x3 stem, no max-pool, widths
64/128/256/512, about 11.2M parameters for 10 classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SplitModel, check_num_classes, make_input_layer, record_spec


class _PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # The projection shortcut sees the pre-activated input, as in the original design.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(SplitModel):
    """Pre-activation ResNet-18 for 32x32 images.

    Parameters
    ----------
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
        Normalisation (if any) and the 3x3 stem convolution, ``[B, C, H, W] -> [B, 64, H, W]``.
    rest : nn.Sequential
        Four stages of two pre-activation blocks, final BN + ReLU, global average pool, linear.

    Examples
    --------
    >>> import torch
    >>> model = PreActResNet18(num_classes=3).eval()
    >>> model(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        self.num_classes = num_classes
        self.layer_one = make_input_layer(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), mean, std, in_channels
        )
        layers: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(_PreActBlock(in_planes, planes, stride))
            layers.append(_PreActBlock(planes, planes, 1))
            in_planes = planes
        layers += [
            nn.BatchNorm2d(512),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(512, num_classes),
        ]
        self.rest = nn.Sequential(*layers)
        record_spec(
            self,
            "preact_resnet18",
            dict(num_classes=num_classes, in_channels=in_channels, mean=mean, std=std),
        )

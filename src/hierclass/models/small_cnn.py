"""The paper's small CNN for MNIST (§V-A): three convolutional layers and one linear layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hierclass._utils.checks import positive_int

from ._base import SplitModel, check_num_classes, make_input_layer, record_spec


class SmallCNN(SplitModel):
    """Three 3x3 convolutions (ReLU, two 2x2 max-pools) followed by one linear layer.

    Layout: ``conv(c0) -> ReLU -> conv(c1) -> ReLU -> maxpool -> conv(c2) -> ReLU -> maxpool
    -> flatten -> linear(num_classes)``, the "3 convolutional layers followed by a FC layer"
    of the paper's MNIST and speaker experiments (softmax is left to the loss / the caller).

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    in_channels : int, default 1
        Channels of the input images.
    image_size : int, default 28
        Height and width of the (square) input images; at least 4 (two 2x2 pools).
    channels : sequence of 3 int, default (32, 64, 64)
        Widths of the three convolutions.
    mean : sequence of float, optional
        Per-channel input normalisation applied inside ``layer_one``.
    std : sequence of float, optional
        Per-channel input normalisation applied inside ``layer_one``.

    Attributes
    ----------
    layer_one : nn.Module
        Normalisation (if any) and the first convolution; maps ``[B, C, S, S]`` to
        ``[B, channels[0], S, S]``.
    rest : nn.Sequential
        Everything after; ``model(x) == model.rest(model.layer_one(x))``.

    Examples
    --------
    >>> import torch
    >>> model = SmallCNN(10, image_size=8)
    >>> model(torch.rand(4, 1, 8, 8)).shape
    torch.Size([4, 10])
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        image_size: int = 28,
        channels: Sequence[int] = (32, 64, 64),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        in_channels = positive_int(in_channels, "in_channels")
        if not isinstance(image_size, int) or image_size < 4:
            raise ValueError(f"image_size must be an int >= 4, got {image_size!r}")
        channels = tuple(channels)
        if len(channels) != 3 or not all(isinstance(c, int) and c > 0 for c in channels):
            raise ValueError(f"channels must be three positive ints, got {channels!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        c0, c1, c2 = channels
        self.layer_one = make_input_layer(
            nn.Conv2d(in_channels, c0, 3, padding=1), mean, std, in_channels
        )
        side = image_size // 4
        self.rest = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c0, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side * side, num_classes),
        )
        record_spec(
            self,
            "small_cnn",
            dict(
                num_classes=num_classes,
                in_channels=in_channels,
                image_size=image_size,
                channels=channels,
                mean=mean,
                std=std,
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"SmallCNN expects input of shape [B, {expected[0]}, {expected[1]}, "
                f"{expected[2]}], got {list(x.shape)}"
            )
        return super().forward(x)

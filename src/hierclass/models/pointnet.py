"""PointNet (Qi et al., 2017) classifier for point clouds ``[B, N, in_dim]``.

A shared per-point MLP (1x1 convolutions with BatchNorm) followed by a symmetric max-pool over
points and an MLP head. The input and feature transform networks (T-nets) of the original
paper are deliberately left out: the road-sign shape task needs no learned alignment, and
without them the model stays small and its first layer is a plain linear map (what YOPO's
layer-one split expects).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from hierclass._utils.checks import positive_int

from ._base import SplitModel, check_num_classes, make_input_layer, record_spec


class _PointsFirst(nn.Module):
    """``[B, N, D] -> [B, D, N]`` so that 1x1 convolutions act as a shared per-point MLP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class _MaxOverPoints(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=2)


class PointNet(SplitModel):
    """Shared per-point MLP, max-pool over points, MLP head (no T-nets).

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    in_dim : int, default 3
        Coordinates per point.
    point_dims : sequence of int, default (64, 128, 1024)
        Widths of the shared per-point layers; the last one is the global feature size.
    head_dims : sequence of int, default (512, 256)
        Hidden widths of the classification head.
    dropout : float, default 0.3
        Dropout before the last linear layer (training mode only).
    mean : sequence of float, optional
        Per-coordinate normalisation applied inside ``layer_one``.
    std : sequence of float, optional
        Per-coordinate normalisation applied inside ``layer_one``.

    Attributes
    ----------
    layer_one : nn.Module
        Normalisation (if any), transpose and the first shared linear layer,
        ``[B, N, in_dim] -> [B, point_dims[0], N]``.
    rest : nn.Sequential
        The remaining per-point layers, max-pool, head.

    Notes
    -----
    The output of a sample depends only on its own points (max-pool is per sample) and is
    invariant to the order of the points.

    Examples
    --------
    >>> import torch
    >>> model = PointNet(4, point_dims=(8, 16), head_dims=(8,)).eval()
    >>> model(torch.rand(2, 50, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        num_classes: int,
        in_dim: int = 3,
        point_dims: Sequence[int] = (64, 128, 1024),
        head_dims: Sequence[int] = (512, 256),
        dropout: float = 0.3,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        num_classes = check_num_classes(num_classes)
        point_dims, head_dims = tuple(point_dims), tuple(head_dims)
        in_dim = positive_int(in_dim, "in_dim")
        if not point_dims or not all(isinstance(d, int) and d > 0 for d in point_dims):
            raise ValueError(
                f"point_dims must be a non-empty list of positive ints, got {point_dims}"
            )
        if not all(isinstance(d, int) and d > 0 for d in head_dims):
            raise ValueError(f"head_dims must be positive ints, got {head_dims}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.num_classes = num_classes
        self.in_dim = in_dim
        # Transpose first so that Normalize (channel dim 1) and the 1x1 conv see [B, D, N].
        conv = make_input_layer(nn.Conv1d(in_dim, point_dims[0], 1), mean, std, in_dim)
        self.layer_one = nn.Sequential(
            OrderedDict(points_first=_PointsFirst(), norm=conv.norm, first=conv.first)
        )
        layers: list[nn.Module] = [nn.BatchNorm1d(point_dims[0]), nn.ReLU()]
        for a, b in zip(point_dims[:-1], point_dims[1:]):
            layers += [nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU()]
        layers.append(_MaxOverPoints())
        width = point_dims[-1]
        for h in head_dims:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, num_classes))
        self.rest = nn.Sequential(*layers)
        record_spec(
            self,
            "pointnet",
            dict(
                num_classes=num_classes,
                in_dim=in_dim,
                point_dims=point_dims,
                head_dims=head_dims,
                dropout=dropout,
                mean=mean,
                std=std,
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.in_dim:
            raise ValueError(
                f"PointNet expects point clouds of shape [B, N, {self.in_dim}], got {list(x.shape)}"
            )
        return super().forward(x)

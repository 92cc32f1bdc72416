"""Models used by hierclass: the paper's small CNN, CIFAR ResNets, PreAct-ResNet-18, PointNet.

The architectures of the smoothing literature's checkpoints (Cohen et al., SmoothAdv, MACER)
are in ``hierclass.models.smoothing_archs``, and :func:`read_checkpoint` reads their files
(``hierclass.models.checkpoints``).

Every model maps inputs in [0, 1] to logits (normalisation lives inside the model) and exposes
``model.layer_one`` and ``model.rest`` with ``model(x) == model.rest(model.layer_one(x))``.
:func:`build` and :func:`model_spec` rebuild models by name from a JSON spec.
"""

from __future__ import annotations

from ._base import Normalize, SplitModel
from .checkpoints import Checkpoint, load_checkpoint, read_checkpoint
from .pointnet import PointNet
from .preact_resnet import PreActResNet18
from .registry import available_models, build, build_from_spec, model_spec, register_model
from .resnet_cifar import CifarResNet, resnet20, resnet110
from .small_cnn import SmallCNN
from .smoothing_archs import (
    NORMALIZATIONS,
    SMOOTHING_ARCHS,
    CohenCifarResNet,
    SmoothingNet,
    smoothing_arch,
)

__all__ = [
    "NORMALIZATIONS",
    "SMOOTHING_ARCHS",
    "Checkpoint",
    "CifarResNet",
    "CohenCifarResNet",
    "Normalize",
    "PointNet",
    "PreActResNet18",
    "SmallCNN",
    "SmoothingNet",
    "SplitModel",
    "available_models",
    "build",
    "build_from_spec",
    "load_checkpoint",
    "model_spec",
    "read_checkpoint",
    "register_model",
    "resnet20",
    "resnet110",
    "smoothing_arch",
]

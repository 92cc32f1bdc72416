"""Models used by hierclass: the paper's small CNN, CIFAR ResNets, PreAct-ResNet-18, PointNet.

Every model maps inputs in [0, 1] to logits (normalisation lives inside the model) and exposes
``model.layer_one`` and ``model.rest`` with ``model(x) == model.rest(model.layer_one(x))``.
:func:`build` and :func:`model_spec` rebuild models by name from a JSON spec.
"""

from __future__ import annotations

from ._base import Normalize, SplitModel
from .pointnet import PointNet
from .preact_resnet import PreActResNet18
from .registry import available_models, build, build_from_spec, model_spec, register_model
from .resnet_cifar import CifarResNet, resnet20, resnet110
from .small_cnn import SmallCNN

__all__ = [
    "CifarResNet",
    "Normalize",
    "PointNet",
    "PreActResNet18",
    "SmallCNN",
    "SplitModel",
    "available_models",
    "build",
    "build_from_spec",
    "model_spec",
    "register_model",
    "resnet20",
    "resnet110",
]

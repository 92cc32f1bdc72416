"""Training: plain / Gaussian-noise training (:func:`fit`), PGD and YOPO adversarial training.

* :func:`fit`, :func:`evaluate_accuracy`, :class:`TrainHistory` -- :mod:`.standard`.
* :func:`fit_adversarial`, :class:`AdversarialHistory` -- :mod:`.adversarial` (imported on
  first use).
* :func:`fit_yopo`, :func:`yopo_step` -- :mod:`.yopo` (imported on first use).
"""

from __future__ import annotations

from hierclass._lazy import lazy_exports

from .history import TrainHistory
from .standard import evaluate_accuracy, fit

# Adversarial trainers pull in the attacks package; resolved lazily on attribute access.
_LAZY = {
    "AdversarialHistory": "hierclass.training.adversarial",
    "fit_adversarial": "hierclass.training.adversarial",
    "fit_yopo": "hierclass.training.yopo",
    "yopo_step": "hierclass.training.yopo",
}

__all__ = [
    "AdversarialHistory",
    "TrainHistory",
    "evaluate_accuracy",
    "fit",
    "fit_adversarial",
    "fit_yopo",
    "yopo_step",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)

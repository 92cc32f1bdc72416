"""Training: one epoch loop, four steps on it.

* :func:`fit` -- standard training, Gaussian-noise training (``noise_sigma``, for models to
  be smoothed) and any batch transformation (``perturb``);
* :func:`fit_adversarial` -- PGD adversarial training (imported on first use);
* :func:`fit_yopo` -- YOPO-m-n adversarial training (imported on first use);
* :func:`evaluate_accuracy` -- clean or robust accuracy;
* :class:`TrainHistory` -- what every trainer returns; :class:`TrainingDiverged` and
  :class:`ChanceLevelWarning` -- how a run that learned nothing is reported.

Where things live: :mod:`.loop` (seeding, schedule, checkpoint and resume, progress,
evaluation), :mod:`.steps` (cross-entropy with noise, PGD), :mod:`.yopo` (YOPO's step).
"""

from __future__ import annotations

from hierclass._lazy import lazy_exports

from .evaluate import evaluate_accuracy
from .history import TrainHistory
from .loop import ChanceLevelWarning, TrainingDiverged
from .standard import fit

# Adversarial trainers pull in the attacks package; resolved lazily on attribute access.
_LAZY = {
    "fit_adversarial": "hierclass.training.adversarial",
    "fit_yopo": "hierclass.training.yopo",
}

__all__ = [
    "ChanceLevelWarning",
    "TrainHistory",
    "TrainingDiverged",
    "evaluate_accuracy",
    "fit",
    "fit_adversarial",
    "fit_yopo",
]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)

"""The per-epoch record every trainer returns (:func:`~hierclass.training.fit`,
:func:`~hierclass.training.fit_adversarial`, :func:`~hierclass.training.fit_yopo`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainHistory:
    """Per-epoch record of a training run (one entry per completed epoch).

    Attributes
    ----------
    epoch : list of int
        1-based epoch numbers.
    loss : list of float
        Mean cross-entropy over the epoch's training inputs, as trained on (after Gaussian
        noise, a ``perturb`` hook or the adversarial step).
    accuracy : list of float
        Accuracy on those same training inputs, measured before each batch's update (for
        adversarial training: on the adversarial examples).
    eval_accuracy : list of float
        Clean accuracy on the evaluation set after the epoch (``nan`` without one).
    eval_adversarial_accuracy : list of float
        Accuracy on the evaluation set under the evaluation attack (``nan`` without one).
    lr : list of float
        Learning rate used during the epoch.
    seconds : list of float
        Wall time of the epoch's training (evaluation excluded).
    config : dict
        The run's settings; a resumed run must match them.

    The adversarial trainers' older field names still read: ``train_adversarial_accuracy``
    (``accuracy``), ``clean_accuracy`` (``eval_accuracy``) and ``adversarial_accuracy``
    (``eval_adversarial_accuracy``).

    Examples
    --------
    >>> h = TrainHistory()
    >>> h.epochs_completed, h.total_seconds, h.as_dict()["loss"]
    (0, 0.0, [])
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    eval_adversarial_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_completed(self) -> int:
        """Number of epochs recorded."""
        return len(self.epoch)

    @property
    def total_seconds(self) -> float:
        """Total training wall time (evaluation excluded)."""
        return float(sum(self.seconds))

    # The adversarial trainers' names for the same series.
    @property
    def train_adversarial_accuracy(self) -> list[float]:
        """``accuracy`` under the adversarial trainers' name."""
        return self.accuracy

    @property
    def clean_accuracy(self) -> list[float]:
        """``eval_accuracy`` under the adversarial trainers' name."""
        return self.eval_accuracy

    @property
    def adversarial_accuracy(self) -> list[float]:
        """``eval_adversarial_accuracy`` under the adversarial trainers' name."""
        return self.eval_adversarial_accuracy

    def append(
        self,
        *,
        epoch: int,
        loss: float,
        accuracy: float,
        lr: float,
        seconds: float,
        eval_accuracy: float = math.nan,
        eval_adversarial_accuracy: float = math.nan,
    ) -> None:
        """Record one finished epoch."""
        self.epoch.append(epoch)
        self.loss.append(loss)
        self.accuracy.append(accuracy)
        self.eval_accuracy.append(eval_accuracy)
        self.eval_adversarial_accuracy.append(eval_adversarial_accuracy)
        self.lr.append(lr)
        self.seconds.append(seconds)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy (JSON friendly; also what checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainHistory:
        """Rebuild from :meth:`as_dict` output; series a older checkpoint lacks read ``nan``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(state) - known)
        if unknown:
            raise ValueError(f"unknown training-history fields {unknown}; expected {sorted(known)}")
        history = cls(**state)
        n = len(history.epoch)
        for name in ("eval_accuracy", "eval_adversarial_accuracy"):
            series = getattr(history, name)
            if len(series) < n:
                series.extend([math.nan] * (n - len(series)))
        return history


#: The adversarial trainers return the same record.
AdversarialHistory = TrainHistory

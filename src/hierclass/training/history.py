"""The per-epoch record returned by :func:`hierclass.training.fit`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainHistory:
    """Per-epoch record of a training run (one entry per completed epoch).

    Attributes
    ----------
    epoch : list of int
        1-based epoch numbers.
    loss : list of float
        Mean cross-entropy over the epoch's training inputs, as trained on (after
        ``perturb`` and Gaussian noise).
    accuracy : list of float
        Accuracy on those same training inputs, measured before each batch's update.
    eval_accuracy : list of float
        Accuracy on the evaluation set after the epoch (``nan`` without one).
    lr : list of float
        Learning rate used during the epoch.
    seconds : list of float
        Wall time of the epoch's training (evaluation excluded).
    config : dict
        The run's settings; a resumed run must match them.

    Examples
    --------
    >>> h = TrainHistory()
    >>> h.epochs_completed, h.as_dict()["loss"]
    (0, [])
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_completed(self) -> int:
        """Number of epochs recorded."""
        return len(self.epoch)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy (JSON friendly; also what checkpoints store)."""
        return asdict(self)

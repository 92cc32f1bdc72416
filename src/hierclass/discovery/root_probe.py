"""Root learnability by a linear probe: the held-out accuracy of a logistic-regression root
(scikit-learn) on given features, a cheap stand-in for training a root network per candidate."""

from __future__ import annotations

from typing import Any

import numpy as np

from hierclass.discovery._validate import as_numpy, check_labels
from hierclass.partition import LabelPartition


class LinearProbeRootScorer:
    """Root learnability: held-out accuracy of a logistic-regression root on given features.

    A cheap stand-in for training a root network per candidate: features can be flattened
    inputs or a network's embeddings. The probe is fitted on ``(x_train, class_of(y_train))``
    and scored on the held-out pair.

    Parameters
    ----------
    x_train : array-like or Tensor [N, ...]
        Features (flattened to ``[N, D]`` here, as a probe reads vectors).
    x_val : array-like or Tensor [N, ...]
        Features (flattened to ``[N, D]`` here, as a probe reads vectors).
    y_train : array-like or Tensor [N]
        Fine labels.
    y_val : array-like or Tensor [N]
        Fine labels.
    max_iter : int, default 500
    C : float, default 1.0
        Inverse regularisation strength.

    Examples
    --------
    >>> import numpy as np
    >>> from hierclass.partition import LabelPartition
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 30)
    >>> x = np.array([[0.0], [0.1], [3.0], [3.1]])[y] + 0.05 * rng.standard_normal((120, 1))
    >>> scorer = LinearProbeRootScorer(x[::2], y[::2], x[1::2], y[1::2])
    >>> scorer(LabelPartition([[0, 1], [2, 3]]))
    1.0
    """

    def __init__(
        self,
        x_train: Any,
        y_train: Any,
        x_val: Any,
        y_val: Any,
        *,
        max_iter: int = 500,
        C: float = 1.0,
    ) -> None:
        self.x_train = self._features(x_train, "x_train")
        self.x_val = self._features(x_val, "x_val")
        self.y_train, _ = check_labels(y_train, self.x_train.shape[0], None)
        self.y_val, _ = check_labels(y_val, self.x_val.shape[0], None)
        if self.x_train.shape[1] != self.x_val.shape[1]:
            raise ValueError(
                f"x_train has {self.x_train.shape[1]} features, x_val {self.x_val.shape[1]}"
            )
        self.max_iter = max_iter
        self.C = C

    @staticmethod
    def _features(x: Any, name: str) -> np.ndarray:
        arr = as_numpy(x, name)
        if arr.ndim < 2:
            raise ValueError(f"{name} must be [N, ...] with a feature dimension, got {arr.shape}")
        arr = arr.reshape(arr.shape[0], -1).astype(np.float64)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
        return arr

    def __call__(self, partition: LabelPartition) -> float:
        """Held-out accuracy of the probe root for ``partition``."""
        from sklearn.linear_model import LogisticRegression

        target = np.asarray(partition.class_of(self.y_train))
        probe = LogisticRegression(max_iter=self.max_iter, C=self.C)
        probe.fit(self.x_train, target)
        return float((probe.predict(self.x_val) == partition.class_of(self.y_val)).mean())

"""What an attack follows and who judges it: a hierarchy's differentiable surrogate.

A hierarchy routes with a hard ``argmax``: its output (zeros outside the chosen class) has no
gradient towards another route, so an attack on it alone can only push a sample around inside
the class it is already in. The surrogate ``log P(label) = log P(route) + log P(label | leaf)``
(``h.soft_forward``) is differentiable everywhere and rises where the tree may switch route;
the attack follows its gradient, and the real tree judges every iterate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hierclass.batch import Batch, batch_size
from hierclass.hierarchy import Hierarchy

_LOG_FLOOR = 1e-30  # keeps log(soft_forward) finite where a probability underflows to 0


class Surrogate(nn.Module):
    """Differentiable scores ``forward(x) -> [B, K]`` plus the judge of the model they stand for.

    An :class:`~hierclass.attacks.Attack` given a ``Surrogate`` follows the gradient of its
    scores and calls :meth:`judge` to decide whether a point fools the real model.
    """

    #: Number of labels, when known before the first forward (labels are checked against it).
    num_classes: int | None = None

    def judge(self, x: torch.Tensor) -> torch.Tensor:
        """The real model's labels ``[B]`` for ``x`` (no gradient needed)."""
        raise NotImplementedError


class TreeSurrogate(Surrogate):
    """``log h.soft_forward`` over all labels, judged by ``h.predict``.

    ``key`` names the modality perturbed (``None``: a plain-tensor batch). ``rows_of`` holds
    the batch's other modalities when some node reads them (an unperturbed router, say); the
    surrogate then needs exactly that batch's rows, so an attack that drops rows cannot run on
    it.
    """

    def __init__(self, h: Hierarchy, key: str | None = None, rows_of: Batch | None = None):
        super().__init__()
        self.h = h
        # the nodes as submodules: modes, parameters and channels-last copies reach them
        self.nodes = nn.ModuleList(n for _, n in h.nodes() if isinstance(n, nn.Module))
        self.key = key
        self.rows_of = rows_of
        self.num_classes = h.num_labels
        #: tied to its batch's rows: it cannot run on a sub-batch (not even a one-row probe)
        self.whole_batch_only = rows_of is not None

    def _full(self, xm: torch.Tensor) -> Batch:
        if self.rows_of is None:
            return xm if self.key is None else {self.key: xm}
        if xm.shape[0] != batch_size(self.rows_of):
            raise ValueError(
                f"the joint attack's surrogate reads modalities besides {self.key!r}, so it "
                f"needs all {batch_size(self.rows_of)} rows of its batch but the attack passed "
                f"{xm.shape[0]}; an attack that drops rows (PGD early_stop=True) cannot run on it"
            )
        return {**self.rows_of, self.key: xm}

    def forward(self, xm: torch.Tensor) -> torch.Tensor:
        return self.h.soft_forward(self._full(xm)).clamp_min(_LOG_FLOOR).log()

    def judge(self, xm: torch.Tensor) -> torch.Tensor:
        return self.h.predict(self._full(xm))


def as_surrogate(model: Any) -> Any:
    """What an attack on ``model`` follows: a hierarchy's surrogate, else the model itself."""
    if isinstance(model, Hierarchy):
        return TreeSurrogate(model)
    return model

"""What an attack follows and who judges it: a hierarchy's differentiable surrogate.

A hierarchy routes with a hard ``argmax``: its output (zeros outside the chosen class) has no
gradient towards another route, so an attack on it alone can only push a sample around inside
the class it is already in. The surrogate ``log P(label) = log P(route) + log P(label | leaf)``
(``h.soft_forward``) is differentiable everywhere and rises where the tree may switch route;
the attack follows its gradient, and the real tree judges every iterate. In eval mode the
verdict comes from the same pass (:meth:`~hierclass.Hierarchy.soft_forward_and_predict`: every
node on every sample, no routed sub-batches), so an attack step costs one pass and no host
synchronisation.
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

    def judge(self, x: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        """The real model's labels ``[B]`` for ``x`` (no gradient needed).

        ``scores``: what this surrogate's forward pass returned for ``x``, if the caller has
        it (a surrogate may have judged ``x`` in that pass already).
        """
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
        #: (scores, labels) of the last eval-mode forward pass, for :meth:`judge`
        self._verdict: tuple[torch.Tensor, torch.Tensor] | None = None

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
        x = self._full(xm)
        if self.h.training:  # routed sub-batches normalise differently: predict judges
            self._verdict = None
            return self.h.soft_forward(x).clamp_min(_LOG_FLOOR).log()
        # eval mode: the tree's labels come from this pass (no second pass, no host sync)
        probs, labels = self.h.soft_forward_and_predict(x)
        scores = probs.clamp_min(_LOG_FLOOR).log()
        self._verdict = (scores.detach(), labels)
        return scores

    def judge(self, xm: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        if scores is not None and self._verdict is not None:
            seen, labels = self._verdict
            # the very tensor the last forward returned (held here, so its memory is not
            # reused), unchanged since: its labels are the tree's verdict on xm
            same = scores.data_ptr() == seen.data_ptr() and scores.shape == seen.shape
            if same and scores._version == seen._version:
                return labels
        return self.h.predict(self._full(xm))


def as_surrogate(model: Any) -> Any:
    """What an attack on ``model`` follows: a hierarchy's surrogate, else the model itself."""
    if isinstance(model, Hierarchy):
        return TreeSurrogate(model)
    return model

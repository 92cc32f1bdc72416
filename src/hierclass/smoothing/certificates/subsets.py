"""Label subsets: validation, enumeration (Fig. 4) and their vote head.

One set of noisy logits gives the votes of ``argmax_{c in L} logits_c`` for every subset
``L`` at once: the logits are masked per subset and reduced in one vectorised argmax, so
certifying hundreds of subsets costs a small fraction of the forward pass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = ["SubsetHead", "check_subsets", "subsets_of_size"]

#: Elements of the ``[B, S, C]`` masked tensor processed at once (bounds the head's memory).
_CHUNK_ELEMENTS = 2**22


def check_subsets(
    subsets: Iterable[Sequence[int]], num_classes: int
) -> tuple[tuple[int, ...], ...]:
    """Validate label subsets: non-empty, distinct labels inside ``0..num_classes-1``.

    Returns them as sorted tuples, in the given order (duplicate subsets are kept).

    Examples
    --------
    >>> check_subsets([[3, 1], (0,)], 4)
    ((1, 3), (0,))
    >>> check_subsets([[]], 4)
    Traceback (most recent call last):
    ...
    ValueError: subset 0 is empty: a label subset needs at least one label
    """
    if isinstance(subsets, (str, bytes)):
        raise TypeError("subsets must be an iterable of label sequences, got a string")
    out = []
    for i, s in enumerate(subsets):
        if isinstance(s, torch.Tensor):
            s = s.tolist()
        elif isinstance(s, np.ndarray):
            s = s.tolist()
        if isinstance(s, (str, bytes)) or not isinstance(s, Iterable):
            raise TypeError(f"subset {i} must be a sequence of int labels, got {type(s).__name__}")
        labels = []
        for v in s:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"subset {i} holds {v!r}; labels must be ints")
            labels.append(int(v))
        if not labels:
            raise ValueError(f"subset {i} is empty: a label subset needs at least one label")
        bad = sorted({v for v in labels if not 0 <= v < num_classes})
        if bad:
            raise ValueError(
                f"subset {i} holds labels {bad} outside the classifier's labels "
                f"0..{num_classes - 1}"
            )
        if len(set(labels)) != len(labels):
            raise ValueError(f"subset {i} repeats labels: {labels}")
        out.append(tuple(sorted(labels)))
    return tuple(out)


def subsets_of_size(labels: Sequence[int] | int, k: int) -> list[tuple[int, ...]]:
    """All label subsets of size ``k`` (the paper's Fig. 4), in lexicographic order.

    Parameters
    ----------
    labels : sequence of int or int
        The labels to choose from (an int ``m`` means ``range(m)``).
    k : int
        Subset size, ``1 <= k <= len(labels)``.

    Examples
    --------
    >>> subsets_of_size(4, 3)
    [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    """
    labs = list(range(labels)) if isinstance(labels, int) else [int(v) for v in labels]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(labs):
        raise ValueError(f"k must be an int in 1..{len(labs)}, got {k!r}")
    count = math.comb(len(labs), k)
    if count > 200_000:
        raise ValueError(f"{count} subsets of size {k}: too many to certify at once")
    return list(itertools.combinations(sorted(labs), k))


class SubsetHead:
    """Votes of ``argmax_{c in L} logits_c`` for many subsets ``L``, as one count head.

    Two encodings, chosen by the number of classes ``C``:

    * ``C <= RANKING_MAX_CLASSES``: a *ranking histogram*. A label ``c`` wins subset ``L`` on a
      draw exactly when ``c`` is in ``L`` and none of the labels ranked above ``c`` is. So each
      draw adds one vote to bin ``(c, A)`` for each label ``c``, with ``A`` the bit mask of the
      labels ranked above it: ``C`` bins per draw, whatever the number of subsets. The
      histogram is a sufficient statistic for *every* subset; :meth:`decode` turns it into
      per-subset counts afterwards.
    * otherwise, the logits are masked per subset and reduced with one argmax; bin
      ``s * C + c`` counts the draws whose top label within subset ``s`` is ``c``.

    Ties are broken towards the smallest label, like ``argmax``.

    Parameters
    ----------
    subsets : sequence of tuple of int
        Validated subsets (see :func:`check_subsets`).
    num_classes : int
        Width of the logits.
    device : torch.device
        Where the masks live.

    Examples
    --------
    >>> head = SubsetHead([(0, 2), (1, 2)], 3, torch.device("cpu"))
    >>> logits = torch.tensor([[5.0, 9.0, 1.0], [0.0, 0.0, 1.0]])
    >>> counts = torch.bincount(head.bins(logits).reshape(-1), minlength=head.width)
    >>> head.decode(counts.numpy())  # subset 0 -> labels 0 then 2; subset 1 -> 1 then 2
    array([[1, 0, 1],
           [0, 1, 1]])
    """

    RANKING_MAX_CLASSES = 12

    def __init__(self, subsets: Sequence[tuple[int, ...]], num_classes: int, device) -> None:
        self.subsets = tuple(subsets)
        self.num_classes = C = int(num_classes)
        S = len(self.subsets)
        self.ranking = C <= self.RANKING_MAX_CLASSES
        if self.ranking:
            self.width = C << C
            self._bits = (1 << torch.arange(C, dtype=torch.long)).to(device)
            self._masks = np.array([sum(1 << c for c in L) for L in self.subsets], dtype=np.int64)
        else:
            outside = torch.ones(S, C, dtype=torch.bool)
            for s, labels in enumerate(self.subsets):
                outside[s, list(labels)] = False
            self.outside = outside.to(device)
            self.offsets = (torch.arange(S) * C).to(device)
            self.width = S * C

    def bins(self, logits: torch.Tensor) -> torch.Tensor:
        """Bin indices of a batch of logits ``[B, C]`` (``[B, C]`` or ``[B, S]`` int64)."""
        C = self.num_classes
        if self.ranking:
            order = torch.argsort(logits, dim=1, descending=True, stable=True)
            bits = self._bits[order]
            above = torch.cumsum(bits, dim=1) - bits  # bit mask of the labels ranked higher
            return (order << C) + above
        B = logits.shape[0]
        S = len(self.subsets)
        step = max(1, _CHUNK_ELEMENTS // max(1, B * C))
        parts = []
        for a in range(0, S, step):
            mask = self.outside[a : a + step]
            masked = logits.unsqueeze(1).masked_fill(mask.unsqueeze(0), float("-inf"))
            parts.append(masked.argmax(2) + self.offsets[a : a + step])
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def decode(self, counts: np.ndarray) -> np.ndarray:
        """Per-subset vote counts ``[S, C]`` (zero outside each subset) from the head's bins."""
        C, S = self.num_classes, len(self.subsets)
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (self.width,):
            raise ValueError(f"expected {self.width} bins, got shape {counts.shape}")
        if not self.ranking:
            return counts.reshape(S, C)
        hist = counts.reshape(C, 1 << C)  # [label, mask of labels ranked above it]
        masks = np.arange(1 << C, dtype=np.int64)
        free = (masks[None, :] & self._masks[:, None]) == 0  # [S, 2^C]: nothing of L above
        out = free.astype(np.int64) @ hist.T  # [S, C]
        inside = ((self._masks[:, None] >> np.arange(C)[None, :]) & 1).astype(bool)
        return np.where(inside, out, 0)

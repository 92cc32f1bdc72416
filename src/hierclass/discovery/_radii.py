"""The radius side of a partition score: one set of smoothed samples per input certifies the
flat model and every candidate class at once; a partition's leaves are then read off it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hierclass._utils.progress import progress
from hierclass.partition import LabelPartition
from hierclass.smoothing.analysis.tables import average_certified_radius

# A leaf is certified as the base classifier restricted to its class (base renormalisation):
# Cohen's bound on the restricted votes, the bound smoothing calls "cohen".
LEAF_BOUND = "cohen"


@dataclass
class SampleRadii:
    """Per-sample radii, capped at ``cap`` and 0 where the prediction is wrong or abstains.

    ``leaf[cls]`` / ``leaf_ok[cls]`` are for the renormalised leaf over the labels ``cls``.
    """

    flat: np.ndarray  # [N]
    flat_ok: np.ndarray  # [N] bool: certified correct at radius 0
    leaf: dict[tuple[int, ...], np.ndarray]  # class -> [N]
    leaf_ok: dict[tuple[int, ...], np.ndarray]  # class -> [N] bool
    cap: float


def certify_once(
    flat_model: Callable[[Any], torch.Tensor],
    x: torch.Tensor,
    y: np.ndarray,
    num_labels: int,
    subsets: Sequence[tuple[int, ...]],
    *,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    seed: int,
    verbose: bool | None,
) -> SampleRadii:
    """Certify every input of ``x`` [N, ...] once, flat and restricted to each of ``subsets``.

    The cap is the largest radius ``n`` draws can certify (all of them agreeing), so that a
    constant one-label leaf can be counted at it and a mean stays finite.
    """
    from hierclass.smoothing import Smooth
    from hierclass.smoothing.certificates.bounds import clopper_pearson_lower, cohen_radius

    smooth = Smooth(flat_model, num_labels, sigma, seed=seed)
    cap = float(cohen_radius(float(clopper_pearson_lower(n, n, alpha)), sigma))
    results = smooth.certify_many(
        list(x),
        n0,
        n,
        alpha,
        batch_size,
        indices=range(x.shape[0]),
        subsets=list(subsets) or None,
        bounds=(LEAF_BOUND,),
    )
    size = x.shape[0]
    radii = SampleRadii(
        flat=np.zeros(size),
        flat_ok=np.zeros(size, dtype=bool),
        leaf={cls: np.zeros(size) for cls in subsets},
        leaf_ok={cls: np.zeros(size, dtype=bool) for cls in subsets},
        cap=cap,
    )
    for i, res in enumerate(progress(results, "certify", verbose, total=size)):
        if res.label == int(y[i]):
            radii.flat[i] = min(res.radius, cap)
            radii.flat_ok[i] = True
        for cls in subsets:
            cert = res.subset_certificates[(LEAF_BOUND, cls)]
            if cert.label == int(y[i]):
                radii.leaf[cls][i] = min(cert.radius, cap)
                radii.leaf_ok[cls][i] = True
    return radii


def leaf_fields(part: LabelPartition, radii: SampleRadii, y: np.ndarray) -> dict[str, Any]:
    """A partition's radius fields of :class:`~hierclass.discovery.PartitionScore`: each sample
    counts with the leaf its true class owns."""
    owner = np.asarray(part.class_of(y))
    leaf = np.empty(len(y))
    correct = np.empty(len(y), dtype=bool)
    for c, cls in enumerate(part.classes):
        rows = owner == c
        # a one-label leaf is constant: counted at the cap (see PartitionSearch.radius_cap_)
        leaf[rows] = radii.cap if len(cls) == 1 else radii.leaf[cls][rows]
        correct[rows] = True if len(cls) == 1 else radii.leaf_ok[cls][rows]
    # the one ACR definition; radii were capped above, infinite ones count at the cap
    flat_acr = average_certified_radius(radii.flat, radii.flat_ok, cap=radii.cap)
    leaf_acr = average_certified_radius(leaf, correct, cap=radii.cap)
    return {
        "leaf_radii": leaf,
        "flat_acr": flat_acr,
        "leaf_acr": leaf_acr,
        "acr_gain": leaf_acr - flat_acr,
        "flat_accuracy": float(radii.flat_ok.mean()),
        "leaf_accuracy": float(correct.mean()),
        "improved": int((leaf > radii.flat).sum()),
        "worsened": int((leaf < radii.flat).sum()),
    }

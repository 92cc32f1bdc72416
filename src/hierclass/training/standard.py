"""Standard and Gaussian-noise training: :func:`fit`.

:func:`fit` is the trainer every node of a hierarchy can be trained with (pass coarse labels
for a router, local labels for a leaf). It validates its arguments once and runs the shared
epoch loop (:mod:`hierclass.training.loop`: seeding, schedule, checkpoint and resume,
progress, evaluation, divergence checks) with the cross-entropy step
(:func:`hierclass.training.steps.cross_entropy_step`):

* ``noise_sigma`` adds ``N(0, sigma^2 I)`` to every training input (in input space; no
  clipping), the training recipe of Cohen et al. for models that will be smoothed;
* ``perturb(model, xb, yb) -> xb_new`` replaces each batch before the update; noise, if any,
  is added after it. For PGD adversarial training use
  :func:`~hierclass.training.fit_adversarial`, which runs the same loop with PGD's step.

Reproducibility: a run killed at any point and restarted with the same arguments continues
from the last finished epoch and ends bit-for-bit where the uninterrupted run ends, whenever
the run itself is deterministic (CPU; on a GPU with ``torch.use_deterministic_algorithms``;
same library versions). The caller's global RNG state is never changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierclass._utils.checks import non_negative
from hierclass.inputs import InputRange

from ._boundary import prepare
from ._data import Data
from .evaluate import evaluate_accuracy
from .history import TrainHistory
from .loop import Schedule, batch_bounds, describe, run_epochs
from .steps import Perturb, cross_entropy_step

__all__ = ["batch_bounds", "evaluate_accuracy", "fit"]

#: ``fit``'s default optimiser settings: Adam at 1e-3 trains the library's models on its own
#: data for every seed (SGD at lr 0.1 with momentum 0.9 diverged for 3 of 4 seeds on MNIST).
DEFAULT_OPTIMIZER = "adam"
DEFAULT_LR = 1e-3


def fit(
    model: nn.Module,
    x: Data,
    y: torch.Tensor | None = None,
    *,
    epochs: int,
    lr: float = DEFAULT_LR,
    batch_size: int = 128,
    optimizer: str = DEFAULT_OPTIMIZER,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_schedule: Schedule = None,
    noise_sigma: float = 0.0,
    perturb: Perturb | None = None,
    eval_data: Any = None,
    input_key: str | None = None,
    input_range: InputRange = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    verbose: bool | None = None,
    device: str | torch.device | None = None,
) -> TrainHistory:
    """Train ``model`` with cross-entropy on ``(x, y)``, optionally with Gaussian noise.

    Parameters
    ----------
    model : nn.Module
        Maps a batch ``[B, ...]`` of the selected modality to logits ``[B, K]``. Trained in
        place (moved to ``device`` if given) and left in eval mode.
    x : Tensor ``[N, ...]``, dict of tensors, or a ``Dataset``/``DataLoader`` of pairs
        Training inputs; with a dict, ``input_key`` names the modality the model reads. A
        data set is read once into tensors; the modality is moved to the device once.
    y : LongTensor ``[N]``, optional
        Labels in ``0..K-1`` (checked against the model's output width); ``None`` when ``x``
        is a data set, which carries its labels.
    epochs : int
        Total number of epochs (>= 1), including any already in ``checkpoint``.
    lr : float, default 1e-3
        Base learning rate (the default suits the default optimiser, Adam; for SGD with
        momentum 0.9 start near 0.01).
    batch_size : int, default 128
        Mini-batch size; the last batch of an epoch may be smaller (no sample is dropped).
    optimizer : {"adam", "sgd", "adamw"}, default "adam"
        SGD uses ``momentum``.
    momentum : float, default 0.9
        SGD momentum.
    weight_decay : float, default 0.0
        L2 penalty (decoupled for ``"adamw"``).
    lr_schedule : {None, "constant", "step", "cosine"}, sequence of int, or callable
        Per-epoch multiplier of ``lr``: ``"step"`` is x0.1 at 1/2 and again at 3/4 of the
        epochs, ``"cosine"`` anneals towards 0, a sequence of epochs multiplies by 0.1 at
        each; a callable gets ``(epoch, epochs)`` (epoch 0-based) and returns the factor.
    noise_sigma : float, default 0.0
        Standard deviation of the Gaussian noise added to every training input (input
        space), for models to be smoothed with the same sigma.
    perturb : callable, optional
        ``perturb(model, xb, yb) -> xb_new`` applied to every training batch before the update
        (model in train mode; gradients it leaves on parameters are discarded). Must return a
        tensor shaped like ``xb``.
    eval_data : (x_eval, y_eval) or Dataset/DataLoader, optional
        Evaluated (clean accuracy) after every epoch.
    input_key : str, optional
        Modality to read when ``x`` (and ``x_eval``) are dicts.
    input_range : (float, float), dict or None
        The inputs' declared range (:mod:`hierclass.inputs`); ``None`` keeps the contract's
        default: image-shaped inputs ``[N, 1|3, H, W]`` lie in [0, 1], others are unchecked.
        Non-finite inputs are always an error.
    seed : int, default 0
        Seeds shuffling, noise, dropout and ``perturb``'s randomness per epoch. The initial
        weights are the model's own: seed before constructing it.
    checkpoint : str or Path, optional
        File written at the end of every epoch (its folder is created). If it exists when
        ``fit`` starts, training resumes after its last finished epoch (settings must match;
        ``ValueError`` if not).
    verbose : bool or None, default None
        tqdm progress bar: ``True`` always, ``False`` never, ``None`` when stderr is a
        terminal.
    device : str or torch.device, optional
        Where to train; defaults to the model's device.

    Returns
    -------
    TrainHistory
        Per-epoch loss, training accuracy, evaluation accuracy, learning rate and time.

    Raises
    ------
    ValueError
        Mismatched lengths, labels outside the model's outputs, inputs outside their range
        or non-finite, ``epochs < 1``, negative ``noise_sigma``, unknown optimiser or
        schedule, a checkpoint from different settings; a loss that became non-finite
        (:class:`~hierclass.training.loop.TrainingDiverged`, naming the learning rate).
    TypeError
        Non-tensor inputs, float labels, a model that is not an ``nn.Module``.

    Warns
    -----
    ChanceLevelWarning
        The last epoch's training accuracy is no better than always predicting the most
        frequent label (the likely cause, a learning rate too high, is named).

    Examples
    --------
    >>> import torch
    >>> from hierclass.models import SmallCNN
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x = torch.rand(64, 1, 8, 8); y = (x.mean((1, 2, 3)) > 0.5).long()
    >>> model = SmallCNN(2, image_size=8, channels=(4, 4, 4))
    >>> hist = fit(model, x, y, epochs=2, batch_size=8, noise_sigma=0.25, verbose=False)
    >>> hist.epoch, len(hist.loss)
    ([1, 2], 2)
    """
    noise_sigma = non_negative(noise_sigma, "noise_sigma")
    if perturb is not None and not callable(perturb):
        raise TypeError(
            f"perturb must be callable(model, xb, yb) -> xb, got {type(perturb).__name__}"
        )
    run = prepare(model, x, y, epochs=epochs, lr=lr, batch_size=batch_size,
                  optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                  lr_schedule=lr_schedule, seed=seed, verbose=verbose, eval_data=eval_data,
                  input_key=input_key, input_range=input_range, device=device)  # fmt: skip
    config = {**run.config, "noise_sigma": noise_sigma, "perturb": describe(perturb)}
    return run_epochs(model, run.x, run.y, cross_entropy_step(noise_sigma, perturb),
                      config=config, checkpoint=checkpoint, eval_data=run.eval_data,
                      desc="fit", **run.loop)  # fmt: skip

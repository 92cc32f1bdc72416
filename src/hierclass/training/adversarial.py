"""PGD adversarial training (Madry et al. 2018) and the epoch loop it shares with YOPO.

The loop owns what every adversarial trainer needs: seeded shuffling, an SGD optimiser with
step decay, per-epoch atomic checkpoints with resume after a kill, a tqdm bar, and a
history of clean / adversarial accuracy per epoch. A trainer only supplies the per-batch
step that fills the parameters' ``.grad`` (:func:`fit_adversarial` runs PGD then a normal
backward pass; :func:`hierclass.training.yopo.fit_yopo` runs YOPO-m-n).

Any node is trained on its own labels: pass coarse labels to train a router, local labels
(the leaf's data) to train a leaf, or all labels for a flat baseline.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hierclass.attacks.base import check_budget, check_labels, check_unit_interval, model_mode
from hierclass.attacks.pgd import PGD
from hierclass.training.standard import batch_bounds

# (model, xb, yb) -> (summed loss over the batch, number of correct predictions), both 0-d
# tensors left on the device, after the step has filled the parameters' ``.grad``.
BatchStep = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class AdversarialHistory:
    """Per-epoch record of an adversarial training run (one entry per finished epoch).

    Attributes
    ----------
    epoch : list of int
        Epoch numbers, 1-based.
    loss : list of float
        Mean training loss on the perturbed batches the trainer generated.
    train_adversarial_accuracy : list of float
        Accuracy on those perturbed training batches, as generated (before the update).
    clean_accuracy, adversarial_accuracy : list of float
        Accuracy on the evaluation set, clean and under the evaluation attack (NaN when no
        evaluation set or attack was given).
    seconds : list of float
        Training wall time of each epoch, evaluation excluded.
    config : dict
        The settings of the run (method, eps, steps, ...), checked on resume.

    Examples
    --------
    >>> h = AdversarialHistory()
    >>> h.epoch, h.total_seconds
    ([], 0.0)
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_adversarial_accuracy: list[float] = field(default_factory=list)
    clean_accuracy: list[float] = field(default_factory=list)
    adversarial_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        """Total training wall time (evaluation excluded)."""
        return float(sum(self.seconds))

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict copy (JSON/TSV friendly)."""
        return asdict(self)


def _check_data(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    check_unit_interval(x, f"x{name}")
    check_labels(y, x, f"y{name}")
    if x.shape[0] == 0:
        raise ValueError(f"x{name} is empty: expected at least one sample")


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _epoch_seed(seed: int, epoch: int) -> int:
    # One seed per epoch, so a run resumed at an epoch boundary replays exactly.
    return (int(seed) * 1_000_003 + epoch) % (2**63 - 1)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def accuracy(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
) -> float:
    """Accuracy of ``model`` on ``(x, y)``, clean or on ``attack(x, y)``, in eval mode.

    Parameters
    ----------
    model : callable
        Maps ``[B, ...]`` in [0, 1] to logits ``[B, K]``.
    x : Tensor ``[N, ...]`` in [0, 1]
    y : LongTensor ``[N]``
    attack : callable or None
        ``attack(x, y) -> x_adv``; None for clean accuracy.
    batch_size : int
        Evaluation batch size.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2)
    >>> 0.0 <= accuracy(net, torch.rand(8, 2), torch.zeros(8, dtype=torch.long)) <= 1.0
    True
    """
    _check_data(x, y, "")
    device = _model_device(model) if isinstance(model, nn.Module) else x.device
    correct = torch.zeros((), dtype=torch.long, device=device)
    with model_mode(model, False):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            if attack is not None:
                xb = attack(xb, yb)
            with torch.no_grad():
                correct += (model(xb).argmax(dim=1) == yb).sum()
    return float(correct) / x.shape[0]


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    # Write then rename: a kill during the write leaves the previous checkpoint intact.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def run_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_step: BatchStep,
    *,
    config: dict[str, Any],
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    lr_milestones: Sequence[int],
    seed: int,
    checkpoint: str | os.PathLike[str] | None,
    verbose: bool,
    x_eval: torch.Tensor | None,
    y_eval: torch.Tensor | None,
    eval_attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    desc: str,
) -> AdversarialHistory:
    """The epoch loop shared by the adversarial trainers (see the module docstring).

    Each epoch re-seeds torch's global RNG and the shuffling generator from ``(seed,
    epoch)``, so resuming from the checkpoint of epoch ``e`` replays epochs ``e+1...``
    exactly as an uninterrupted run would. ``batch_step(model, xb, yb)`` fills ``.grad``
    and returns ``(summed loss, number correct)`` as 0-d tensors.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2)
    >>> def step(model, xb, yb):
    ...     logits = model(xb)
    ...     loss = torch.nn.functional.cross_entropy(logits, yb, reduction="sum")
    ...     loss.backward()
    ...     return loss.detach(), (logits.argmax(1) == yb).sum()
    >>> hist = run_epochs(net, torch.rand(8, 2), torch.zeros(8, dtype=torch.long), step,
    ...                   config={"method": "plain"}, epochs=2, lr=0.1, batch_size=4,
    ...                   momentum=0.0, weight_decay=0.0, lr_milestones=(), seed=0,
    ...                   checkpoint=None, verbose=False, x_eval=None, y_eval=None,
    ...                   eval_attack=None, desc="demo")
    >>> hist.epoch
    [1, 2]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module to be trained, got {type(model)}")
    _check_data(x, y, "")
    if (x_eval is None) != (y_eval is None):
        raise ValueError("give both x_eval and y_eval, or neither")
    if x_eval is not None:
        _check_data(x_eval, y_eval, "_eval")
    _check_positive_int(epochs, "epochs")
    _check_positive_int(batch_size, "batch_size")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    milestones = sorted(int(m) for m in lr_milestones)

    device = _model_device(model)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    history = AdversarialHistory(config=dict(config))
    start_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=True)
        if state["config"] != history.config:
            raise ValueError(
                f"checkpoint {path} was written by a run with different settings: "
                f"{state['config']} != {history.config}; use another path to start afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = AdversarialHistory(**state["history"])
        start_epoch = int(state["epoch"])

    n = x.shape[0]
    show = verbose and sys.stderr.isatty()
    for epoch in range(start_epoch, epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.1 ** sum(epoch >= m for m in milestones)
        torch.manual_seed(_epoch_seed(seed, epoch))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)))
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        model.train()
        tic = time.perf_counter()
        batches = batch_bounds(n, batch_size)
        bar = tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not show)
        for start, stop in bar:
            index = order[start:stop]
            xb, yb = x[index].to(device), y[index].to(device, torch.long)
            optimizer.zero_grad(set_to_none=True)
            batch_loss, batch_correct = batch_step(model, xb, yb)
            optimizer.step()
            loss_sum += batch_loss.detach()
            correct += batch_correct.detach()
        seconds = time.perf_counter() - tic
        clean = adversarial = math.nan
        if x_eval is not None:
            clean = accuracy(model, x_eval, y_eval, batch_size=max(batch_size, 256))
            if eval_attack is not None:
                adversarial = accuracy(
                    model, x_eval, y_eval, eval_attack, batch_size=max(batch_size, 256)
                )
        history.epoch.append(epoch + 1)
        history.loss.append(float(loss_sum) / n)
        history.train_adversarial_accuracy.append(float(correct) / n)
        history.clean_accuracy.append(clean)
        history.adversarial_accuracy.append(adversarial)
        history.seconds.append(seconds)
        if show:
            tqdm.write(
                f"{desc} epoch {epoch + 1}: loss {history.loss[-1]:.4f}, train adv acc "
                f"{history.train_adversarial_accuracy[-1]:.4f}, eval clean {clean:.4f}, "
                f"eval adv {adversarial:.4f}, {seconds:.1f}s"
            )
        if path is not None:
            _save_checkpoint(
                path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history.as_dict(),
                    "epoch": epoch + 1,
                    "config": history.config,
                },
            )
    model.eval()  # like `fit`: a trained model is handed back ready for evaluation
    return history


def fit_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str = "linf",
    epochs: int = 10,
    lr: float = 0.05,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    lr_milestones: Sequence[int] = (),
    seed: int = 0,
    checkpoint: str | os.PathLike[str] | None = None,
    verbose: bool = True,
    x_eval: torch.Tensor | None = None,
    y_eval: torch.Tensor | None = None,
    eval_attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> AdversarialHistory:
    """PGD adversarial training (Madry et al. 2018): train on PGD-``steps`` examples.

    Each batch is replaced by PGD examples (random start, ``steps`` steps of size ``alpha``
    in the ``eps``-ball, generated with the model in eval mode so batch-norm statistics are
    not updated by the attack), then the model takes one SGD step on their cross-entropy.
    Cost per batch: ``steps + 1`` forward/backward passes.

    Parameters
    ----------
    model : nn.Module
        Maps inputs in [0, 1] to logits; trained in place.
    x : Tensor ``[N, ...]`` in [0, 1]
        Training inputs (kept where they are; batches move to the model's device).
    y : LongTensor ``[N]``
        Training labels: fine labels for a flat model or a leaf (local ids), coarse class
        ids for a router.
    eps, alpha, steps, norm
        The training attack's radius, step size, number of steps and norm.
    epochs, lr, batch_size, momentum, weight_decay
        SGD settings; ``lr`` is multiplied by 0.1 at each epoch in ``lr_milestones``.
    seed : int
        Seeds shuffling, random starts and any dropout, per epoch.
    checkpoint : path or None
        Written atomically after every epoch; if the file exists the run resumes from it
        (settings must match, ``epochs`` may grow).
    verbose : bool
        tqdm bar and an epoch summary, only on a TTY.
    x_eval, y_eval : Tensor or None
        Held-out data evaluated after every epoch, clean and under ``eval_attack``.
    eval_attack : callable or None
        Defaults to the training PGD (same eps, alpha, steps, norm) against ``model``.

    Returns
    -------
    AdversarialHistory

    Raises
    ------
    ValueError
        eps < 0, alpha <= 0, steps < 1, an unknown norm, inputs outside [0, 1], bad shapes,
        or a checkpoint from a run with other settings.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> x = torch.rand(32, 1, 2, 2); y = (x.flatten(1).sum(1) > 2).long()
    >>> hist = fit_adversarial(net, x, y, eps=0.05, alpha=0.02, steps=3, epochs=2,
    ...                        batch_size=16, verbose=False, x_eval=x, y_eval=y)
    >>> hist.epoch, len(hist.adversarial_accuracy)
    ([1, 2], 2)
    """
    check_budget(eps, alpha, steps, norm)
    attack = PGD(model, eps, alpha, steps, norm=norm, random_start=True)
    if eval_attack is None:
        eval_attack = attack

    def step(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor):
        # The data were validated once at the boundary; skip the per-batch host-side check.
        with model_mode(net, False), torch.enable_grad():
            x_adv = attack.perturb(xb, yb)
        logits = net(x_adv)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        return loss.detach() * yb.shape[0], (logits.argmax(1) == yb).sum()

    config = dict(
        method="pgd", eps=float(eps), alpha=float(alpha), steps=steps, norm=norm,
        lr=float(lr), batch_size=batch_size, momentum=float(momentum),
        weight_decay=float(weight_decay), lr_milestones=[int(m) for m in lr_milestones],
        seed=int(seed),
    )  # fmt: skip
    return run_epochs(
        model, x, y, step, config=config, epochs=epochs, lr=lr, batch_size=batch_size,
        momentum=momentum, weight_decay=weight_decay, lr_milestones=lr_milestones, seed=seed,
        checkpoint=checkpoint, verbose=verbose, x_eval=x_eval, y_eval=y_eval,
        eval_attack=eval_attack, desc="PGD-AT",
    )  # fmt: skip

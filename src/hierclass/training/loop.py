"""The one epoch loop every trainer runs; a trainer differs only in its per-batch step.

The loop owns what all training shares:

* **seeding** -- at the start of every epoch torch's global RNG (dropout, attacks' random
  starts), the shuffling generator and the step's noise generator are seeded from
  ``(seed, epoch)``, inside :func:`torch.random.fork_rng`, so the caller's own random state
  is never overwritten and a run resumed at an epoch boundary replays exactly;
* **schedule** -- the learning rate of each epoch (:func:`lr_factor`);
* **checkpoint and resume** -- model, optimiser and history written atomically after every
  epoch; a run restarted with the same arguments continues after the last finished epoch;
* **progress** -- one tqdm bar under the library's policy (:mod:`hierclass._utils.progress`);
* **evaluation** -- clean (and, with an attack, adversarial) accuracy after every epoch;
* **divergence** -- a non-finite loss stops the run with :class:`TrainingDiverged`; a last
  epoch whose training accuracy is no better than always answering the most frequent label
  raises a :class:`ChanceLevelWarning`; both name the learning rate.

A step is ``step(model, xb, yb, generator) -> (summed loss, number correct)``: it fills the
parameters' ``.grad`` for one batch and returns two 0-d tensors left on the device (no host
synchronisation per batch). :mod:`.steps` holds the standard / Gaussian-noise / ``perturb``
and PGD steps, :mod:`.yopo` the YOPO step.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hierclass._utils.progress import progress_bar

from . import _checkpoint
from .evaluate import evaluate_accuracy
from .history import TrainHistory

TrainStep = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, torch.Generator],
    tuple[torch.Tensor, torch.Tensor],
]
Schedule = str | Callable[[int, int], float] | Sequence[int] | None

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


class TrainingDiverged(ValueError):
    """The training loss became non-finite; ``history`` holds the epochs finished before.

    A ``ValueError``, so code catching bad settings catches it too.

    Examples
    --------
    >>> err = TrainingDiverged("loss nan in epoch 2; lower lr", TrainHistory())
    >>> isinstance(err, ValueError), err.history.epochs_completed
    (True, 0)
    """

    def __init__(self, message: str, history: TrainHistory) -> None:
        super().__init__(message)
        self.history = history


class ChanceLevelWarning(RuntimeWarning):
    """Training ended no better than always predicting the most frequent label.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", ChanceLevelWarning)
    ...     try:
    ...         warnings.warn("at chance", ChanceLevelWarning)
    ...     except ChanceLevelWarning as w:
    ...         print(w)
    at chance
    """


def epoch_seed(seed: int, epoch: int) -> int:
    """Distinct, reproducible seed per ``(seed, epoch)``: resuming at a boundary replays it.

    Examples
    --------
    >>> epoch_seed(0, 0), epoch_seed(0, 1) != epoch_seed(1, 0)
    (12345, True)
    """
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**62)


def lr_factor(schedule: Schedule, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate in ``epoch`` (0-based) of ``epochs``.

    ``None``/``"constant"``: 1; ``"step"``: x0.1 at 1/2 and again at 3/4 of the epochs;
    ``"cosine"``: anneals towards 0; a sequence of epochs (milestones): x0.1 at each; a
    callable gets ``(epoch, epochs)`` and returns the factor.

    Examples
    --------
    >>> [lr_factor("step", e, 4) for e in range(4)]
    [1.0, 1.0, 0.1, 0.010000000000000002]
    >>> [lr_factor((1, 3), e, 4) for e in range(4)]
    [1.0, 0.1, 0.1, 0.010000000000000002]
    """
    if schedule is None or schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** ((epoch >= epochs // 2) + (epoch >= (3 * epochs) // 4))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if not callable(schedule):
        return 0.1 ** sum(epoch >= m for m in schedule)
    factor = float(schedule(epoch, epochs))
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(
            f"lr_schedule({epoch}, {epochs}) must be a finite factor >= 0, got {factor}"
        )
    return factor


def _depends_on_total(schedule: Schedule) -> bool:
    return schedule in ("step", "cosine") or callable(schedule)


def check_schedule(schedule: Any) -> Schedule:
    """Validate an ``lr_schedule`` argument; milestones come back as a sorted tuple.

    Examples
    --------
    >>> check_schedule([30, 10]), check_schedule("cosine")
    ((10, 30), 'cosine')
    """
    if schedule is None or callable(schedule):
        return schedule
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {SCHEDULES}, a callable, a sequence of milestone "
                f"epochs or None, got {schedule!r}"
            )
        return schedule
    if isinstance(schedule, Sequence) and all(
        isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in schedule
    ):
        return tuple(sorted(schedule))
    raise TypeError(
        "lr_schedule must be a str, a callable, a sequence of milestone epochs (ints >= 0) or "
        f"None, got {schedule!r}"
    )


def describe(fn: Any) -> Any:
    """How a setting is recorded in ``config`` (and compared on resume).

    Examples
    --------
    >>> describe((10, 20)), describe(None), describe(len)
    ([10, 20], None, 'builtins.len')
    """
    if fn is None or isinstance(fn, str | int | float):
        return fn
    if isinstance(fn, tuple | list):
        return [describe(v) for v in fn]
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def make_optimizer(
    name: str, model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimiser over the model's trainable parameters.

    Examples
    --------
    >>> type(make_optimizer("adam", torch.nn.Linear(2, 2), 1e-3, 0.9, 0.0)).__name__
    'Adam'
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each training batch over ``n`` samples.

    A lone last sample joins the previous batch: batch normalisation cannot train on a batch
    of one (torch raises), and one sample more in a batch changes nothing else.

    Examples
    --------
    >>> batch_bounds(10, 4), batch_bounds(9, 4), batch_bounds(1, 4)
    ([(0, 4), (4, 8), (8, 10)], [(0, 4), (4, 9)], [(0, 1)])
    """
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
        bounds[-1] = (bounds[-1][0], n)
    return bounds


def _chance_level(y: torch.Tensor) -> tuple[float, float]:
    """Accuracy of always answering the most frequent label, and the margin above it that
    still counts as chance (three binomial standard errors)."""
    n = y.shape[0]
    p = float(torch.bincount(y).max()) / n
    return p, 3.0 * math.sqrt(max(p * (1.0 - p), 1.0 / n) / n)


def _prior_entropy(y: torch.Tensor) -> float:
    p = torch.bincount(y).double() / y.shape[0]
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def run_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    step: TrainStep,
    *,
    config: dict[str, Any],
    epochs: int,
    batch_size: int,
    lr: float,
    lr_schedule: Schedule = None,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    verbose: bool | None = None,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    desc: str = "fit",
) -> TrainHistory:
    """Train ``model`` in place with ``step`` on every batch; return the history.

    Private guts: the trainers validate every argument first, and ``x``, ``y`` and
    ``eval_data`` are already on the model's device.

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> net = torch.nn.Linear(2, 2)
    >>> def step(model, xb, yb, generator):
    ...     logits = model(xb)
    ...     loss = F.cross_entropy(logits, yb, reduction="sum")
    ...     loss.backward()
    ...     return loss.detach(), (logits.argmax(1) == yb).sum()
    >>> x = torch.rand(8, 2); y = (x[:, 0] > x[:, 1]).long()
    >>> hist = run_epochs(net, x, y, step, config={"training": "plain"}, epochs=2,
    ...                   batch_size=4, lr=0.1, verbose=False)
    >>> hist.epoch
    [1, 2]
    """
    dev = x.device
    opt = make_optimizer(optimizer, model, lr, momentum, weight_decay)
    history = TrainHistory(config=dict(config))
    start_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = _checkpoint.load(path, dev)
        saved = state["config"]
        # A schedule that does not depend on the total lets a finished run be extended.
        ignore = set() if _depends_on_total(lr_schedule) else {"epochs"}
        diff = {
            k: (saved.get(k), config.get(k))
            for k in sorted((set(config) | set(saved)) - ignore)
            if saved.get(k) != config.get(k)
        }
        if diff:
            raise ValueError(
                f"checkpoint {path} was written with different settings (saved, now): {diff}; "
                "delete it or choose another checkpoint path to start afresh"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history = TrainHistory.from_dict(state["history"])
        history.config = dict(config)
        start_epoch = int(state["epoch"])

    n = x.shape[0]
    bounds = batch_bounds(n, batch_size)
    # Fork (and afterwards restore) the caller's RNG on the CPU and on the training device.
    fork: dict[str, Any] = {"devices": []}
    if dev.type != "cpu":
        index = (
            dev.index
            if dev.index is not None
            else torch.get_device_module(dev.type).current_device()
        )
        fork = {"devices": [index], "device_type": dev.type}
    bar = None
    if start_epoch < epochs:
        bar = progress_bar(verbose, total=(epochs - start_epoch) * len(bounds), desc=desc,
                           leave=False)  # fmt: skip
    try:
        with torch.random.fork_rng(**fork):
            for epoch in range(start_epoch, epochs):
                epoch_lr = lr * lr_factor(lr_schedule, epoch, epochs)
                for group in opt.param_groups:
                    group["lr"] = epoch_lr
                s = epoch_seed(seed, epoch)
                torch.manual_seed(s)  # dropout and the step's own randomness
                order = torch.randperm(n, generator=torch.Generator().manual_seed(s)).to(dev)
                generator = torch.Generator(device=dev).manual_seed(s + 1)
                loss_sum = torch.zeros((), device=dev)
                correct = torch.zeros((), dtype=torch.long, device=dev)
                model.train()
                tic = time.perf_counter()
                for start, stop in bounds:
                    index = order[start:stop]
                    opt.zero_grad(set_to_none=True)
                    batch_loss, batch_correct = step(model, x[index], y[index], generator)
                    opt.step()
                    loss_sum += batch_loss.detach()
                    correct += batch_correct.detach()
                    if bar is not None:
                        bar.update(1)
                loss, acc = float(loss_sum) / n, int(correct) / n  # the epoch's one sync
                seconds = time.perf_counter() - tic
                if not math.isfinite(loss):
                    raise TrainingDiverged(
                        f"training diverged in epoch {epoch + 1} (mean loss {loss}): the "
                        f"learning rate is the likely cause (lr={epoch_lr:g}, optimizer="
                        f"{optimizer!r}); lower it, e.g. lr={epoch_lr / 10:g}. The model's "
                        "weights are no longer usable"
                        + (
                            f"; {path} holds the last finished epoch"
                            if path and path.exists()
                            else ""
                        ),
                        history,
                    )
                clean = adversarial = math.nan
                if eval_data is not None:
                    ex, ey = eval_data
                    clean = evaluate_accuracy(model, ex, ey, max(batch_size, 256))
                    if eval_attack is not None:
                        adversarial = evaluate_accuracy(
                            model, ex, ey, max(batch_size, 256), attack=eval_attack
                        )
                history.append(epoch=epoch + 1, loss=loss, accuracy=acc, lr=epoch_lr,
                               seconds=seconds, eval_accuracy=clean,
                               eval_adversarial_accuracy=adversarial)  # fmt: skip
                if bar is not None:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", acc=f"{acc:.3f}")
                if path is not None:
                    _checkpoint.save(path, {"config": config, "epoch": epoch + 1,
                                            "model": model.state_dict(),
                                            "optimizer": opt.state_dict(),
                                            "history": history.as_dict()})  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    model.eval()  # a trained model is handed back ready for evaluation
    _warn_if_at_chance(history, y, lr, optimizer, len(bounds))
    return history


#: Updates a run needs before "still at chance" is judged: fewer cannot tell a slow start
#: from a failure (the README recipe takes ~100).
MIN_UPDATES_FOR_CHANCE_CHECK = 50


def _warn_if_at_chance(
    history: TrainHistory, y: torch.Tensor, lr: float, optimizer: str, batches: int
) -> None:
    if not history.epoch or history.epoch[-1] * batches < MIN_UPDATES_FOR_CHANCE_CHECK:
        return
    chance, margin = _chance_level(y)
    acc, loss = history.accuracy[-1], history.loss[-1]
    # At chance: no better than always answering the most frequent label, and a loss no
    # lower than (2 % below) the cross-entropy of predicting the label frequencies themselves.
    if acc <= chance + margin and loss >= 0.98 * _prior_entropy(y):
        warnings.warn(
            f"training ended at chance level: accuracy {acc:.3f} on the inputs trained on in "
            f"epoch {history.epoch[-1]}, where always answering the most frequent label scores "
            f"{chance:.3f}, with a mean loss {loss:.4f} no lower than predicting the label "
            f"frequencies ({_prior_entropy(y):.4f}); the model has learned nothing usable. "
            f"The learning rate is the likely cause (lr={lr:g}, optimizer={optimizer!r}): "
            f"too high a rate throws the weights to a constant answer; try lr={lr / 10:g}; "
            "otherwise the noise or attack budget may be too large for this model",
            ChanceLevelWarning,
            stacklevel=4,
        )

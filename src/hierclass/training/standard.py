"""Plain supervised training: cross-entropy with optional Gaussian-noise augmentation.

:func:`fit` is the loop every node of a hierarchy can be trained with (pass coarse labels for
a router, local labels for a leaf). It owns seeding, shuffling, batching on the model's
device, per-epoch atomic checkpoints with exact resume, an optional evaluation set and a tqdm
bar. Two hooks make it reusable:

* ``noise_sigma`` adds ``N(0, sigma^2 I)`` to every training input (in input space, inputs in
  [0, 1]; no clipping), the training recipe of Cohen et al. for models that will be smoothed;
* ``perturb(model, xb, yb) -> xb_new`` replaces each batch before the update (e.g. a PGD
  attack for adversarial training); noise, if any, is added after it.

Reproducibility: at the start of every epoch, torch's global RNG (which drives dropout and
any randomness inside ``perturb``), the shuffling generator and the noise generator are seeded
from ``(seed, epoch)``. Model weights, optimiser state (momentum buffers), batch-norm
statistics and the history are checkpointed at the end of each epoch, so a run killed at any
point and restarted with the same arguments continues from the last completed epoch and ends
bit-for-bit where the uninterrupted run ends, whenever the run itself is deterministic (CPU;
on a GPU with ``torch.use_deterministic_algorithms(True)``; same library versions). The
caller's global RNG state is restored when :func:`fit` returns.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import _checkpoint
from .history import TrainHistory

Inputs = torch.Tensor | Mapping[str, torch.Tensor]
Perturb = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
Schedule = str | Callable[[int, int], float] | None

_OPTIMIZERS = ("sgd", "adam", "adamw")
_SCHEDULES = ("constant", "step", "cosine")


# ----------------------------------------------------------------------------- validation
def _select(x: Any, input_key: str | None, name: str) -> torch.Tensor:
    """The modality the model reads: ``x`` itself, or ``x[input_key]`` for a dict batch."""
    if isinstance(x, Mapping):
        if input_key is None:
            raise ValueError(
                f"{name} is a dict of modalities {sorted(x)}; pass input_key= to say which one "
                "the model reads"
            )
        if input_key not in x:
            raise ValueError(f"input_key {input_key!r} not in {name}; available: {sorted(x)}")
        x = x[input_key]
    elif input_key is not None and isinstance(x, torch.Tensor):
        raise ValueError(f"input_key={input_key!r} was given but {name} is a tensor, not a dict")
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or a dict of tensors, got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape [N, ...] with N >= 1, got {list(x.shape)}")
    return x


def _check_inputs(x: torch.Tensor, name: str, input_range: tuple[float, float] | None) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if input_range is not None:
        lo, hi = float(x.min()), float(x.max())
        if lo < input_range[0] or hi > input_range[1]:
            raise ValueError(
                f"{name} must lie in [{input_range[0]}, {input_range[1]}] (normalisation belongs "
                f"inside the model), got values in [{lo:.4g}, {hi:.4g}]; pass input_range=None "
                "for inputs that are not images (e.g. point clouds)"
            )


def _check_labels(y: Any, n: int, name: str) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels, got dtype {y.dtype}")
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape [{n}] to match the inputs, got {list(y.shape)}")
    if int(y.min()) < 0:
        raise ValueError(f"{name} must be >= 0, got a label {int(y.min())}")
    return y.to(torch.long)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _epoch_seed(seed: int, epoch: int) -> int:
    # Distinct, reproducible seed per (seed, epoch): resuming at an epoch boundary replays it.
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**62)


def _lr_factor(schedule: Schedule, epoch: int, epochs: int) -> float:
    if schedule is None or schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** ((epoch >= epochs // 2) + (epoch >= (3 * epochs) // 4))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    factor = float(schedule(epoch, epochs))  # type: ignore[operator]
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(
            f"lr_schedule({epoch}, {epochs}) must be a finite factor >= 0, got {factor}"
        )
    return factor


def _describe(fn: Any) -> str | None:
    if fn is None:
        return None
    if isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _make_optimizer(
    name: str, model: nn.Module, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- evaluation
def evaluate_accuracy(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: Inputs,
    y: torch.Tensor,
    batch_size: int = 512,
    *,
    input_key: str | None = None,
    device: str | torch.device | None = None,
) -> float:
    """Fraction of samples whose argmax logit equals the label.

    Runs in eval mode under ``torch.inference_mode()`` and restores each submodule's
    train/eval flag afterwards; synchronises with the device once.

    Parameters
    ----------
    model : callable
        Maps ``[B, ...]`` to logits ``[B, K]`` (an ``nn.Module`` or any callable).
    x : Tensor ``[N, ...]`` or dict of tensors
        Inputs; with a dict, ``input_key`` names the modality the model reads.
    y : LongTensor ``[N]``
        Labels.
    batch_size : int, default 512
        Evaluation batch size (only memory depends on it).
    input_key : str, optional
        Key of the modality to read when ``x`` is a dict.
    device : str or torch.device, optional
        Where to run; defaults to the model's parameters' device (CPU for plain callables).

    Returns
    -------
    float
        Accuracy in [0, 1].

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.eye(2)), model.bias.zero_()
    >>> evaluate_accuracy(model, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    0.5
    """
    xs = _select(x, input_key, "x")
    labels = _check_labels(y, xs.shape[0], "y")
    batch_size = _positive_int(batch_size, "batch_size")
    if device is None:
        device = _model_device(model) if isinstance(model, nn.Module) else torch.device("cpu")
    device = torch.device(device)
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    flags = [m.training for m in modules]
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for m in modules:
            m.train(False)
        with torch.inference_mode():
            for start in range(0, xs.shape[0], batch_size):
                xb = xs[start : start + batch_size].to(device)
                yb = labels[start : start + batch_size].to(device)
                logits = model(xb)
                if logits.dim() != 2 or logits.shape[0] != xb.shape[0]:
                    raise ValueError(
                        f"model must return logits of shape [{xb.shape[0]}, K], got "
                        f"{list(logits.shape)}"
                    )
                correct += (logits.argmax(dim=1) == yb).sum()
    finally:
        for m, flag in zip(modules, flags):
            m.train(flag)
    return int(correct) / xs.shape[0]


# ----------------------------------------------------------------------------- training
def fit(
    model: nn.Module,
    x: Inputs,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 0.1,
    batch_size: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_schedule: Schedule = None,
    noise_sigma: float = 0.0,
    perturb: Perturb | None = None,
    eval_data: tuple[Inputs, torch.Tensor] | None = None,
    input_key: str | None = None,
    input_range: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
    checkpoint: str | Path | None = None,
    verbose: bool = True,
    device: str | torch.device | None = None,
) -> TrainHistory:
    """Train ``model`` with cross-entropy on ``(x, y)``.

    Parameters
    ----------
    model : nn.Module
        Maps a batch ``[B, ...]`` of the selected modality to logits ``[B, K]``. Trained in
        place (moved to ``device`` if given) and left in eval mode.
    x : Tensor ``[N, ...]`` or dict of tensors
        Training inputs; with a dict, ``input_key`` names the modality the model reads.
        The whole modality is moved to the device once.
    y : LongTensor ``[N]``
        Labels in ``0..K-1`` (checked against the model's output width).
    epochs : int
        Total number of epochs (>= 1), including any already in ``checkpoint``.
    lr : float, default 0.1
        Base learning rate.
    batch_size : int, default 128
        Mini-batch size; the last batch of an epoch may be smaller (no sample is dropped).
    optimizer : {"sgd", "adam", "adamw"}, default "sgd"
        SGD uses ``momentum``.
    momentum : float, default 0.9
        SGD momentum.
    weight_decay : float, default 0.0
        L2 penalty (decoupled for ``"adamw"``).
    lr_schedule : {None, "constant", "step", "cosine"} or callable, default None
        Per-epoch multiplier of ``lr``: ``"step"`` is x0.1 at 1/2 and again at 3/4 of the
        epochs, ``"cosine"`` anneals towards 0; a callable gets ``(epoch, epochs)`` (epoch
        0-based) and returns the factor.
    noise_sigma : float, default 0.0
        Standard deviation of the Gaussian noise added to every training input (input
        space), for models to be smoothed with the same sigma.
    perturb : callable, optional
        ``perturb(model, xb, yb) -> xb_new`` applied to every training batch before the update
        (model in train mode; gradients it leaves on parameters are discarded). Must return a
        tensor shaped like ``xb``.
    eval_data : (x_eval, y_eval), optional
        Evaluated (clean accuracy) after every epoch.
    input_key : str, optional
        Modality to read when ``x`` (and ``x_eval``) are dicts.
    input_range : (float, float) or None, default (0, 1)
        Range every input must lie in; ``None`` disables the check (e.g. point clouds).
    seed : int, default 0
        Seeds shuffling, noise, dropout and ``perturb``'s randomness per epoch. The initial
        weights are the model's own: seed before constructing it.
    checkpoint : str or Path, optional
        File written at the end of every epoch. If it exists when ``fit`` starts, training
        resumes after its last completed epoch (settings must match; ``ValueError`` if not).
    verbose : bool, default True
        tqdm progress bar (only when stderr is a terminal).
    device : str or torch.device, optional
        Where to train; defaults to the model's device.

    Returns
    -------
    TrainHistory
        Per-epoch loss, training accuracy, evaluation accuracy, learning rate and time.

    Raises
    ------
    ValueError
        Mismatched lengths, labels outside the model's outputs, inputs outside
        ``input_range`` or non-finite, ``epochs < 1``, negative ``noise_sigma``, unknown
        optimiser or schedule, a checkpoint from different settings, a diverged loss.
    TypeError
        Non-tensor inputs, float labels, a model that is not an ``nn.Module``.

    Examples
    --------
    >>> import torch
    >>> from hierclass.models import SmallCNN
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 2
    >>> model = SmallCNN(2, image_size=8, channels=(4, 4, 4))
    >>> hist = fit(model, x, y, epochs=2, lr=0.05, batch_size=32, noise_sigma=0.25,
    ...            verbose=False)
    >>> hist.epoch, len(hist.loss)
    ([1, 2], 2)
    """
    # ---- validate everything before touching the model
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module to be trained, got {type(model).__name__}"
        )
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if (
        isinstance(lr, bool)
        or not isinstance(lr, int | float)
        or not (lr > 0 and math.isfinite(lr))
    ):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    momentum = _non_negative(momentum, "momentum")
    weight_decay = _non_negative(weight_decay, "weight_decay")
    noise_sigma = _non_negative(noise_sigma, "noise_sigma")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
    if isinstance(lr_schedule, str) and lr_schedule not in _SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {_SCHEDULES}, a callable or None, got {lr_schedule!r}"
        )
    if lr_schedule is not None and not isinstance(lr_schedule, str) and not callable(lr_schedule):
        raise TypeError(
            f"lr_schedule must be a str, a callable or None, got {type(lr_schedule).__name__}"
        )
    if perturb is not None and not callable(perturb):
        raise TypeError(
            f"perturb must be callable(model, xb, yb) -> xb, got {type(perturb).__name__}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if input_range is not None:
        if len(input_range) != 2 or not input_range[0] < input_range[1]:
            raise ValueError(
                f"input_range must be (low, high) with low < high, got {input_range!r}"
            )

    xs = _select(x, input_key, "x")
    _check_inputs(xs, "x", input_range)
    ys = _check_labels(y, xs.shape[0], "y")
    eval_pair = None
    if eval_data is not None:
        if not isinstance(eval_data, tuple | list) or len(eval_data) != 2:
            raise ValueError("eval_data must be a pair (x_eval, y_eval)")
        x_eval = _select(eval_data[0], input_key, "x_eval")
        _check_inputs(x_eval, "x_eval", input_range)
        eval_pair = (x_eval, _check_labels(eval_data[1], x_eval.shape[0], "y_eval"))

    if device is not None:
        model.to(device)
    dev = torch.device(device) if device is not None else _model_device(model)
    num_outputs = _probe_outputs(model, xs[:2].to(dev))
    for labels, name in ((ys, "y"), (eval_pair[1] if eval_pair else None, "y_eval")):
        if labels is not None and int(labels.max()) >= num_outputs:
            raise ValueError(
                f"{name} has label {int(labels.max())} but the model outputs {num_outputs} "
                f"logits (labels must be in 0..{num_outputs - 1})"
            )

    config = {
        "epochs": epochs,
        "lr": float(lr),
        "batch_size": batch_size,
        "optimizer": optimizer,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "lr_schedule": _describe(lr_schedule),
        "noise_sigma": noise_sigma,
        "perturb": _describe(perturb),
        "seed": seed,
        "num_samples": int(xs.shape[0]),
        "input_key": input_key,
    }
    opt = _make_optimizer(optimizer, model, float(lr), momentum, weight_decay)
    history = TrainHistory(config=dict(config))
    start_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = _checkpoint.load(path, dev)
        if state["config"] != config:
            diff = {
                k: (state["config"].get(k), v)
                for k, v in config.items()
                if state["config"].get(k) != v
            }
            raise ValueError(
                f"checkpoint {path} was written with different settings (saved, now): {diff}; "
                "delete it or choose another checkpoint path to start afresh"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history = TrainHistory(**state["history"])
        start_epoch = int(state["epoch"])

    x_dev, y_dev = xs.to(dev), ys.to(dev)
    n = xs.shape[0]
    num_batches = len(batch_bounds(n, batch_size))
    show = verbose and sys.stderr.isatty()
    # Fork (and afterwards restore) the caller's RNG on the CPU and on the training device.
    rng_fork: dict[str, Any] = {"devices": []}
    if dev.type != "cpu":
        index = (
            dev.index
            if dev.index is not None
            else torch.get_device_module(dev.type).current_device()
        )
        rng_fork = {"devices": [index], "device_type": dev.type}
    bar = None
    if show and start_epoch < epochs:
        from tqdm.auto import tqdm

        bar = tqdm(total=(epochs - start_epoch) * num_batches, desc="fit", leave=False)
    try:
        with torch.random.fork_rng(**rng_fork):
            for epoch in range(start_epoch, epochs):
                epoch_lr = float(lr) * _lr_factor(lr_schedule, epoch, epochs)
                for group in opt.param_groups:
                    group["lr"] = epoch_lr
                seconds, loss, acc = _train_one_epoch(
                    model,
                    opt,
                    x_dev,
                    y_dev,
                    batch_size,
                    noise_sigma,
                    perturb,
                    _epoch_seed(seed, epoch),
                    bar,
                )
                if not math.isfinite(loss):
                    raise ValueError(
                        f"training diverged at epoch {epoch + 1} (loss {loss}); lower lr"
                    )
                eval_acc = math.nan
                if eval_pair is not None:
                    eval_acc = evaluate_accuracy(model, eval_pair[0], eval_pair[1], device=dev)
                history.epoch.append(epoch + 1)
                history.loss.append(loss)
                history.accuracy.append(acc)
                history.eval_accuracy.append(eval_acc)
                history.lr.append(epoch_lr)
                history.seconds.append(seconds)
                if bar is not None:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", acc=f"{acc:.3f}")
                if path is not None:
                    _checkpoint.save(
                        path,
                        {
                            "config": config,
                            "epoch": epoch + 1,
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "history": history.as_dict(),
                        },
                    )
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return history


def _probe_outputs(model: nn.Module, xb: torch.Tensor) -> int:
    """Number of logits the model outputs, from a two-sample forward pass in eval mode."""
    modules = list(model.modules())
    flags = [m.training for m in modules]
    try:
        model.eval()
        with torch.no_grad():
            logits = model(xb)
    finally:
        for m, flag in zip(modules, flags):
            m.train(flag)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != xb.shape[0]:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits of shape [B, K], got {got}")
    return int(logits.shape[1])


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


def _train_one_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    noise_sigma: float,
    perturb: Perturb | None,
    epoch_seed: int,
    bar: Any,
) -> tuple[float, float, float]:
    """One pass over the data; returns (seconds, mean loss, accuracy). One sync per epoch."""
    dev = x.device
    torch.manual_seed(epoch_seed)  # dropout and perturb's randomness
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(epoch_seed))
    order = order.to(dev)
    noise_gen = None
    if noise_sigma > 0:
        noise_gen = torch.Generator(device=dev).manual_seed(epoch_seed + 1)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    model.train()
    tic = time.perf_counter()
    for start, stop in batch_bounds(x.shape[0], batch_size):
        index = order[start:stop]
        xb, yb = x[index], y[index]
        if perturb is not None:
            new = perturb(model, xb, yb)
            if not isinstance(new, torch.Tensor) or new.shape != xb.shape:
                got = list(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
                raise ValueError(
                    f"perturb must return a tensor of shape {list(xb.shape)}, got {got}"
                )
            xb = new.detach()
            model.train()  # in case perturb switched modes
        if noise_gen is not None:
            xb = xb + noise_sigma * torch.randn(
                xb.shape, generator=noise_gen, device=dev, dtype=xb.dtype
            )
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * yb.shape[0]
        correct += (logits.detach().argmax(dim=1) == yb).sum()
        if bar is not None:
            bar.update(1)
    if dev.type != "cpu":
        torch.get_device_module(dev.type).synchronize(dev)
    seconds = time.perf_counter() - tic
    n = x.shape[0]
    return seconds, float(loss_sum) / n, int(correct) / n

"""What every trainer validates once, before touching the model: the model, the data, the
evaluation data and the loop's settings. The loop behind it assumes valid input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hierclass._utils.checks import non_negative, non_negative_int, positive_int, positive_number
from hierclass._utils.modules import model_device
from hierclass.inputs import InputRange, check_input_range

from ._data import training_tensors
from .evaluate import num_outputs
from .loop import OPTIMIZERS, Schedule, check_schedule, describe


@dataclass
class Prepared:
    """Validated data on the training device and the loop's settings."""

    x: torch.Tensor
    y: torch.Tensor
    eval_data: tuple[torch.Tensor, torch.Tensor] | None
    loop: dict[str, Any]  # keyword arguments of run_epochs
    config: dict[str, Any]  # what checkpoints record (and a resumed run must match)


def prepare(
    model: Any,
    x: Any,
    y: Any,
    *,
    epochs: Any,
    lr: Any,
    batch_size: Any,
    optimizer: Any,
    momentum: Any,
    weight_decay: Any,
    lr_schedule: Any,
    seed: Any,
    verbose: Any,
    eval_data: Any,
    input_key: str | None,
    input_range: InputRange,
    device: Any,
) -> Prepared:
    """Validate a trainer's arguments; move the data to the training device once."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module to be trained, got {type(model).__name__}"
        )
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_number(lr, "lr")
    momentum = non_negative(momentum, "momentum")
    weight_decay = non_negative(weight_decay, "weight_decay")
    seed = non_negative_int(seed, "seed")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    schedule: Schedule = check_schedule(lr_schedule)
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True, False or None, got {verbose!r}")
    input_range = check_input_range(input_range)

    xs, ys = training_tensors(x, y, input_key=input_key, input_range=input_range)
    eval_pair = None
    if eval_data is not None:
        from torch.utils.data import DataLoader, Dataset

        if isinstance(eval_data, Dataset | DataLoader):
            ex, ey = eval_data, None
        elif isinstance(eval_data, tuple | list) and len(eval_data) == 2:
            ex, ey = eval_data
        else:
            raise ValueError(
                "eval_data must be a pair (x_eval, y_eval) or a Dataset/DataLoader of pairs, "
                f"got {type(eval_data).__name__}"
            )
        eval_pair = training_tensors(ex, ey, input_key=input_key, input_range=input_range,
                                     what="x_eval", label_name="y_eval")  # fmt: skip

    if device is not None:
        model.to(device)
    dev = torch.device(device) if device is not None else model_device(model)
    width = num_outputs(model, xs[:2].to(dev))
    for labels, name in ((ys, "y"), (eval_pair[1] if eval_pair else None, "y_eval")):
        if labels is not None and int(labels.max()) >= width:
            raise ValueError(
                f"{name} has label {int(labels.max())} but the model outputs {width} "
                f"logits (labels must be in 0..{width - 1})"
            )
    if eval_pair is not None:
        eval_pair = (eval_pair[0].to(dev), eval_pair[1].to(dev))
    loop = dict(epochs=epochs, batch_size=batch_size, lr=lr, lr_schedule=schedule,
                optimizer=optimizer, momentum=momentum, weight_decay=weight_decay, seed=seed,
                verbose=verbose)  # fmt: skip
    config = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "lr_schedule": describe(schedule),
        "seed": seed,
        "num_samples": int(xs.shape[0]),
        "input_key": input_key,
    }
    return Prepared(xs.to(dev), ys.to(dev), eval_pair, loop, config)

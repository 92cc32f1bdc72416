"""Bad inputs to the trainers (fit, fit_adversarial, fit_yopo, evaluate_accuracy): each is
refused before any training, with a message naming what was expected and what arrived."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hierclass.models import SmallCNN
from hierclass.training import evaluate_accuracy, fit, fit_adversarial, fit_yopo
from hierclass.training.yopo import yopo_step, yopo_train_step

from ._battery import refused

N = 8


def _model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(2, image_size=8, channels=(2, 2, 2))


def _x() -> torch.Tensor:
    return torch.rand(N, 1, 8, 8)


def _y() -> torch.Tensor:
    return torch.arange(N) % 2


def _with(value: float, row: int = 3) -> torch.Tensor:
    x = _x()
    x[row, 0, 1, 1] = value
    return x


FIT_CASES = [
    # non-finite or out-of-range inputs (the input contract)
    ("inf input", dict(x=_with(math.inf)), ValueError, ["x must be finite", r"samples \[3\]"]),
    ("nan input", dict(x=_with(math.nan)), ValueError, ["x must be finite", "nan"]),
    ("-inf input", dict(x=_with(-math.inf)), ValueError, ["x must be finite"]),
    ("0..255 image", dict(x=_x() * 255), ValueError, [r"must lie in \[0, 1\]", "got values"]),
    ("declared range", dict(x=_x() * 3, input_range=(0, 2)), ValueError, [r"\[0, 2\]"]),
    ("bad input_range", dict(input_range=(1, 0)), ValueError, ["input_range", "low < high"]),
    ("nan eval input", dict(eval_data=(_with(math.nan), _y())), ValueError, ["x_eval", "finite"]),
    (
        "int images",
        dict(x=torch.zeros(N, 1, 8, 8, dtype=torch.uint8)),
        TypeError,
        ["floating-point", "uint8"],
    ),
    ("list input", dict(x=[[0.0]] * N), TypeError, ["torch.Tensor or a dict", "list"]),
    (
        "empty input",
        dict(x=torch.rand(0, 1, 8, 8), y=torch.zeros(0, dtype=torch.long)),
        ValueError,
        [r"N >= 1", r"\[0, 1, 8, 8\]"],
    ),
    ("1-d input", dict(x=torch.rand(N)), ValueError, [r"shape \[N, \.\.\.\]", rf"\[{N}\]"]),
    # labels
    ("float labels", dict(y=torch.zeros(N)), TypeError, ["integer labels", "float32"]),
    ("label list", dict(y=[0] * N), TypeError, ["torch.Tensor of integer labels", "list"]),
    ("short labels", dict(y=torch.arange(N - 1) % 2), ValueError, [rf"shape \[{N}\]", "got"]),
    (
        "2-d labels",
        dict(y=torch.zeros(N, 1, dtype=torch.long)),
        ValueError,
        [rf"shape \[{N}\]", rf"\[{N}, 1\]"],
    ),
    ("negative label", dict(y=torch.full((N,), -1)), ValueError, [">= 0", "-1"]),
    ("label >= K", dict(y=torch.full((N,), 2)), ValueError, ["label 2", "outputs 2 logits"]),
    (
        "eval label >= K",
        dict(eval_data=(_x(), torch.full((N,), 7))),
        ValueError,
        ["y_eval has label 7", "outputs 2"],
    ),
    ("missing labels", dict(y=None), TypeError, ["labels are missing", "pass y"]),
    (
        "labels twice",
        dict(x=TensorDataset(_x(), _y())),
        TypeError,
        ["carries its labels", "y=None"],
    ),
    (
        "loader of singles",
        dict(x=DataLoader(_x(), batch_size=4), y=None),
        TypeError,
        [r"\(input, label\) pairs", "Tensor"],
    ),
    ("eval triple", dict(eval_data=(_x(), _y(), _y())), ValueError, ["pair", "tuple"]),
    # dict batches
    ("dict without key", dict(x={"image": _x()}), ValueError, ["pass input_key=", "image"]),
    (
        "unknown key",
        dict(x={"image": _x()}, input_key="lidar"),
        ValueError,
        ["'lidar' not in x", "available"],
    ),
    ("key for tensor", dict(input_key="image"), ValueError, ["input_key='image'", "tensor"]),
    # settings
    ("epochs 0", dict(epochs=0), ValueError, ["epochs must be an int >= 1", "0"]),
    ("epochs 1.5", dict(epochs=1.5), ValueError, ["epochs must be an int >= 1", "1.5"]),
    ("batch_size True", dict(batch_size=True), ValueError, ["batch_size", "True"]),
    ("lr nan", dict(lr=math.nan), ValueError, ["lr must be a finite number > 0", "nan"]),
    ("lr inf", dict(lr=math.inf), ValueError, ["lr must be a finite number > 0", "inf"]),
    ("lr str", dict(lr="0.1"), ValueError, ["lr must be", "'0.1'"]),
    ("momentum -1", dict(momentum=-1.0), ValueError, ["momentum must be a number >= 0"]),
    ("weight_decay inf", dict(weight_decay=math.inf), ValueError, ["weight_decay", "finite"]),
    ("noise inf", dict(noise_sigma=math.inf), ValueError, ["noise_sigma", "finite"]),
    ("noise -0.1", dict(noise_sigma=-0.1), ValueError, ["noise_sigma must be a number >= 0"]),
    ("seed -1", dict(seed=-1), ValueError, ["seed must be an int >= 0", "-1"]),
    ("seed float", dict(seed=0.5), ValueError, ["seed must be an int >= 0", "0.5"]),
    ("verbose str", dict(verbose="yes"), TypeError, ["verbose must be True, False or None"]),
    ("optimizer", dict(optimizer="rmsprop"), ValueError, ["optimizer must be one of", "rmsprop"]),
    ("schedule name", dict(lr_schedule="linear"), ValueError, ["lr_schedule must be", "linear"]),
    ("schedule list", dict(lr_schedule=["a"]), TypeError, ["milestone epochs", "'a'"]),
    (
        "schedule nan",
        dict(lr_schedule=lambda e, n: math.nan),
        ValueError,
        ["finite factor >= 0", "nan"],
    ),
    ("perturb", dict(perturb=3), TypeError, ["perturb must be callable", "int"]),
    (
        "perturb shape",
        dict(perturb=lambda m, xb, yb: xb[:1]),
        ValueError,
        ["perturb must return a tensor of shape", r"got \[1, 1, 8, 8\]"],
    ),
    ("not a module", dict(model=lambda t: t), TypeError, ["torch.nn.Module", "function"]),
    (
        "wrong logits",
        dict(model=nn.Conv2d(1, 2, 1)),
        ValueError,
        [r"logits of shape \[B, K\]", r"got \[2, 2, 8, 8\]"],
    ),
    ("no parameters", dict(model=nn.Flatten()), ValueError, ["no trainable parameters"]),
]


@pytest.mark.parametrize("what, kwargs, error, fragments", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_refuses(what, kwargs, error, fragments) -> None:
    args = dict(model=_model(), x=_x(), y=_y(), epochs=1, verbose=False)
    args.update(kwargs)
    model = args.pop("model")
    before = (
        [p.detach().clone() for p in model.parameters()] if isinstance(model, nn.Module) else []
    )
    with refused(error, *fragments):
        fit(model, args.pop("x"), args.pop("y"), **args)
    if before and what != "perturb shape":  # refused before any update
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fit_checkpoints_that_are_not_ours_are_refused(tmp_path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with refused(ValueError, "cannot read training checkpoint", "garbage.pt") as r:
        fit(_model(), _x(), _y(), epochs=1, verbose=False, checkpoint=garbage)
    assert "weights_only" not in r.message
    other = tmp_path / "other.pt"
    torch.save({"format": "something/9", "x": 1}, other)
    with refused(ValueError, "not a hierclass training checkpoint", "something/9"):
        fit(_model(), _x(), _y(), epochs=1, verbose=False, checkpoint=other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"config": {}, "model": {}, "history": {}, "obj": torch.nn.Linear(1, 1)}, pickled)
    with refused(ValueError, "cannot read training checkpoint", "pickled.pt") as r:
        fit(_model(), _x(), _y(), epochs=1, verbose=False, checkpoint=pickled)
    assert "weights_only" not in r.message


def test_an_old_adversarial_checkpoint_is_refused_with_the_reason(tmp_path) -> None:
    # The pre-format-tag adversarial trainer's layout: exact resume is impossible (its per-epoch
    # seeding differed), so it is refused rather than silently resumed differently.
    old = tmp_path / "old.pt"
    net = _model()
    torch.save({"model": net.state_dict(), "optimizer": {}, "history": {}, "epoch": 1,
                "config": {"method": "pgd"}}, old)  # fmt: skip
    with refused(ValueError, "older hierclass adversarial trainer", "start afresh"):
        fit_adversarial(net, _x(), _y(), eps=0.1, step_size=0.05, steps=1, epochs=2,
                        verbose=False, checkpoint=old)  # fmt: skip


ADV_CASES = [
    ("eps nan", dict(eps=math.nan), ValueError, ["eps must be finite", "nan"]),
    ("step_size 0", dict(step_size=0.0), ValueError, ["step_size must be > 0"]),
    ("alpha=", dict(alpha=0.05), TypeError, ["fit_adversarial's step size is step_size="]),
    ("steps 0", dict(steps=0), ValueError, ["steps must be >= 1", "0"]),
    ("norm", dict(norm="l0"), ValueError, ["norm must be one of", "l0"]),
    ("inf input", dict(x=_with(math.inf)), ValueError, ["x must be finite"]),
    ("not in [0,1]", dict(x=_x() + 1), ValueError, [r"\[0, 1\]", "got values"]),
    ("half eval", dict(x_eval=_x()), ValueError, ["both x_eval and y_eval"]),
    (
        "eval twice",
        dict(x_eval=_x(), y_eval=_y(), eval_data=(_x(), _y())),
        ValueError,
        ["eval_data or x_eval/y_eval"],
    ),
    (
        "milestones twice",
        dict(lr_schedule="step", lr_milestones=(1,)),
        ValueError,
        ["lr_schedule or lr_milestones"],
    ),
]


@pytest.mark.parametrize("what, kwargs, error, fragments", ADV_CASES, ids=[c[0] for c in ADV_CASES])
def test_fit_adversarial_refuses(what, kwargs, error, fragments) -> None:
    args = dict(x=_x(), y=_y(), eps=0.1, step_size=0.05, steps=1, epochs=1, verbose=False)
    args.update(kwargs)
    with refused(error, *fragments):
        fit_adversarial(_model(), args.pop("x"), args.pop("y"), **args)


YOPO_CASES = [
    (
        "no split",
        dict(model=nn.Sequential(nn.Flatten(), nn.Linear(64, 2))),
        TypeError,
        ["layer_one", "Sequential"],
    ),
    ("alpha=", dict(alpha=0.05), TypeError, ["fit_yopo's step size is step_size="]),
    ("step_size 0", dict(step_size=0.0), ValueError, ["step_size must be > 0"]),
    ("m 0", dict(m=0), ValueError, [r"m \(full passes per batch\) must be an int >= 1", "0"]),
    ("n 0", dict(n=0), ValueError, [r"n \(inner steps\) must be >= 1", "0"]),
    ("accumulation", dict(grad_accumulation="max"), ValueError, ["grad_accumulation", "max"]),
    ("nan input", dict(x=_with(math.nan)), ValueError, ["x must be finite"]),
]


@pytest.mark.parametrize("what, kwargs, error, fragments", YOPO_CASES,
                         ids=[c[0] for c in YOPO_CASES])  # fmt: skip
def test_fit_yopo_refuses(what, kwargs, error, fragments) -> None:
    args = dict(model=_model(), x=_x(), y=_y(), m=1, n=1, eps=0.1, step_size=0.05, epochs=1,
                verbose=False)  # fmt: skip
    args.update(kwargs)
    with refused(error, *fragments):
        fit_yopo(args.pop("model"), args.pop("x"), args.pop("y"), **args)


ALPHA_CALLS = {
    "fit_adversarial": lambda: fit_adversarial(_model(), _x(), _y(), eps=0.1, alpha=0.05, steps=1),
    "fit_yopo": lambda: fit_yopo(_model(), _x(), _y(), m=1, n=1, eps=0.1, alpha=0.05),
    "yopo_step": lambda: yopo_step(_model(), _x(), _y(), m=1, n=1, eps=0.1, alpha=0.05),
    "yopo_train_step": lambda: yopo_train_step(
        m=1, n=1, eps=0.1, alpha=0.05, norm="linf", grad_accumulation="mean"
    ),
}


@pytest.mark.parametrize("name", sorted(ALPHA_CALLS))
def test_torchattacks_alpha_is_refused_naming_step_size(name) -> None:
    # torchattacks' name for the step size, without step_size=: one line naming the keyword,
    # before Python's "missing argument" (alpha is smoothing's failure probability here).
    with refused(TypeError, rf"^{name}'s step size is step_size= \(alpha is smoothing's failure "
                 r"probability\)$"):  # fmt: skip
        ALPHA_CALLS[name]()


EVAL_CASES = [
    ("float labels", dict(y=torch.zeros(N)), TypeError, ["integer labels"]),
    ("short labels", dict(y=torch.zeros(2, dtype=torch.long)), ValueError, [rf"shape \[{N}\]"]),
    ("batch_size 0", dict(batch_size=0), ValueError, ["batch_size must be an int >= 1"]),
    ("dict without key", dict(x={"a": _x()}), ValueError, ["pass input_key="]),
]


@pytest.mark.parametrize("what, kwargs, error, fragments", EVAL_CASES,
                         ids=[c[0] for c in EVAL_CASES])  # fmt: skip
def test_evaluate_accuracy_refuses(what, kwargs, error, fragments) -> None:
    args = dict(x=_x(), y=_y())
    args.update(kwargs)
    with refused(error, *fragments):
        evaluate_accuracy(_model(), args.pop("x"), args.pop("y"), **args)

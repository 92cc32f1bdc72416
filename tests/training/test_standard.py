"""The plain training loop: learning, noise, hooks, schedules, exact resume, validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from hierclass.data import load_digits
from hierclass.models import SmallCNN
from hierclass.training import TrainHistory, evaluate_accuracy, fit


def tiny_cnn(num_classes: int = 10, seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(num_classes, image_size=8, channels=(8, 16, 16))


@pytest.fixture(scope="module")
def digits():
    return load_digits()


class Recorder(nn.Module):
    """Wraps a model; keeps the inputs of training-mode calls; can fail at a given call."""

    def __init__(self, inner: nn.Module, fail_at: int | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        if self.training:
            self.seen.append(x.detach().clone())
        return self.inner(x)


def test_small_cnn_learns_digits(digits) -> None:
    model = tiny_cnn()
    hist = fit(
        model,
        digits.x_train,
        digits.y_train,
        epochs=3,
        lr=0.01,
        batch_size=32,
        optimizer="adam",
        eval_data=(digits.x_test, digits.y_test),
        verbose=False,
    )
    # Chance is 0.10; this run reaches about 0.95 on the 360 test digits. At p = 0.95 the
    # binomial standard error is 0.011, so 0.85 sits ~9 SE below (seed/thread changes pass).
    assert hist.eval_accuracy[-1] >= 0.85
    assert hist.eval_accuracy[-1] == evaluate_accuracy(model, digits.x_test, digits.y_test)
    assert hist.loss[-1] < hist.loss[0]
    assert not model.training  # left ready for prediction


def _run(tmp: Path | None, digits, fail_at: int | None = None, epochs: int = 3):
    model = Recorder(tiny_cnn(), fail_at=fail_at)
    hist = fit(
        model,
        digits.x_train[:256],
        digits.y_train[:256],
        epochs=epochs,
        lr=0.05,
        batch_size=64,
        momentum=0.9,
        noise_sigma=0.1,
        lr_schedule="cosine",
        seed=3,
        checkpoint=tmp,
        verbose=False,
    )
    return model, hist


def _same(a: TrainHistory, b: TrainHistory) -> None:
    for key in ("epoch", "loss", "accuracy", "eval_accuracy", "lr", "config"):
        va, vb = getattr(a, key), getattr(b, key)
        assert len(va) == len(vb)
        assert (
            all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(va, vb))
            if (key != "config")
            else va == vb
        )


def test_resume_after_kill_reproduces_the_uninterrupted_run(tmp_path: Path, digits) -> None:
    reference, ref_hist = _run(None, digits)
    ckpt = tmp_path / "run" / "fit.pt"
    # 4 batches per epoch + 1 probe call: call 8 is in the middle of the second epoch.
    with pytest.raises(KeyboardInterrupt):
        _run(ckpt, digits, fail_at=8)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1
    resumed, hist = _run(ckpt, digits)  # a fresh process would rebuild the model the same way
    assert hist.epoch == [1, 2, 3]
    _same(hist, ref_hist)
    ref_state, new_state = reference.state_dict(), resumed.state_dict()
    assert ref_state.keys() == new_state.keys()
    for key in ref_state:
        assert torch.equal(ref_state[key], new_state[key]), key
    # Only epochs 2 and 3 were trained again: 1 probe + 2 epochs x 4 batches.
    assert resumed.calls == 1 + 2 * 4
    # Finished checkpoint: nothing is retrained, the weights come from the file.
    again, hist_again = _run(ckpt, digits)
    assert again.calls == 1 and hist_again.loss == hist.loss
    assert torch.equal(again.state_dict()["inner.rest.8.weight"], new_state["inner.rest.8.weight"])


def test_checkpoint_from_other_settings_is_refused(tmp_path: Path, digits) -> None:
    ckpt = tmp_path / "fit.pt"
    _run(ckpt, digits, epochs=1)
    with pytest.raises(ValueError, match=r"different settings.*'epochs': \(1, 3\)"):
        _run(ckpt, digits, epochs=3)


def test_same_seed_same_result_other_seed_differs(digits) -> None:
    runs = []
    for seed in (5, 5, 6):
        model = tiny_cnn()
        fit(
            model,
            digits.x_train[:128],
            digits.y_train[:128],
            epochs=1,
            batch_size=32,
            seed=seed,
            verbose=False,
        )
        runs.append(model.rest[-1].weight.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_fit_restores_the_callers_rng_state(digits) -> None:
    model = tiny_cnn()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(
        model,
        digits.x_train[:32],
        digits.y_train[:32],
        epochs=1,
        noise_sigma=0.5,
        verbose=False,
    )
    assert torch.equal(torch.rand(3), expected)


def test_noise_is_gaussian_with_sigma_in_input_space() -> None:
    sigma, n = 0.3, 64
    model = Recorder(SmallCNN(2, image_size=8, channels=(2, 2, 2)))
    x = torch.full((n, 1, 8, 8), 0.5)
    fit(model, x, torch.arange(n) % 2, epochs=1, batch_size=n, noise_sigma=sigma, verbose=False)
    (seen,) = model.seen
    noise = (seen - 0.5).flatten()
    m = noise.numel()  # 4096 draws
    # Sample mean ~ N(0, sigma^2/m); sample std has standard error ~ sigma / sqrt(2m).
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(m)
    assert abs(noise.std().item() - sigma) < 5 * sigma / math.sqrt(2 * m)


def test_without_noise_the_model_sees_the_data() -> None:
    model = Recorder(SmallCNN(2, image_size=8, channels=(2, 2, 2)))
    x = torch.rand(10, 1, 8, 8)
    fit(model, x, torch.arange(10) % 2, epochs=1, batch_size=10, verbose=False)
    (seen,) = model.seen
    # Same rows, shuffled.
    assert torch.equal(seen.flatten(1).sort(dim=0).values, x.flatten(1).sort(dim=0).values)


def test_perturb_hook_replaces_training_batches() -> None:
    calls = []

    def perturb(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        calls.append((model.training, xb.shape[0], yb.shape[0]))
        return torch.zeros_like(xb)

    model = Recorder(SmallCNN(2, image_size=8, channels=(2, 2, 2)))
    x = torch.rand(20, 1, 8, 8)
    hist = fit(
        model, x, torch.arange(20) % 2, epochs=2, batch_size=8, perturb=perturb, verbose=False
    )
    assert calls == [(True, 8, 8), (True, 8, 8), (True, 4, 4)] * 2
    assert all(bool((s == 0).all()) for s in model.seen)
    assert hist.config["perturb"].endswith("perturb")
    with pytest.raises(ValueError, match=r"perturb must return a tensor of shape \[8, 1, 8, 8\]"):
        fit(
            model,
            x,
            torch.arange(20) % 2,
            epochs=1,
            batch_size=8,
            verbose=False,
            perturb=lambda m, xb, yb: xb[:1],
        )


def test_dict_inputs_train_the_named_modality(digits) -> None:
    x = {"image": digits.x_train[:64], "meta": torch.zeros(64, 3)}
    model = tiny_cnn()
    hist = fit(
        model,
        x,
        digits.y_train[:64],
        epochs=1,
        input_key="image",
        verbose=False,
        eval_data=({"image": digits.x_test[:50]}, digits.y_test[:50]),
    )
    assert hist.config["input_key"] == "image" and 0 <= hist.eval_accuracy[0] <= 1
    assert evaluate_accuracy(model, x, digits.y_train[:64], input_key="image") >= 0
    with pytest.raises(ValueError, match=r"pass input_key="):
        fit(model, x, digits.y_train[:64], epochs=1, verbose=False)
    with pytest.raises(
        ValueError, match=r"input_key 'lidar' not in x; available: \['image', 'meta'\]"
    ):
        fit(model, x, digits.y_train[:64], epochs=1, input_key="lidar", verbose=False)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (None, [1.0, 1.0, 1.0, 1.0]),
        ("step", [1.0, 1.0, 0.1, 0.01]),
        (
            "cosine",
            [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))],
        ),
        (lambda epoch, epochs: 1.0 / (epoch + 1), [1.0, 0.5, 1 / 3, 0.25]),
    ],
)
def test_lr_schedules(schedule, expected) -> None:
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8) % 2
    hist = fit(
        SmallCNN(2, image_size=8, channels=(2, 2, 2)),
        x,
        y,
        epochs=4,
        lr=0.2,
        lr_schedule=schedule,
        verbose=False,
    )
    assert hist.lr == pytest.approx([0.2 * f for f in expected])


def test_evaluate_accuracy_is_exact_and_restores_mode() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    assert evaluate_accuracy(model, x, torch.tensor([0, 0, 0, 1]), batch_size=3) == 0.75
    assert model.training and model[1].training
    assert evaluate_accuracy(lambda t: t, x, torch.tensor([0, 1, 0, 1])) == 1.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(epochs=0), ValueError, "epochs must be an int >= 1, got 0"),
        (dict(epochs=1, noise_sigma=-0.1), ValueError, "noise_sigma must be a number >= 0"),
        (dict(epochs=1, lr=0.0), ValueError, "lr must be a finite number > 0"),
        (dict(epochs=1, batch_size=0), ValueError, "batch_size must be an int >= 1"),
        (dict(epochs=1, optimizer="rmsprop"), ValueError, "optimizer must be one of"),
        (dict(epochs=1, lr_schedule="linear"), ValueError, "lr_schedule must be one of"),
        (dict(epochs=1, y=torch.arange(7)), ValueError, r"y must have shape \[8\]"),
        (dict(epochs=1, y=torch.full((8,), 2)), ValueError, "label 2 but the model outputs 2"),
        (dict(epochs=1, y=torch.full((8,), -1)), ValueError, "y must be >= 0"),
        (dict(epochs=1, y=torch.zeros(8)), TypeError, "y must hold integer labels"),
        (
            dict(epochs=1, x=torch.full((8, 1, 8, 8), 2.0)),
            ValueError,
            r"x must lie in \[0, 1\]",
        ),
        (dict(epochs=1, x=torch.full((8, 1, 8, 8), math.nan)), ValueError, "x must be finite"),
        (dict(epochs=1, x=torch.zeros(8, 1, 8, 8, dtype=torch.uint8)), TypeError, "floating-point"),
        (dict(epochs=1, x=[[0.0]] * 8), TypeError, "x must be a torch.Tensor or a dict"),
        (
            dict(epochs=1, input_key="image"),
            ValueError,
            "input_key='image' was given but x is a tensor",
        ),
        (
            dict(epochs=1, eval_data=(torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 5]))),
            ValueError,
            "y_eval has label 5",
        ),
        (dict(epochs=1, model=lambda t: t), TypeError, "model must be a torch.nn.Module"),
    ],
)
def test_validation(kwargs, error, message) -> None:
    args = dict(
        model=SmallCNN(2, image_size=8, channels=(2, 2, 2)),
        x=torch.rand(8, 1, 8, 8),
        y=torch.arange(8) % 2,
        verbose=False,
    )
    args.update(kwargs)
    with pytest.raises(error, match=message):
        fit(args.pop("model"), args.pop("x"), args.pop("y"), **args)


def test_input_range_none_allows_point_clouds() -> None:
    from hierclass.models import PointNet

    torch.manual_seed(0)
    model = PointNet(2, point_dims=(8,), head_dims=(8,))
    x = torch.randn(16, 20, 3) * 3
    hist = fit(
        model, x, torch.arange(16) % 2, epochs=1, batch_size=8, input_range=None, verbose=False
    )
    assert hist.epochs_completed == 1


def test_a_lone_last_sample_joins_the_previous_batch_so_batch_norm_trains():
    """PointNet's BatchNorm1d cannot train on a batch of one: n = batch_size + 1 must work."""
    from hierclass.models import PointNet

    torch.manual_seed(0)
    model = PointNet(3, point_dims=(8, 16), head_dims=(8,))
    x, y = torch.rand(9, 12, 3), torch.randint(0, 3, (9,))
    history = fit(model, x, y, epochs=1, batch_size=8, verbose=False, input_range=None)
    assert len(history.loss) == 1

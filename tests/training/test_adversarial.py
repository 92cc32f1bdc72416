"""PGD adversarial training: it buys robustness, records history, resumes after a kill."""

from __future__ import annotations

import io
import math
import sys

import pytest
import torch
from torch import nn

from hierclass.attacks import PGD
from hierclass.training.adversarial import accuracy, fit_adversarial


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    return x[:1000], y[:1000], x[1000:1500], y[1000:1500]


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def test_adversarial_training_beats_standard_training_under_attack(digits):
    x, y, xt, yt = digits
    common = dict(epochs=6, lr=0.1, batch_size=50, verbose=False, seed=0)
    robust = _mlp()
    hist = fit_adversarial(robust, x, y, eps=0.2, step_size=0.07, steps=5, x_eval=xt, y_eval=yt,
                           **common)  # fmt: skip
    # The control: same loop, no perturbation budget (eps=0 makes PGD the identity).
    plain = _mlp()
    fit_adversarial(plain, x, y, eps=0.0, step_size=0.03, steps=1, **common)
    attack_r = PGD(robust, 0.2, 0.04, 10, seed=0)
    attack_p = PGD(plain, 0.2, 0.04, 10, seed=0)
    acc_r = accuracy(robust, xt, yt, attack_r)
    acc_p = accuracy(plain, xt, yt, attack_p)
    n = xt.shape[0]
    # Two proportions on n=500: a gap > 4 standard errors of the difference (<= 0.063).
    se = math.sqrt(0.25 / n * 2)
    assert acc_r - acc_p > 4 * se, (acc_r, acc_p)
    assert accuracy(robust, xt, yt) > 0.7  # still a useful classifier (chance: 0.1)
    # History: one entry per epoch; the eval attack is the training PGD.
    assert hist.epoch == [1, 2, 3, 4, 5, 6]
    assert all(0 <= a <= 1 for a in hist.clean_accuracy + hist.adversarial_accuracy)
    assert all(a <= c for a, c in zip(hist.adversarial_accuracy, hist.clean_accuracy))
    assert hist.adversarial_accuracy[-1] > hist.adversarial_accuracy[0]
    assert len(hist.seconds) == 6 and hist.total_seconds > 0
    assert hist.config["training"] == "pgd" and hist.config["steps"] == 5


def test_history_without_eval_data_is_nan(digits):
    x, y, _, _ = digits
    hist = fit_adversarial(_mlp(), x[:100], y[:100], eps=0.1, step_size=0.05, steps=1, epochs=1,
                           verbose=False)  # fmt: skip
    assert math.isnan(hist.clean_accuracy[0]) and math.isnan(hist.adversarial_accuracy[0])
    assert 0 <= hist.train_adversarial_accuracy[0] <= 1


class _KillAfter(nn.Module):
    """Wraps a model and raises after `calls` forward passes: a kill in the middle of an epoch."""

    def __init__(self, inner: nn.Module, calls: int) -> None:
        super().__init__()
        self.inner = inner
        self.left = calls

    def forward(self, x):
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt("simulated kill")
        return self.inner(x)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, digits):
    x, y, xt, yt = digits
    x, y = x[:300], y[:300]
    kwargs = dict(eps=0.1, step_size=0.05, steps=2, lr=0.05, batch_size=50, verbose=False, seed=3)
    straight = _mlp()
    ref = fit_adversarial(straight, x, y, epochs=3, **kwargs)

    ckpt = tmp_path / "run.pt"
    net = _mlp()
    # 6 batches/epoch x 4 forward passes (2 PGD steps, its final scoring pass, the update):
    # dies in the middle of epoch 2.
    killer = _KillAfter(net, calls=6 * 4 + 10)
    with pytest.raises(KeyboardInterrupt):
        fit_adversarial(killer, x, y, epochs=3, checkpoint=ckpt, **kwargs)
    assert ckpt.exists() and not (tmp_path / "run.pt.tmp").exists()
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1

    again = _KillAfter(_mlp(seed=9), calls=10**9)  # other init: weights must come from disk
    hist = fit_adversarial(again, x, y, epochs=3, checkpoint=ckpt, **kwargs)
    assert hist.epoch == [1, 2, 3]
    torch.testing.assert_close(torch.tensor(hist.loss), torch.tensor(ref.loss), rtol=0, atol=0)
    for a, b in zip(straight.parameters(), again.inner.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    # Extending a finished run continues from the last epoch.
    hist4 = fit_adversarial(again, x, y, epochs=4, checkpoint=ckpt, **kwargs)
    assert hist4.epoch == [1, 2, 3, 4] and hist4.loss[:3] == hist.loss


def test_checkpoint_from_other_settings_is_refused(tmp_path, digits):
    x, y, _, _ = digits
    ckpt = tmp_path / "run.pt"
    kwargs = dict(step_size=0.05, steps=1, epochs=1, verbose=False, checkpoint=ckpt)
    fit_adversarial(_mlp(), x[:50], y[:50], eps=0.1, **kwargs)
    with pytest.raises(ValueError, match="different settings"):
        fit_adversarial(_mlp(), x[:50], y[:50], eps=0.2, **kwargs)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_when_not_verbose(digits, capsys, monkeypatch):
    # stderr is never a terminal under pytest: pretend it is, or a bar that ignores
    # verbose=False would still be hidden by the terminal check and this test could not fail.
    x, y, _, _ = digits
    monkeypatch.setattr(sys, "stderr", _Terminal())
    fit_adversarial(_mlp(), x[:50], y[:50], eps=0.1, step_size=0.05, steps=1, epochs=1,
                    verbose=False)  # fmt: skip
    assert sys.stderr.getvalue() == ""
    assert capsys.readouterr().out == ""
    # The control: the same run with the default (verbose=None) on a terminal shows a bar.
    fit_adversarial(_mlp(), x[:50], y[:50], eps=0.1, step_size=0.05, steps=1, epochs=1)
    assert "PGD-AT" in sys.stderr.getvalue()


def test_bad_input_raises(digits):
    x, y, _, _ = digits
    ok = dict(eps=0.1, step_size=0.05, steps=1, epochs=1, verbose=False)
    for bad, match in [
        (dict(eps=-0.1), "eps must be >= 0"),
        (dict(step_size=0.0), "step_size"),
        (dict(steps=0), "steps must be >= 1"),
        (dict(norm="l0"), "norm must be one of"),
        (dict(epochs=0), "epochs must be an int >= 1"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            fit_adversarial(_mlp(), x[:20], y[:20], **{**ok, **bad})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_adversarial(_mlp(), x[:20] * 255, y[:20], **ok)
    with pytest.raises(ValueError, match="shape"):
        fit_adversarial(_mlp(), x[:20], y[:19], **ok)
    with pytest.raises(ValueError, match="both x_eval and y_eval"):
        fit_adversarial(_mlp(), x[:20], y[:20], x_eval=x[:5], **ok)
    with pytest.raises(TypeError, match="nn.Module"):
        fit_adversarial(lambda t: t, x[:20], y[:20], **ok)

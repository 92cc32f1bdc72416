"""YOPO-m-n: inner updates equal full backprop where theory says so; the Hamiltonian weight
gradient for layer one; training lowers the adversarial loss; bad input is refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hierclass.attacks import PGD
from hierclass.training.yopo import fit_yopo, yopo_step


class Split(nn.Module):
    """model(x) == rest(layer_one(x)), the contract hierclass.models provide."""

    def __init__(self, layer_one: nn.Module, rest: nn.Module) -> None:
        super().__init__()
        self.layer_one = layer_one
        self.rest = rest

    def forward(self, x):
        return self.rest(self.layer_one(x))


def _model(linear_rest: bool, seed: int = 0, k: int = 3) -> Split:
    torch.manual_seed(seed)
    layer_one = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh())
    if linear_rest:
        rest = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, k))
    else:
        rest = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 6 * 6, k))  # fmt: skip
    return Split(layer_one, rest).double()


def _linear_loss(logits, y):
    # Linear in the logits: with a linear `rest` the adjoint p is then constant in eta.
    return -logits.gather(1, y[:, None]).mean()


def _full_backprop_pgd(model, x, y, eta, steps, step_size, eps, loss_fn, norm="linf"):
    """Reference: PGD steps with the gradient backpropagated through the whole model."""
    x_adv = (x + eta).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(x_adv), y), x_adv)
        if norm == "linf":
            x_adv = torch.min(torch.max(x_adv + step_size * grad.sign(), x - eps), x + eps)
        else:
            g = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta = x_adv + step_size * g - x
            n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            x_adv = x + delta * (eps / n).clamp(max=1)
        x_adv = x_adv.clamp(0, 1)
    return x_adv.detach() - x


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 6, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=gen)
    eta = (torch.rand(6, 1, 6, 6, generator=gen, dtype=torch.float64) - 0.5) * 0.1
    return x, y, eta


def test_first_inner_step_equals_full_backprop_for_any_model(batch):
    x, y, eta = batch
    model = _model(linear_rest=False)
    out = yopo_step(model, x, y, m=1, n=1, eps=0.1, step_size=0.03, eta=eta)
    eta0 = out.etas[0]
    expected = _full_backprop_pgd(model, x, y, eta0, 1, 0.03, 0.1, F.cross_entropy)
    torch.testing.assert_close(out.etas[1], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.1, 0.02), ("l2", 0.5, 0.1)])
@pytest.mark.parametrize("m,n", [(1, 5), (2, 3)])
def test_inner_updates_equal_full_backprop_when_later_layers_are_linear(batch, norm, eps, step,
                                                                          m, n):  # fmt: skip
    x, y, eta = batch
    model = _model(linear_rest=True)
    out = yopo_step(model, x, y, m=m, n=n, eps=eps, step_size=step, norm=norm, eta=eta,
                    loss_fn=_linear_loss)  # fmt: skip
    expected = _full_backprop_pgd(model, x, y, out.etas[0], m * n, step, eps, _linear_loss, norm)
    torch.testing.assert_close(out.etas[-1], expected, atol=1e-12, rtol=0)
    assert not torch.allclose(out.etas[-1], out.etas[0])  # it moved


def test_inner_updates_differ_from_full_backprop_when_adjoint_changes(batch):
    # The control for the test above: with a nonlinear rest, frozen p is an approximation.
    x, y, eta = batch
    model = _model(linear_rest=False)
    out = yopo_step(model, x, y, m=1, n=8, eps=0.3, step_size=0.05, eta=eta)
    expected = _full_backprop_pgd(model, x, y, out.etas[0], 8, 0.05, 0.3, F.cross_entropy)
    assert not torch.allclose(out.etas[-1], expected)


@pytest.mark.parametrize("accumulation", ["mean", "sum"])
def test_weight_gradients_follow_the_hamiltonian_choice(batch, accumulation):
    x, y, eta = batch
    model = _model(linear_rest=False)
    m = 3
    out = yopo_step(model, x, y, m=m, n=2, eps=0.1, step_size=0.03, eta=eta,
                    grad_accumulation=accumulation)  # fmt: skip
    scale = 1.0 / m if accumulation == "mean" else 1.0
    one = list(model.layer_one.parameters())
    rest = list(model.rest.parameters())
    want_one = [torch.zeros_like(p) for p in one]
    want_rest = [torch.zeros_like(p) for p in rest]
    full_one = [torch.zeros_like(p) for p in one]
    for j in range(m):
        z = model.layer_one(x + out.etas[j])
        loss = F.cross_entropy(model.rest(z), y)
        grads = torch.autograd.grad(loss, [z, *one, *rest])
        p = grads[0]
        for acc, g in zip(want_rest, grads[1 + len(one) :]):
            acc += scale * g
        for acc, g in zip(full_one, grads[1 : 1 + len(one)]):
            acc += scale * g
        # Layer one: gradient of <p_j, f0(x + eta_{j+1})> at the perturbation just found.
        h = (model.layer_one(x + out.etas[j + 1]) * p).sum()
        for acc, g in zip(want_one, torch.autograd.grad(h, one)):
            acc += scale * g
    for param, want in zip(rest, want_rest):
        torch.testing.assert_close(param.grad, want)
    for param, want in zip(one, want_one):
        torch.testing.assert_close(param.grad, want)
    # The control: plain backprop's layer-one gradient is a different choice.
    assert not torch.allclose(one[0].grad, full_one[0])
    torch.testing.assert_close(out.loss.double(), out.loss.double())  # finite 0-d
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)


def test_perturbation_stays_in_ball_and_box():
    model = _model(linear_rest=False)
    x = torch.rand(8, 1, 6, 6, dtype=torch.float64).round()  # all pixels at 0 or 1
    y = torch.randint(0, 3, (8,))
    out = yopo_step(model, x, y, m=3, n=4, eps=0.2, step_size=0.1)
    for eta in out.etas:
        assert eta.abs().max() <= 0.2 + 1e-12
        assert (x + eta).min() >= 0 and (x + eta).max() <= 1
    torch.testing.assert_close(out.x_adv, x + out.etas[-1])


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images[:, 1:7, 1:7] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target % 3, dtype=torch.long)  # 3 balanced-ish classes
    return x[:600], y[:600]


def test_training_reduces_adversarial_loss(digits):
    x, y = digits
    model = _model(linear_rest=False).float()
    attack = PGD(model, 0.1, 0.025, 10, seed=0)

    def adv_loss():
        x_adv = attack(x, y)
        with torch.no_grad():
            return float(F.cross_entropy(model(x_adv), y))

    before = adv_loss()
    hist = fit_yopo(model, x, y, m=3, n=3, eps=0.1, step_size=0.04, epochs=10, lr=0.1,
                    batch_size=50, verbose=False)  # fmt: skip
    after = adv_loss()
    assert hist.epoch == list(range(1, 11))
    assert hist.loss[-1] < hist.loss[0]
    # Chance-level loss is ln 3 ~ 1.10; training must cut the PGD-10 loss well below it.
    assert after < 0.7 * before and after < 0.8


def test_resume_replays_exactly(tmp_path, digits):
    x, y = digits[0][:200], digits[1][:200]
    kwargs = dict(m=2, n=2, eps=0.1, step_size=0.05, lr=0.05, batch_size=50, verbose=False)
    straight = _model(linear_rest=False).float()
    fit_yopo(straight, x, y, epochs=2, **kwargs)
    resumed = _model(linear_rest=False).float()
    ckpt = tmp_path / "yopo.pt"
    fit_yopo(resumed, x, y, epochs=1, checkpoint=ckpt, **kwargs)
    fresh = _model(linear_rest=False, seed=5).float()  # weights come from the checkpoint
    hist = fit_yopo(fresh, x, y, epochs=2, checkpoint=ckpt, **kwargs)
    assert hist.epoch == [1, 2]
    for a, b in zip(straight.parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_input_raises(digits):
    x, y = digits
    model = _model(linear_rest=False).float()
    ok = dict(m=2, n=2, eps=0.1, step_size=0.05, epochs=1, verbose=False)
    with pytest.raises(TypeError, match="layer_one"):
        fit_yopo(nn.Sequential(nn.Flatten(), nn.Linear(36, 3)), x, y, **ok)
    for bad, match in [
        (dict(eps=-0.1), "eps must be >= 0"),
        (dict(step_size=0.0), "step_size must be > 0"),
        (dict(n=0), "n \\(inner steps\\) must be >= 1"),
        (dict(m=0), "m \\(full passes"),
        (dict(norm="l1"), "norm must be one of"),
        (dict(grad_accumulation="max"), "grad_accumulation"),
    ]:
        with pytest.raises(ValueError, match=match):
            fit_yopo(model, x, y, **{**ok, **bad})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_yopo(model, x * 2, y, **ok)

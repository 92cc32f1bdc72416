"""PGD: stays in the threat model, reaches the analytic optimum, matches or beats torchattacks."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import binomtest
from torch import nn

from hierclass._utils.modules import model_mode
from hierclass.attacks import PGD


def _linear_binary(w: torch.Tensor) -> nn.Module:
    """Two logits (w.x, -w.x): the CE of class 0 is decreasing in w.x."""
    d = w.numel()
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([w.flatten(), -w.flatten()]))
    return net


def _tiny_net(seed: int = 0, d: int = 16, k: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, k))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
@pytest.mark.parametrize("random_start,restarts", [(True, 1), (False, 1), (True, 3)])
def test_never_leaves_ball_or_unit_box(norm, eps, random_start, restarts):
    net = _tiny_net()
    gen = torch.Generator().manual_seed(1)
    # Pixels at 0 and 1 force the box constraint to bite.
    x = torch.rand(64, 1, 4, 4, generator=gen).round() * 0.5 + torch.rand(64, 1, 4, 4) * 0.5
    x[:8] = 0.0
    x[8:16] = 1.0
    y = torch.randint(0, 4, (64,), generator=gen)
    x_adv = PGD(net, eps, eps / 2, 7, norm=norm, random_start=random_start, restarts=restarts)(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all()
    assert (size > 0).any()  # it did move


@pytest.mark.parametrize("random_start", [True, False])
def test_linf_reaches_analytic_corner_of_linear_model(random_start):
    torch.manual_seed(0)
    w = torch.randn(1, 5, 5)
    net = _linear_binary(w)
    x = torch.rand(16, 1, 5, 5)
    x[:, 0, 0, :] = torch.tensor([0.0, 1.0, 0.02, 0.98, 0.5])  # box-active pixels
    y = torch.zeros(16, dtype=torch.long)
    eps = 0.1
    # CE of class 0 grows as the margin 2 w.x shrinks: best point is x - eps*sign(w) in the box.
    expected = (x - eps * w.sign()).clamp(0, 1)
    x_adv = PGD(net, eps, step_size=0.03, steps=20, random_start=random_start)(x, y)
    torch.testing.assert_close(x_adv, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("random_start", [True, False])
def test_l2_reaches_analytic_point_of_linear_model(random_start):
    torch.manual_seed(0)
    w = 0.2 * torch.randn(1, 4, 4)  # small logits: the CE is not saturated in float32
    net = _linear_binary(w)
    x = 0.3 + 0.4 * torch.rand(8, 1, 4, 4)  # interior: the ball stays inside [0, 1]
    y = torch.ones(8, dtype=torch.long)
    eps = 0.25
    # Class 1's margin is -2 w.x: the worst point moves along +w / ||w||.
    expected = x + eps * w / w.norm()
    x_adv = PGD(net, eps, step_size=eps / 2, steps=60, norm="l2", random_start=random_start)(x, y)
    # The loss is first-order exact: the attained margin is the analytic optimum.
    gain = ((x_adv - x) * w).flatten(1).sum(1)
    torch.testing.assert_close(
        gain, torch.full_like(gain, eps * float(w.norm())), rtol=1e-5, atol=0
    )
    # Along the sphere the loss is flat to second order, so iterates closer than
    # sqrt(float32 eps) * eps ~ 1e-4 to the optimum tie in float32: the point is known to that.
    torch.testing.assert_close(x_adv, expected, atol=5e-4, rtol=0)
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps * (1 + 1e-6)).all()


def test_targeted_moves_towards_target():
    torch.manual_seed(0)
    w = torch.randn(1, 4, 4)
    net = _linear_binary(w)
    x = 0.3 + 0.4 * torch.rand(8, 1, 4, 4)
    target = torch.ones(8, dtype=torch.long)
    x_adv = PGD(net, 0.1, 0.03, 20, targeted=True)(x, target)
    # Raising class 1's margin means moving along -sign(w).
    torch.testing.assert_close(x_adv, x - 0.1 * w.sign(), atol=1e-6, rtol=0)


def test_restores_modes_and_leaves_parameter_grads_alone():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    net[2].eval()  # mixed modes must come back exactly
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    seen = []
    hook = net[2].register_forward_hook(lambda mod, i, o: seen.append(mod.training))
    PGD(net, 0.1, 0.05, 3)(x, y)
    hook.remove()
    assert seen and not any(seen)  # attacked in eval mode
    assert net.training and net[1].training and not net[2].training
    assert all(p.grad is None for p in net.parameters())


def test_keeps_mode_when_asked():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    net.train()
    seen = []
    net.register_forward_hook(lambda mod, i, o: seen.append(mod.training))
    PGD(net, 0.1, 0.05, 2, eval_mode=False)(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))
    assert all(seen) and net.training


def test_mode_restored_when_model_raises():
    net = nn.Sequential(nn.Flatten(), nn.Linear(5, 3))  # wrong input size -> raises
    net.train()
    with pytest.raises(RuntimeError):
        PGD(net, 0.1, 0.05, 2)(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]))
    assert net.training


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_works_under_no_grad_and_inference_mode(context):
    net = _tiny_net()
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 4, (8,))
    expected = PGD(net, 0.1, 0.05, 3, seed=3)(x, y)
    with context():
        got = PGD(net, 0.1, 0.05, 3, seed=3)(x, y)
    torch.testing.assert_close(got, expected)


def test_plain_callable_model_and_seed_reproducibility():
    net = _tiny_net()

    def model(x):
        return net(x) * 2.0

    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 4, (8,))
    a = PGD(model, 0.1, 0.05, 3, seed=7)(x, y)
    b = PGD(model, 0.1, 0.05, 3, seed=7)(x, y)
    c = PGD(model, 0.1, 0.05, 3, seed=8)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eps_zero_returns_input():
    net = _tiny_net()
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 2])
    assert torch.equal(PGD(net, 0.0, 0.1, 5)(x, y), x)


def test_more_restarts_never_weaker_per_sample():
    net = _tiny_net(seed=3)
    x, y = torch.rand(256, 1, 4, 4), torch.randint(0, 4, (256,))
    ce = nn.CrossEntropyLoss(reduction="none")

    def outcome(restarts):
        with torch.no_grad():
            logits = net(PGD(net, 0.05, 0.01, 3, restarts=restarts, seed=5)(x, y))
        return logits.argmax(1) != y, ce(logits, y)

    fooled_1, loss_1 = outcome(1)
    fooled_3, loss_3 = outcome(3)
    # Restart 1 of the 3 replays the single run (same generator): nothing fooled is lost,
    # and samples never fooled keep the highest-loss final iterate.
    assert (fooled_3 | ~fooled_1).all()
    never = ~fooled_1 & ~fooled_3
    assert (loss_3[never] >= loss_1[never] - 1e-6).all()
    assert (fooled_3 & ~fooled_1).any() or (loss_3[never] > loss_1[never] + 1e-6).any()


def test_sample_fooled_midway_stays_fooled():
    # A model that is fooled only in a thin slab: PGD with a big step overshoots it, so the
    # final iterate is not fooled but an intermediate one was.
    class Slab(nn.Module):
        def forward(self, x):
            s = x.flatten(1)[:, :1]
            inside = ((s > 0.55) & (s < 0.65)).float()
            # class 0 wins outside the slab; the gradient always pushes s upwards
            return torch.cat([1.0 - 2 * inside, s], dim=1)

    x = torch.full((1, 1, 2, 2), 0.5)
    y = torch.zeros(1, dtype=torch.long)
    x_adv = PGD(Slab(), eps=0.3, step_size=0.1, steps=3, random_start=False)(x, y)
    s = float(x_adv.flatten()[0])
    assert 0.55 < s < 0.65  # the fooled iterate (0.6), not the final one (0.8)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=-0.1, step_size=0.1, steps=1), "eps must be >= 0"),
        (dict(eps=0.1, step_size=0.0, steps=1), "step_size"),
        (dict(eps=0.1, step_size=0.1, steps=0), "steps must be >= 1"),
        (dict(eps=0.1, step_size=0.1, steps=1, norm="l1"), "norm must be one of"),
        (dict(eps=0.1, step_size=0.1, steps=1, restarts=0), "restarts"),
        (dict(eps=0.1, step_size=0.1, steps=1, restarts=2, random_start=False), "random_start"),
        (dict(eps=float("nan"), step_size=0.1, steps=1), "finite"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGD(_tiny_net(), **kwargs)


def test_bad_inputs_raise():
    net = _tiny_net()
    attack = PGD(net, 0.1, 0.05, 2)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(torch.rand(2, 1, 4, 4) * 2 - 0.5, y)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(torch.full((2, 1, 4, 4), float("nan")), y)
    with pytest.raises(TypeError, match="integer"):
        attack(torch.rand(2, 1, 4, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        attack(torch.rand(2, 1, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="dict"):
        attack({"image": torch.rand(2, 1, 4, 4)}, y)
    with pytest.raises(TypeError, match="callable"):
        PGD("not a model", 0.1, 0.1, 1)


def test_model_mode_context_restores_on_error():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    with pytest.raises(KeyError), model_mode(net, False):
        assert not net[1].training
        raise KeyError
    assert net[1].training


@pytest.fixture(scope="module")
def digits_model():
    """A small MLP trained on sklearn digits in well under a second."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[:1400]), y[:1400]).backward()
        opt.step()
    net.eval()
    return net, x[1400:], y[1400:]


@pytest.mark.parametrize("norm,eps,step_size", [("linf", 0.06, 0.015), ("l2", 0.5, 0.125)])
def test_at_least_as_strong_as_torchattacks(digits_model, norm, eps, step_size):
    torchattacks = pytest.importorskip("torchattacks")
    net, x, y = digits_model
    with torch.no_grad():
        clean = net(x).argmax(1) == y
    assert clean.float().mean() > 0.9  # a model worth attacking
    steps = 10
    peer_cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2

    def robust(x_adv):
        with torch.no_grad():
            return net(x_adv).argmax(1) == y

    # Deterministic start: same path, plus our best-iterate bookkeeping, so every sample
    # they break we break too.
    ours_ok = robust(PGD(net, eps, step_size, steps, norm=norm, random_start=False)(x, y))
    theirs = peer_cls(net, eps=eps, alpha=step_size, steps=steps, random_start=False)
    theirs_ok = robust(theirs(x, y))
    assert theirs_ok.float().mean() < clean.float().mean() - 0.2  # both attacks bite
    assert not (ours_ok & ~theirs_ok).any()

    # Random starts from different seeds: a paired sign test on the discordant samples.
    ours_ok = robust(PGD(net, eps, step_size, steps, norm=norm, seed=1)(x, y))
    torch.manual_seed(0)
    theirs_ok = robust(peer_cls(net, eps=eps, alpha=step_size, steps=steps)(x, y))
    only_ours_fail = int((ours_ok & ~theirs_ok).sum())
    discordant = only_ours_fail + int((~ours_ok & theirs_ok).sum())
    if discordant:
        # Reject "ours is weaker" at the 0.1% level.
        p = binomtest(only_ours_fail, discordant, 0.5, alternative="greater").pvalue
        assert p > 1e-3, (only_ours_fail, discordant)


@pytest.mark.parametrize("norm,eps,step_size", [("linf", 0.08, 0.02), ("l2", 0.12, 0.03)])
@pytest.mark.parametrize("restarts,targeted", [(1, False), (3, False), (2, True)])
def test_early_stop_fools_the_same_samples(norm, eps, step_size, restarts, targeted):
    net = _tiny_net(seed=4)
    x, y = torch.rand(300, 1, 4, 4), torch.randint(0, 4, (300,))
    kw = dict(norm=norm, restarts=restarts, targeted=targeted, seed=2)
    full = PGD(net, eps, step_size, 6, **kw)(x, y)
    early = PGD(net, eps, step_size, 6, **kw, early_stop=True)(x, y)
    with torch.no_grad():
        hit_full, hit_early = net(full).argmax(1) == y, net(early).argmax(1) == y
    success_full = hit_full if targeted else ~hit_full
    success_early = hit_early if targeted else ~hit_early
    # a meaningful mix: some samples fall, some resist
    assert 0.1 < success_full.float().mean() < 0.9
    assert torch.equal(success_early, success_full)
    # unfooled samples followed the same trajectory; fooled ones may stop at another point
    torch.testing.assert_close(early[~success_full], full[~success_full])
    if norm == "linf":
        assert (early - x).abs().max() <= eps + 1e-6
    else:
        assert (early - x).flatten(1).norm(dim=1).max() <= eps + 1e-5
    assert early.min() >= 0 and early.max() <= 1


def test_early_stop_returns_the_first_fooling_iterate_and_stops():
    calls = []

    class Counting(nn.Module):
        def forward(self, x):  # class 0 wins while the pixel sum exceeds 2
            calls.append(x.shape[0])
            s = x.flatten(1).sum(1, keepdim=True) - 2.0
            return torch.cat([s, -s], dim=1)

    # samples 0-1 start just above the boundary (sum 2.08: one step of 4 x 0.05 crosses it),
    # samples 2-3 far above it (sum 3.8: out of reach at eps 0.1)
    x = torch.tensor([0.52, 0.52, 0.95, 0.95]).repeat_interleave(4).view(4, 1, 2, 2)
    y = torch.zeros(4, dtype=torch.long)
    attack = PGD(Counting(), eps=0.1, step_size=0.05, steps=4, random_start=False, early_stop=True)
    x_adv = attack(x, y)
    # steps 1-2 run all 4 samples (step 2's forward finds 0-1 fooled); steps 3-4 run 2
    assert calls == [4, 4, 2, 2]
    # 0-1 keep the first iterate that fooled the model: one step down (sum 1.88), not two
    torch.testing.assert_close(x_adv[:2], torch.full((2, 1, 2, 2), 0.47))
    torch.testing.assert_close(x_adv[2:], torch.full((2, 1, 2, 2), 0.85))

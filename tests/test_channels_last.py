"""ChannelsLastForward: same outputs and input gradients as the model, model untouched."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from hierclass import LabelPartition, Router, Smooth
from hierclass.attacks import PGD
from hierclass.channels_last import ChannelsLastForward, call_with_fallback, has_4d_weights
from hierclass.models import SmallCNN
from hierclass.smoothing.engine import batch_size as bs_mod
from hierclass.smoothing.engine.batch_size import BatchPlan, resolve_plan


def _rgb_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 4),
    ).eval()


class ViewNet(nn.Module):
    """A model written the classic way: ``.view`` after a conv, which channels-last breaks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.fc(h.view(h.size(0), -1))


def test_outputs_and_input_gradients_match_the_model():
    net = _rgb_net()
    fast = ChannelsLastForward(net)
    x = torch.rand(5, 3, 6, 6, requires_grad=True)
    torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    (g_fast,) = torch.autograd.grad(fast(x).sum(), x)
    (g_plain,) = torch.autograd.grad(net(x).sum(), x)
    torch.testing.assert_close(g_fast, g_plain, atol=1e-5, rtol=1e-5)
    # the model is untouched: NCHW weights, no gradients accumulated
    assert all(p.is_contiguous() for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())


def test_copies_follow_optimiser_steps_and_data_assignment():
    net = _rgb_net()
    fast = ChannelsLastForward(net)
    x = torch.rand(4, 3, 6, 6)
    fast(x)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train()
    nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()  # in-place update: bumps the version counters
    net.eval()
    torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    net[0].weight.data = torch.randn_like(net[0].weight)  # new storage
    torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)


def test_method_calls_a_nodes_scores():
    p = LabelPartition({"a": [0, 1], "b": [2]})
    torch.manual_seed(0)
    router = Router(SmallCNN(2, image_size=8).eval(), p)
    x = torch.rand(3, 1, 8, 8)
    fast = ChannelsLastForward(router, "scores")
    torch.testing.assert_close(fast(x), router.scores(x), atol=1e-5, rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(TypeError, match="needs an nn.Module"):
        ChannelsLastForward(lambda x: x)
    with pytest.raises(ValueError, match="no method 'scores'"):
        ChannelsLastForward(nn.Conv2d(1, 1, 1), "scores")
    assert has_4d_weights(_rgb_net()) and not has_4d_weights(nn.Linear(2, 2))
    assert not has_4d_weights(lambda x: x)


def test_a_view_model_raises_channels_last_and_falls_back():
    net = ViewNet().eval()
    x = torch.rand(2, 3, 6, 6)
    with pytest.raises(RuntimeError, match="view"):
        ChannelsLastForward(net)(x)
    out, worked = call_with_fallback(ChannelsLastForward(net), net, x)
    assert not worked
    torch.testing.assert_close(out, net(x))


# ----------------------------------------------------------------------------- the probe
def _slow(b: torch.Tensor) -> torch.Tensor:
    time.sleep(0.004)
    return b.flatten(1)[:, :2]


def _quick(b: torch.Tensor) -> torch.Tensor:
    return b.flatten(1)[:, :2]


def test_probe_keeps_the_faster_layout_and_skips_one_that_fails():
    bs_mod.clear_cache()
    example = torch.zeros(3)
    owner_a, owner_b, owner_c = nn.Linear(1, 1), nn.Linear(1, 1), nn.Linear(1, 1)
    assert resolve_plan("auto", owner_a, example, forward=_slow, channels_last=_quick).channels_last
    assert not resolve_plan(
        "auto", owner_b, example, forward=_quick, channels_last=_slow
    ).channels_last

    def broken(b):
        raise RuntimeError("view size is not compatible with input tensor's size and stride")

    assert not resolve_plan(
        "auto", owner_c, example, forward=_quick, channels_last=broken
    ).channels_last
    # an explicit batch size runs the model as given
    assert resolve_plan(64, owner_a, example, channels_last=_quick) == BatchPlan(64, False)
    bs_mod.clear_cache()


def test_smooth_counts_do_not_depend_on_the_layout(monkeypatch):
    torch.manual_seed(0)
    model = SmallCNN(10, image_size=12).eval()
    x = torch.rand(1, 12, 12)
    smooth = Smooth(model, 10, sigma=0.25, seed=3)
    plain = smooth.certify_detailed(x, 16, 600, 0.01, 64, index=0).counts
    monkeypatch.setattr(
        "hierclass.smoothing.engine.forward.resolve_plan",
        lambda *a, **k: BatchPlan(64, channels_last=True),
    )
    fast = smooth.certify_detailed(x, 16, 600, 0.01, "auto", index=0).counts
    # same noise, same model: only float summation order differs, which can flip a vote only
    # where two logits tie to ~1e-6; allow for at most one such draw
    assert abs(fast - plain).sum() <= 2


# ----------------------------------------------------------------------------- PGD
def test_pgd_channels_last_matches_plain_and_follows_training():
    net = _rgb_net()
    x, y = torch.rand(6, 3, 6, 6), torch.tensor([0, 1, 2, 3, 0, 1])
    kw = dict(eps=0.1, step_size=0.02, steps=5, seed=0)
    fast, plain = PGD(net, **kw, channels_last=True), PGD(net, **kw, channels_last=False)
    assert PGD(net, **kw).channels_last is None  # auto by default
    a, b = fast(x, y), plain(x, y)
    # sign(grad) may differ where a gradient entry is ~0 in float32; nearly all agree
    assert (a - b).abs().le(1e-5).float().mean() > 0.98
    with torch.no_grad():
        net[0].weight.mul_(-1.5)  # the model changes between calls (as in training)
    a, b = fast(x, y), plain(x, y)
    assert (a - b).abs().le(1e-5).float().mean() > 0.98


def test_pgd_auto_falls_back_for_view_models_and_rejects_bad_settings():
    net = ViewNet().eval()
    x, y = torch.rand(3, 3, 6, 6), torch.tensor([0, 1, 2])
    auto = PGD(net, eps=0.1, step_size=0.05, steps=2, seed=0)
    out = auto(x, y)
    assert auto.forward_ is net and out.shape == x.shape
    with pytest.raises(RuntimeError, match="view"):
        PGD(net, eps=0.1, step_size=0.05, steps=2, channels_last=True)(x, y)
    with pytest.raises(ValueError, match="4-D"):
        PGD(nn.Linear(3, 2), 0.1, 0.05, 2, channels_last=True)
    with pytest.raises(TypeError, match="channels_last"):
        PGD(net, 0.1, 0.05, 2, channels_last="yes")


def test_smooth_channels_last_setting_overrides_the_probe(monkeypatch):
    # flat_engine is where Smooth builds its forward
    from hierclass.smoothing.engine import flat_engine as smooth_mod

    calls = []

    class Counting(ChannelsLastForward):
        def __call__(self, x):
            calls.append(x.shape[0])
            return super().__call__(x)

    monkeypatch.setattr(smooth_mod, "ChannelsLastForward", Counting)
    torch.manual_seed(0)
    model = SmallCNN(10, image_size=12).eval()
    x = torch.rand(1, 12, 12)
    ref = Smooth(model, 10, 0.25, seed=1).certify_detailed(x, 16, 300, 0.01, 64, index=0).counts
    assert calls == []  # an int batch size runs the model as given by default
    forced = Smooth(model, 10, 0.25, seed=1, channels_last=True)
    counts = forced.certify_detailed(x, 16, 300, 0.01, 64, index=0).counts
    assert sum(calls) == 316 and abs(counts - ref).sum() <= 2  # float ties only
    calls.clear()
    bs_mod.clear_cache()
    Smooth(model, 10, 0.25, seed=1, channels_last=False).certify(x, 16, 300, 0.01, "auto")
    assert calls == []  # never, not even probed
    bs_mod.clear_cache()
    assert "channels_last=True" in repr(forced)
    with pytest.raises(ValueError, match="4-D"):
        Smooth(nn.Linear(3, 2), 2, 0.25, channels_last=True)
    with pytest.raises(TypeError, match="channels_last must be None, True or False"):
        Smooth(model, 10, 0.25, channels_last=1)


def test_hierarchical_smooth_channels_last_true_with_an_int_batch_size():
    from hierclass import Hierarchy, RenormalizedLeaf
    from hierclass.smoothing.hierarchy.smooth import HierarchicalSmooth

    torch.manual_seed(0)
    p = LabelPartition({"a": [0, 1, 2], "b": [3, 4]}, num_labels=5)
    flat = SmallCNN(5, image_size=8).eval()
    h = Hierarchy(Router(SmallCNN(2, image_size=8).eval(), p),
                  [RenormalizedLeaf(flat, c) for c in ([0, 1, 2], [3, 4])])  # fmt: skip
    x = torch.rand(1, 8, 8)
    plain = HierarchicalSmooth(h, 0.25, seed=2, flat=flat, channels_last=False)
    fast = HierarchicalSmooth(h, 0.25, seed=2, flat=flat, channels_last=True)
    a, b = plain.certify(x, 16, 300, 0.01, 64, index=0), fast.certify(x, 16, 300, 0.01, 64, index=0)
    # every group ran channels-last (it built its channels-last copy), or none did
    assert all(g.fast is not None for g in fast.groups)
    assert all(g.fast is None for g in plain.groups)
    assert a.route == b.route
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        assert abs(na.counts - nb.counts).sum() <= 2  # float ties only

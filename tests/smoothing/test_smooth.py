import numpy as np
import pytest
import torch
from torch import nn

from hierclass import Smooth
from hierclass.smoothing.certificates.counts import certify_counts
from hierclass.smoothing.certificates.subsets import subsets_of_size
from hierclass.smoothing.engine import batch_size as bs_mod
from hierclass.smoothing.engine.sampling import STREAM_ESTIMATE


def _linear(d=6, k=5, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d, k).eval()


def test_cohen_api_and_abstain():
    assert Smooth.ABSTAIN == -1
    # a base classifier that flips a fair coin under noise at x = 0: must abstain
    coin = lambda b: torch.stack([b[:, 0], -b[:, 0]], 1)  # noqa: E731
    s = Smooth(coin, 2, sigma=1.0, seed=0)
    assert s.certify(torch.zeros(3), 100, 2000, 0.001, 512) == (Smooth.ABSTAIN, 0.0)
    assert s.predict(torch.zeros(3), 2000, 0.001, 512) == Smooth.ABSTAIN
    # far from the boundary: a prediction and a positive radius
    label, radius = s.certify(torch.tensor([2.0, 0, 0]), 100, 2000, 0.001, 512)
    assert label == 0 and radius > 0
    assert s.predict(torch.tensor([2.0, 0, 0]), 500, 0.001, 512) == 0


def test_seed_reproduces_across_batch_sizes_packing_and_order():
    f = _linear()
    s = Smooth(f, 5, sigma=0.5, seed=7)
    xs = torch.rand(4, 6)
    ref = [s.certify_detailed(xs[i], 30, 300, 0.01, 1000, index=i) for i in range(4)]
    for bs in (1, 7, 64, 4096):
        out = list(s.certify_many(xs, 30, 300, 0.01, bs, indices=range(4)))  # packs if bs > 330
        for r, o in zip(ref, out):
            np.testing.assert_array_equal(r.counts, o.counts)
            np.testing.assert_array_equal(r.counts_select, o.counts_select)
    # reversed order with the same indices: the same counts per index
    rev = list(s.certify_many(xs.flip(0), 30, 300, 0.01, 64, indices=[3, 2, 1, 0]))
    for o in rev:
        np.testing.assert_array_equal(o.counts, ref[o.index].counts)
    # another seed gives other noise
    other = Smooth(f, 5, sigma=0.5, seed=8).certify_detailed(xs[0], 30, 300, 0.01, 64, index=0)
    assert not np.array_equal(other.counts, ref[0].counts)


def test_selection_and_estimation_use_fresh_samples():
    s = Smooth(_linear(), 5, sigma=2.0, seed=0)
    r = s.certify_detailed(torch.rand(6), 200, 200, 0.01, 64)
    assert r.counts_select.sum() == 200 and r.counts.sum() == 200
    assert not np.array_equal(r.counts_select, r.counts)  # different noise streams
    est = s.sample_counts(torch.rand(6), 200, 64, stream=STREAM_ESTIMATE)
    assert est.sum() == 200


def test_subsets_from_the_same_samples_equal_separate_runs():
    f = _linear(k=5)
    s = Smooth(f, 5, sigma=0.5, seed=3)
    x = torch.rand(6)
    subs = [(0, 2), (1, 3, 4), (4,)]
    res = s.certify_detailed(x, 40, 400, 0.01, 128, index=5, subsets=subs)
    for j, L in enumerate(subs):
        cert = res.subset_certificates[("cohen", L)]
        if len(L) == 1:  # a constant classifier
            assert cert.radius == np.inf and cert.label == L[0]
            assert res.subset_counts[j][L[0]] == 400
            continue
        idx = torch.tensor(L)
        restricted = lambda b, idx=idx: f(b).index_select(1, idx)  # noqa: E731
        sub = Smooth(restricted, len(L), sigma=0.5, seed=3)
        r = sub.certify_detailed(x, 40, 400, 0.01, 128, index=5)
        np.testing.assert_array_equal(res.subset_counts[j][list(L)], r.counts)
        np.testing.assert_array_equal(res.subset_counts_select[j][list(L)], r.counts_select)
        expect = r.certificate
        assert cert.radius == pytest.approx(expect.radius)
        assert cert.label == (-1 if expect.label == -1 else L[expect.label])
        margin = res.subset_certificates[("margin", L)]
        recomputed = certify_counts(
            res.counts_select, res.counts, 0.01, 0.5, labels=L, bound="margin"
        )
        assert margin.radius == recomputed.radius


def test_bounds_name_the_subset_certificates_and_the_old_keywords_are_gone():
    s = Smooth(_linear(k=4), 4, sigma=0.5, seed=0)
    x, L = torch.rand(6), (0, 2)
    res = s.certify_detailed(x, 20, 200, 0.01, 128, index=1, subsets=[L], bounds=("margin",))
    assert set(res.subset_certificates) == {("margin", L)}
    assert res.subset_certificates[("margin", L)].bound == "margin"
    assert res.certificate.bound == "cohen"
    with pytest.raises(ValueError, match=r"bounds must be drawn from \('cohen', 'margin'\)"):
        s.certify_detailed(x, 20, 200, 0.01, 128, subsets=[L], bounds=("renormalized",))
    with pytest.raises(TypeError, match="unexpected keyword argument 'methods'"):
        s.certify_detailed(x, 20, 200, 0.01, 128, subsets=[L], methods=("cohen",))
    with pytest.raises(TypeError, match="unexpected keyword argument 'methods'"):
        s.certify_many([x], 20, 200, 0.01, 128, subsets=[L], methods=("cohen",))
    with pytest.raises(TypeError, match="unexpected keyword argument 'method'"):
        certify_counts([1, 9], [10, 90], 0.01, 0.5, method="margin")
    with pytest.raises(ValueError, match=r"bound must be one of \('cohen', 'margin'\)"):
        certify_counts([1, 9], [10, 90], 0.01, 0.5, bound="renormalized")


def test_all_subsets_of_size_k_ranking_and_masked_heads_agree():
    subs = subsets_of_size(5, 3)
    s = Smooth(_linear(k=5), 5, sigma=0.8, seed=1)
    x = torch.rand(6)
    res = s.certify_detailed(x, 20, 500, 0.01, 256, subsets=subs, index=0)
    # brute force: each subset separately (masked-logits classifier)
    for j, L in enumerate(subs[:4]):
        idx = torch.tensor(L)
        sub = Smooth(lambda b, idx=idx: s.base_classifier(b)[:, idx], 3, sigma=0.8, seed=1)
        sub_counts = sub.sample_counts(x, 500, 256, index=0)
        np.testing.assert_array_equal(res.subset_counts[j][list(L)], sub_counts)
    assert (res.subset_counts.sum(1) == 500).all()


def test_masked_subset_head_for_many_classes():
    f = _linear(k=13)
    s = Smooth(f, 13, sigma=0.8, seed=2)
    subs = [(0, 5, 12), (3, 4)]
    x = torch.rand(6)
    res = s.certify_detailed(x, 20, 300, 0.01, 128, subsets=subs, index=0)
    for j, L in enumerate(subs):
        idx = torch.tensor(L)
        sub = Smooth(lambda b, idx=idx: f(b)[:, idx], len(L), sigma=0.8, seed=2)
        sub_counts = sub.sample_counts(x, 300, 64, index=0)
        np.testing.assert_array_equal(res.subset_counts[j][list(L)], sub_counts)


def test_dict_inputs_perturb_only_the_named_modalities():
    seen = {}

    def model(b):
        seen["meta"] = b["meta"].clone()
        return torch.stack([b["image"].sum(1), -b["image"].sum(1)], 1)

    s = Smooth(model, 2, sigma=0.5, perturbed_keys=("image",))
    x = {"image": torch.ones(4), "meta": torch.tensor([3.0, 4.0])}
    s.certify(x, 10, 50, 0.01, 32)
    assert (seen["meta"] == torch.tensor([3.0, 4.0])).all() and len(seen["meta"]) > 1
    with pytest.raises(ValueError, match="perturbed_keys"):
        Smooth(model, 2, 0.5, perturbed_keys=("lidar",)).certify(x, 10, 50, 0.01, 32)


@pytest.mark.parametrize(
    ("make", "err", "match"),
    [
        (lambda f: Smooth(f, 5, sigma=0.0), ValueError, "sigma"),
        (lambda f: Smooth(f, 5, sigma=-1.0), ValueError, "sigma"),
        (lambda f: Smooth(f, 1, sigma=1.0), ValueError, "num_classes"),
        (lambda f: Smooth(42, 5, sigma=1.0), TypeError, "callable"),
        (lambda f: Smooth(f, 5, 1.0).certify(torch.rand(6), 10, 10, 0.0, 8), ValueError, "alpha"),
        (lambda f: Smooth(f, 5, 1.0).certify(torch.rand(6), 10, 10, 1.5, 8), ValueError, "alpha"),
        (lambda f: Smooth(f, 5, 1.0).certify(torch.rand(6), 0, 10, 0.1, 8), ValueError, "n0"),
        (lambda f: Smooth(f, 5, 1.0).certify(torch.rand(6), 10, 0, 0.1, 8), ValueError, "n "),
        (lambda f: Smooth(f, 5, 1.0).predict(torch.rand(6), 0, 0.1, 8), ValueError, "n "),
        (lambda f: Smooth(f, 5, 1.0).certify(torch.rand(6), 10, 10, 0.1, 0), ValueError, "batch"),
        (
            lambda f: Smooth(f, 5, 1.0).certify(torch.rand(6), 10, 10, 0.1, "fast"),
            ValueError,
            "batch",
        ),
        (
            lambda f: Smooth(f, 4, 1.0).certify(torch.rand(6), 10, 10, 0.1, 8),
            ValueError,
            r"logits of shape \[8, 4\]",
        ),
        (
            lambda f: Smooth(f, 5, 1.0).certify_detailed(
                torch.rand(6), 10, 10, 0.1, 8, subsets=[[0, 9]]
            ),
            ValueError,
            "outside",
        ),
        (
            lambda f: Smooth(f, 5, 1.0).certify_detailed(
                torch.rand(6), 10, 10, 0.1, 8, subsets=[[]]
            ),
            ValueError,
            "empty",
        ),
        (
            lambda f: Smooth(f, 5, 1.0).certify(torch.full((6,), float("nan")), 10, 10, 0.1, 8),
            ValueError,
            "must be finite",
        ),
        (
            lambda f: Smooth(f, 5, 1.0).certify(torch.zeros(6, dtype=torch.long), 10, 10, 0.1, 8),
            TypeError,
            "floating",
        ),
    ],
)
def test_bad_input(make, err, match):
    with pytest.raises(err, match=match):
        make(_linear())


def test_training_mode_warns():
    with pytest.warns(UserWarning, match="training mode"):
        Smooth(nn.Linear(2, 2), 2, 0.5)


def test_auto_batch_size_is_probed_once_per_model_and_shape(monkeypatch):
    calls = []
    real = bs_mod.probe_batch_size

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **{**k, "candidates": (8, 16)})

    monkeypatch.setattr(bs_mod, "probe_batch_size", spy)
    bs_mod.clear_cache()
    f = _linear()
    s = Smooth(f, 5, sigma=0.5)
    a = s.certify_detailed(torch.rand(6), 10, 40, 0.1, "auto")
    s.certify_detailed(torch.rand(6), 10, 40, 0.1, "auto")
    assert len(calls) == 1 and a.counts.sum() == 40
    Smooth(_linear(), 5, 0.5).certify(torch.rand(6), 10, 40, 0.1, "auto")  # another model
    assert len(calls) == 2
    bs_mod.clear_cache()


def test_auto_batch_size_with_dict_inputs_gives_the_counts_of_any_batch_size():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3).eval()

    def model(batch):  # reads two modalities; "meta" is an integer the noise does not touch
        return lin(batch["img"]) + batch["meta"].float()

    x = {"img": torch.rand(6), "meta": torch.tensor([0, 1, 0])}
    s = Smooth(model, 3, sigma=0.5, seed=2)
    bs_mod.clear_cache()
    auto = s.certify_detailed(x, 10, 300, 0.1, "auto", index=0).counts
    fixed = s.certify_detailed(x, 10, 300, 0.1, 7, index=0).counts
    assert (auto == fixed).all() and auto.sum() == 300
    with pytest.raises(TypeError, match="a tensor or a non-empty dict of tensors"):
        bs_mod.resolve_plan("auto", model, {"img": [1.0]})
    bs_mod.clear_cache()

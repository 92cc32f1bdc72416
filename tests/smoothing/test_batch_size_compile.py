"""``batch_size="auto"`` and ``torch.compile``: compile only long runs, only when it pays.

The decision is tested with a fake clock and a fake compiler (compiling for real is slow on a
CPU); one ``slow`` test compiles a small model for real.
"""

from __future__ import annotations

import pytest
import torch

from hierclass.smoothing.engine import batch_size as bs_mod
from hierclass.smoothing.engine.batch_size import BatchPlan, consider_compile, resolve_plan


class FakeClock:
    """A clock that advances only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _fake_compiler(clock, compile_seconds, slowdown=1.0, fail=None):
    calls = []

    def compile_fn(forward):
        calls.append(forward)
        if fail is not None:
            raise fail
        first = [True]

        def compiled(batch):
            if first[0]:
                first[0] = False
                clock.now += compile_seconds  # the first call compiles
            return forward(batch)

        compiled.slowdown = slowdown
        return compiled

    compile_fn.calls = calls
    return compile_fn


@pytest.fixture()
def rates(monkeypatch):
    """draws_per_second returns the eager rate divided by the compiled forward's slowdown."""
    eager = 1000.0

    def fake_rate(forward, example, batch_size, *, sigma=0.25, min_time=0.05):
        return eager / getattr(forward, "slowdown", 1.0)

    monkeypatch.setattr(bs_mod, "draws_per_second", fake_rate)
    return eager


def _decide(rates, clock, compile_fn, draws):
    f = torch.nn.Linear(4, 3)
    return consider_compile(
        f, torch.zeros(4), 64, expected_draws=draws, eager_rate=rates, compile_fn=compile_fn,
        clock=clock,
    )  # fmt: skip


def test_short_runs_never_compile(rates):
    clock = FakeClock()
    compile_fn = _fake_compiler(clock, 1.0, slowdown=0.1)
    # 100,000 draws at 1,000/s: 100 s eager, under COMPILE_MIN_SECONDS
    compiled, reason = _decide(rates, clock, compile_fn, 100_000)
    assert compiled is None and compile_fn.calls == [] and "too short" in reason
    compiled, reason = _decide(rates, clock, compile_fn, None)  # run length unknown
    assert compiled is None and compile_fn.calls == [] and reason == ""


def test_long_runs_compile_when_it_pays(rates):
    clock = FakeClock()
    compile_fn = _fake_compiler(clock, 30.0, slowdown=0.5)  # 2x faster, 30 s to compile
    compiled, reason = _decide(rates, clock, compile_fn, 1_000_000)  # 1000 s eager, 500 saved
    assert compiled is not None and len(compile_fn.calls) == 1
    assert "2.00x eager" in reason and "30.0 s to compile" in reason


def test_long_runs_stay_eager_when_compiling_does_not_pay(rates):
    clock = FakeClock()
    # 2x faster but 600 s to compile: saves 500 s of a 1000 s run, less than it costs
    compiled, reason = _decide(rates, clock, _fake_compiler(clock, 600.0, 0.5), 1_000_000)
    assert compiled is None and "eager" in reason
    # no faster than eager (within the probe's tie tolerance)
    compiled, reason = _decide(rates, clock, _fake_compiler(clock, 1.0, 0.98), 1_000_000)
    assert compiled is None and "1.02x eager" in reason


def test_a_failing_compiler_falls_back_to_eager(rates):
    clock = FakeClock()
    fail = RuntimeError("no C++ compiler found\nlong details")
    compiled, reason = _decide(rates, clock, _fake_compiler(clock, 1.0, fail=fail), 10**7)
    assert compiled is None
    assert reason == "torch.compile failed (RuntimeError: no C++ compiler found); eager"


def test_resolve_plan_carries_and_prints_the_choice(monkeypatch, capsys):
    bs_mod.clear_cache()
    model = torch.nn.Linear(4, 3)
    monkeypatch.setattr(bs_mod, "probe_batch_size", lambda *a, **k: 32)
    monkeypatch.setattr(bs_mod, "draws_per_second", lambda *a, **k: 1000.0)
    seen = {}

    def fake_consider(forward, example, batch_size, **kw):
        seen.update(kw, batch_size=batch_size)
        return (lambda b: forward(b)), "compiled 1.50x eager, 2.0 s to compile"

    monkeypatch.setattr(bs_mod, "consider_compile", fake_consider)
    plan = resolve_plan("auto", model, torch.zeros(4), expected_draws=10**7, verbose=True)
    assert plan.compiled and plan.forward is not None and plan.batch_size == 32
    assert seen["expected_draws"] == 10**7 and seen["eager_rate"] == 1000.0
    err = capsys.readouterr().err
    assert "batch_size=32, layout contiguous, torch.compile (compiled 1.50x eager" in err
    # without a run length nothing is compiled, and the short plan is cached apart
    plain = resolve_plan("auto", model, torch.zeros(4), verbose=False)
    assert plain == BatchPlan(32) and not plain.compiled and capsys.readouterr().err == ""
    bs_mod.clear_cache()


@pytest.mark.slow
def test_real_compile_gives_the_same_outputs():
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x = torch.zeros(16)
    compiled, reason = consider_compile(
        model, x, 64, expected_draws=10**12, eager_rate=1e6, min_seconds=0.0
    )
    assert reason
    if compiled is not None:  # compiled and faster on this machine: it computes the same
        b = torch.randn(64, 16)
        with torch.inference_mode():
            assert torch.allclose(compiled(b), model(b), atol=1e-5)


def test_certify_many_passes_its_run_length_and_samples_with_the_compiled_forward(monkeypatch):
    """``Smooth.certify_many`` tells the probe how many draws it will take, and a compiled
    plan's forward is the one that votes (it counts its calls here)."""
    from hierclass import Smooth

    bs_mod.clear_cache()
    model = torch.nn.Linear(4, 3).eval()
    monkeypatch.setattr(bs_mod, "probe_batch_size", lambda *a, **k: 32)
    monkeypatch.setattr(bs_mod, "draws_per_second", lambda *a, **k: 1000.0)
    seen, calls = {}, []

    def fake_consider(forward, example, batch_size, **kw):
        seen.update(kw)

        def compiled(b):
            calls.append(b.shape[0])
            return forward(b)

        return compiled, "compiled 1.50x eager, 2.0 s to compile"

    monkeypatch.setattr(bs_mod, "consider_compile", fake_consider)
    smooth = Smooth(model, num_classes=3, sigma=0.5)
    xs = [torch.zeros(4), torch.ones(4), -torch.ones(4)]
    results = list(smooth.certify_many(xs, n0=10, n=50, alpha=0.01, batch_size="auto"))
    assert seen["expected_draws"] == 3 * (10 + 50)
    assert len(results) == 3 and sum(calls) == 3 * (10 + 50)
    # an unsized stream: the length is unknown, so nothing is compiled
    bs_mod.clear_cache()
    seen.clear()
    list(smooth.certify_many(iter(xs), n0=10, n=50, alpha=0.01, batch_size="auto"))
    assert seen == {}
    bs_mod.clear_cache()


def test_a_short_call_first_does_not_rule_out_compiling_a_long_run(monkeypatch):
    """The probe is cached, the compile decision is not: a notebook's single ``certify``
    before a long ``certify_dataset`` must not switch compilation off for the long run."""
    bs_mod.clear_cache()
    model = torch.nn.Linear(4, 3)
    probes = []
    monkeypatch.setattr(bs_mod, "probe_batch_size", lambda *a, **k: probes.append(1) or 32)
    monkeypatch.setattr(bs_mod, "draws_per_second", lambda *a, **k: 1000.0)
    considered = []

    def fake_consider(forward, example, batch_size, **kw):
        considered.append(kw["expected_draws"])
        return (lambda b: forward(b)), "compiled 1.50x eager, 2.0 s to compile"

    monkeypatch.setattr(bs_mod, "consider_compile", fake_consider)
    short = resolve_plan("auto", model, torch.zeros(4), verbose=False)
    long = resolve_plan("auto", model, torch.zeros(4), expected_draws=10**9, verbose=False)
    assert not short.compiled and long.compiled and considered == [10**9]
    assert len(probes) == 1 and long.batch_size == short.batch_size  # one probe per model
    bs_mod.clear_cache()


def test_the_cache_keeps_no_compiled_model_alive(monkeypatch):
    import gc
    import weakref

    bs_mod.clear_cache()
    monkeypatch.setattr(bs_mod, "probe_batch_size", lambda *a, **k: 32)
    monkeypatch.setattr(bs_mod, "draws_per_second", lambda *a, **k: 1000.0)
    monkeypatch.setattr(
        bs_mod, "consider_compile", lambda f, *a, **k: ((lambda b: f(b)), "compiled 2.00x eager")
    )
    model = torch.nn.Linear(4, 3)
    plan = resolve_plan("auto", model, torch.zeros(4), expected_draws=10**9, verbose=False)
    assert plan.compiled
    ref = weakref.ref(model)
    del model, plan
    gc.collect()
    assert ref() is None
    bs_mod.clear_cache()


def test_a_compiled_forward_that_fails_mid_run_falls_back_to_eager():
    from hierclass.smoothing.engine.batch_size import with_eager_fallback

    calls = []

    def compiled(b):
        if b.shape[0] != 64:  # e.g. the run's smaller last batch recompiles and fails
            raise RuntimeError("inductor: compilation failed\ndetails")
        calls.append("compiled")
        return b * 2

    f = with_eager_fallback(compiled, lambda b: b * 2)
    assert torch.equal(f(torch.ones(64)), torch.full((64,), 2.0))
    with pytest.warns(RuntimeWarning, match="compilation failed\\); continuing eager"):
        assert torch.equal(f(torch.ones(10)), torch.full((10,), 2.0))
    f(torch.ones(64))
    assert calls == ["compiled"]  # once failed, eager for good


def test_the_eager_rate_is_timed_once_per_plan_not_per_call(monkeypatch):
    """A loop of ``certify`` calls (each saying its length) must not pay a timing pass
    each: the eager rate behind "too short to compile?" is measured once per probed plan."""
    bs_mod.clear_cache()
    monkeypatch.setattr(bs_mod, "probe_batch_size", lambda *a, **k: 32)
    timings = []
    monkeypatch.setattr(bs_mod, "draws_per_second", lambda *a, **k: timings.append(1) or 1e6)
    model = torch.nn.Linear(4, 3)
    for _ in range(5):
        plan = resolve_plan("auto", model, torch.zeros(4), expected_draws=1000, verbose=False)
        assert not plan.compiled and plan.reason.startswith("run too short")
    assert len(timings) == 1
    bs_mod.clear_cache()

"""The ``batch_size="auto"`` probe under another process's load, and what it costs."""

from __future__ import annotations

import time

import torch

from hierclass.smoothing.engine.batch_size import clear_cache, probe_batch_size, resolve_plan


class Timed:
    """A forward whose time per call is ``fixed + per_draw * batch``: larger batches win.

    ``slow_calls[bs]`` calls at that batch size first take ``burst`` seconds more: a burst of
    load from another process that spans one whole timing of the candidate.
    """

    def __init__(self, fixed=4e-3, per_draw=2e-6, burst=0.03, slow_calls=None):
        self.fixed, self.per_draw, self.burst = fixed, per_draw, burst
        self.slow = dict(slow_calls or {})

    def __call__(self, batch):
        bs = batch.shape[0]
        extra = 0.0
        if self.slow.get(bs, 0) > 0:
            self.slow[bs] -= 1
            extra = self.burst
        time.sleep(self.fixed + self.per_draw * bs + extra)
        return torch.zeros(bs, 2)


def test_a_burst_of_load_does_not_stop_the_sweep():
    # the whole first timing of 64 and of 128 (warm-up and its passes) is slowed down; the
    # sweep used to stop there and pick 32
    candidates = (16, 32, 64, 128, 256, 512)
    forward = Timed(slow_calls={64: 6, 128: 6})
    picked = probe_batch_size(forward, torch.zeros(3), candidates=candidates, min_time=0.02)
    assert picked == 512


def test_the_probe_stays_within_its_budget_for_a_slow_model():
    # 2 ms per draw: a pass of 16 takes 32 ms, of 64 0.13 s (4 of them per candidate); the
    # sweep used to notice the budget only after a candidate overran it
    forward = Timed(fixed=0.0, per_draw=2e-3)
    tic = time.perf_counter()
    probe_batch_size(forward, torch.zeros(3), min_time=0.01, time_budget=0.5)
    assert time.perf_counter() - tic < 0.75


def test_the_plan_reports_what_probing_cost():
    clear_cache()
    model = torch.nn.Linear(3, 2).eval()
    plan = resolve_plan("auto", model, torch.zeros(3), verbose=False)
    assert plan.probe_seconds > 0 and "probed in" in plan.describe()
    assert resolve_plan(64, model, torch.zeros(3)).probe_seconds == 0.0

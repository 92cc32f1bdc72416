"""bfloat16 on a CPU that emulates it is slow: said once at construction, not silently."""

from __future__ import annotations

import warnings

import pytest
import torch

import hierclass.smoothing.engine.precision as precision
from hierclass import Smooth


@pytest.mark.parametrize("native, warned", [(False, True), (True, False), (None, False)])
def test_bfloat16_on_cpu_warns_only_without_native_support(monkeypatch, native, warned):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    model = torch.nn.Linear(3, 2).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Smooth(model, 2, sigma=0.25, amp_dtype=torch.bfloat16)
        Smooth(model, 2, sigma=0.25)  # float32: never
    slow = [w for w in caught if "without native bfloat16" in str(w.message)]
    assert len(slow) == int(warned)
    if warned:
        assert "AVX512_BF16" in str(slow[0].message) and slow[0].filename == __file__


def test_cpu_flags_are_read():
    assert precision.cpu_has_native_bf16() in (True, False, None)
    assert precision.cpu_capability() != ""

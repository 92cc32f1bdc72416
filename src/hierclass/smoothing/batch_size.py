"""``batch_size="auto"``: a short probe that picks the fastest batch size and memory layout.

Throughput per draw is not monotone in the batch size: on a 2-core CPU a small CNN's speed
varies by up to 2x between sizes (cache effects, oneDNN's algorithm choice), and on a GPU the
largest batch that fits is usually best. The probe times a few noisy forward passes at powers
of two and keeps the fastest. For a convolutional ``nn.Module`` it also times the model run
channels-last (:class:`~hierclass.channels_last.ChannelsLastForward`, 1.5-2.3x faster on CPU
here) and keeps that layout if it wins. The choice is cached per model, input shape, dtype and
device so that it is paid once per session.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Plan",
    "clear_cache",
    "draws_per_second",
    "probe_batch_size",
    "resolve_plan",
]

DEFAULT_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: Batch sizes this close to the fastest count as ties, won by the smallest.
TIE_TOLERANCE = 0.05
#: Largest noisy batch the probe builds on a CPU (bytes); GPUs stop at the first OOM.
CPU_MAX_BATCH_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Plan:
    """How the sampler runs the model: draws per forward pass, and in which memory layout.

    Examples
    --------
    >>> Plan(256, channels_last=True)
    Plan(batch_size=256, channels_last=True)
    """

    batch_size: int
    channels_last: bool = False


_cache: dict[tuple, tuple[Any, Plan]] = {}


def clear_cache() -> None:
    """Forget every probed batch size.

    Examples
    --------
    >>> clear_cache()
    """
    _cache.clear()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def probe_batch_size(
    forward: Callable[[Any], Any],
    example: Any,
    *,
    sigma: float = 0.25,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    min_time: float = 0.05,
    time_budget: float = 3.0,
) -> int:
    """Time ``forward`` on noisy batches of ``example`` and return the fastest batch size.

    Parameters
    ----------
    forward : callable
        The model (any callable ``[B, ...] -> logits``).
    example : Tensor, shape [...], or dict of Tensors
        One input without batch dimension, on the model's device.
    sigma : float
        Noise level of the probe inputs (realistic inputs keep timings honest).
    candidates : sequence of int
        Batch sizes to try, increasing.
    min_time : float
        Seconds each candidate is timed for (at least three passes; the fastest counts).
    time_budget : float
        Stop trying larger sizes once the probe has run this long.

    Returns
    -------
    int
        The batch size with the highest draws per second; among sizes within 5% of the
        fastest (a tie, for a short probe) the smallest, which needs the least memory.

    Examples
    --------
    >>> m = torch.nn.Linear(4, 3)
    >>> probe_batch_size(m, torch.zeros(4), candidates=(8, 16), min_time=0.001) in (8, 16)
    True
    """
    device = _device_of(example)
    numel = _nbytes(example)
    best, best_rate, start = None, 0.0, time.perf_counter()
    worse, rates = 0, {}
    for bs in sorted(int(c) for c in candidates):
        if bs < 1:
            raise ValueError(f"candidate batch sizes must be >= 1, got {bs}")
        if device.type == "cpu" and bs * numel > CPU_MAX_BATCH_BYTES and best is not None:
            break
        try:
            rate = draws_per_second(forward, example, bs, sigma=sigma, min_time=min_time)
        except RuntimeError as err:
            if _is_oom(err) and best is not None:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            raise
        rates[bs] = rate
        if rate > best_rate:
            best, best_rate, worse = bs, rate, 0
        else:
            worse += 1
        if worse >= 2 or time.perf_counter() - start > time_budget:
            break
    assert best is not None
    # Sizes within TIE_TOLERANCE of the fastest cannot be told apart by a short probe on a
    # shared machine; the smallest of them needs the least memory.
    return min(bs for bs, rate in rates.items() if rate >= (1 - TIE_TOLERANCE) * best_rate)


def draws_per_second(
    forward: Callable[[Any], Any],
    example: Any,
    batch_size: int,
    *,
    sigma: float = 0.25,
    min_time: float = 0.05,
) -> float:
    """Noisy draws per second of ``forward`` at one batch size (the fastest of several passes).

    ``example`` is one input without batch dimension: a tensor, or a dict of modalities (its
    floating-point ones get noise, the others are repeated).

    Examples
    --------
    >>> draws_per_second(torch.nn.Linear(4, 3), torch.zeros(4), 8, min_time=0.001) > 0
    True
    """
    device = _device_of(example)
    with torch.inference_mode():
        batch = _noisy_batch(example, batch_size, sigma)
        forward(batch)  # warm-up: allocator, algorithm selection
        _sync(device)
        # the fastest of several passes: other processes only ever slow a pass down, so the
        # minimum is the least noisy estimate on a shared machine
        fastest, reps, t_start = float("inf"), 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t_start < min_time:
            t0 = time.perf_counter()
            forward(batch)
            _sync(device)
            fastest = min(fastest, time.perf_counter() - t0)
            reps += 1
    return batch_size / fastest


def _device_of(example: Any) -> torch.device:
    if isinstance(example, torch.Tensor):
        return example.device
    return next(iter(example.values())).device


def _noisy_batch(example: Any, batch_size: int, sigma: float) -> Any:
    if isinstance(example, dict):
        return {k: _noisy_batch(v, batch_size, sigma) for k, v in example.items()}
    if not example.is_floating_point():
        return example.expand(batch_size, *example.shape).clone()
    noise = torch.randn((batch_size, *example.shape), device=example.device, dtype=example.dtype)
    return example + sigma * noise


def _nbytes(example: Any) -> int:
    """Bytes of one input (all modalities)."""
    if isinstance(example, torch.Tensor):
        return max(1, example.numel()) * example.element_size()
    return sum(_nbytes(v) for v in example.values())


def _layout_key(example: Any) -> tuple:
    if isinstance(example, torch.Tensor):
        return (tuple(example.shape), example.dtype, str(example.device))
    return tuple((k, *_layout_key(v)) for k, v in sorted(example.items()))


def _model_key(model: Any) -> Any:
    return id(model)


def resolve_plan(
    batch_size: int | str,
    model: Any,
    example: Any,
    *,
    sigma: float = 0.25,
    forward: Callable[[Any], Any] | None = None,
    channels_last: Callable[[Any], Any] | None = None,
    variant: Any = None,
) -> Plan:
    """Validate ``batch_size``, or for ``"auto"`` probe the fastest batch size and layout.

    Parameters
    ----------
    batch_size : int or "auto"
        A positive int gives ``Plan(batch_size, channels_last=False)``: an explicit batch
        size runs the model exactly as given.
    model : object
        The base classifier (the cache key).
    example : Tensor or dict of Tensors
        One input without batch dimension, on the model's device.
    sigma : float
        Noise level for the probe inputs.
    forward : callable, optional
        What to time for the plain layout (default: ``model``).
    channels_last : callable, optional
        The same forward run channels-last; timed as well when given. If it raises (a
        ``.view`` that channels-last strides do not allow) it is simply not chosen.
    variant : hashable, optional
        Anything else that changes the speed of ``forward`` (e.g. an autocast dtype); part of
        the cache key.

    Examples
    --------
    >>> resolve_plan(64, None, torch.zeros(3))
    Plan(batch_size=64, channels_last=False)
    """
    if isinstance(batch_size, str):
        if batch_size != "auto":
            raise ValueError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        if not isinstance(example, torch.Tensor) and not (
            isinstance(example, dict)
            and example
            and all(isinstance(v, torch.Tensor) for v in example.values())
        ):
            raise TypeError(
                "batch_size='auto' probes with one input: a tensor or a non-empty dict of "
                f"tensors, got {type(example).__name__}"
            )
        key = (_model_key(model), _layout_key(example), channels_last is not None, variant)
        hit = _cache.get(key)
        if hit is not None and hit[0]() is model:
            return hit[1]
        bs = probe_batch_size(forward or model, example, sigma=sigma)
        plan = Plan(bs)
        if channels_last is not None:
            plan = _compare_layouts(forward or model, channels_last, example, sigma, plan)
        try:  # a weak reference: the cache must not keep a model alive
            ref = weakref.ref(model)
        except TypeError:
            ref = lambda: model  # noqa: E731 - objects that refuse weak references
        _cache[key] = (ref, plan)
        return plan
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return Plan(batch_size)


def _compare_layouts(plain, fast, example, sigma: float, plan: Plan) -> Plan:
    """Probe the channels-last forward and re-time the plain one's best size next to it."""
    try:
        bs_fast = probe_batch_size(fast, example, sigma=sigma)
    except RuntimeError:
        return plan  # the model cannot run channels-last (e.g. .view on a conv output)
    # Re-time both winners back to back (the fastest of several passes each): the separate
    # probes ran seconds apart, and other processes' load in between would bias the choice.
    plain_rate = draws_per_second(plain, example, plan.batch_size, sigma=sigma, min_time=0.1)
    fast_rate = draws_per_second(fast, example, bs_fast, sigma=sigma, min_time=0.1)
    if fast_rate > plain_rate:
        return Plan(bs_fast, channels_last=True)
    return plan

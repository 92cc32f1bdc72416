"""``batch_size="auto"``: a short probe that picks the fastest batch size and memory layout.

Throughput per draw is not monotone in the batch size: on a CPU it varies between sizes
(cache effects, oneDNN's algorithm choice), and on a GPU the largest batch that fits is usually
best. The probe times a few noisy forward passes at powers of two and keeps the fastest. For a
convolutional ``nn.Module`` it also times the model run channels-last
(:class:`~hierclass.channels_last.ChannelsLastForward`) and keeps that layout if it wins. The
choice is cached per model, input shape, dtype and device so that it is paid once per session.

Long runs may also be compiled. ``torch.compile`` costs seconds to minutes up front and pays
back only over many draws, so it is considered only when the caller says how many draws the
run will take (``expected_draws``) and those would keep the eager model busy for at least
:data:`COMPILE_MIN_SECONDS`. Then the probe compiles the chosen forward, times the compilation
and the compiled draws per second at the chosen batch size, and keeps the compiled forward
only if it is faster than eager by more than the probe's noise and the time it saves over the
run exceeds what compiling cost. A compilation that fails (an unsupported model, no C++
compiler) falls back to eager, and the plan says why. :meth:`BatchPlan.describe` is the line
the probe prints.
"""

from __future__ import annotations

import sys
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "COMPILE_MIN_SECONDS",
    "BatchPlan",
    "clear_cache",
    "consider_compile",
    "draws_per_second",
    "probe_batch_size",
    "resolve_plan",
    "with_eager_fallback",
]

DEFAULT_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: Batch sizes this close to the fastest count as ties, won by the smallest.
TIE_TOLERANCE = 0.05
#: Largest noisy batch the probe builds on a CPU (bytes); GPUs stop at the first OOM.
CPU_MAX_BATCH_BYTES = 512 * 2**20
#: Eager seconds a run must be expected to take before ``torch.compile`` is even tried.
COMPILE_MIN_SECONDS = 120.0


@dataclass(frozen=True)
class BatchPlan:
    """How the sampler runs the model: draws per forward pass, memory layout, compilation.

    ``forward`` is the compiled callable when ``compiled`` (else ``None``: run the model as
    the layout says); ``reason`` says why compilation was or was not chosen.

    Examples
    --------
    >>> BatchPlan(256, channels_last=True)
    BatchPlan(batch_size=256, channels_last=True, compiled=False, reason='')
    >>> BatchPlan(256, reason="run too short to repay compilation").describe()
    'batch_size=256, layout contiguous, eager (run too short to repay compilation)'
    """

    batch_size: int
    channels_last: bool = False
    compiled: bool = False
    reason: str = field(default="", compare=False)
    forward: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)
    #: Wall seconds the probe took (0 for an explicit batch size or a cached plan).
    probe_seconds: float = field(default=0.0, repr=False, compare=False)

    def describe(self) -> str:
        """One line: what the probe picked, what probing cost, and why it did or did not
        compile."""
        layout = "channels-last" if self.channels_last else "contiguous"
        mode = "torch.compile" if self.compiled else "eager"
        why = f" ({self.reason})" if self.reason else ""
        cost = f", probed in {self.probe_seconds:.1f} s" if self.probe_seconds else ""
        return f"batch_size={self.batch_size}, layout {layout}, {mode}{why}{cost}"


_cache: dict[tuple, tuple[Any, BatchPlan]] = {}
# Eager draws per second of a cached plan's forward, measured the first time a run says its
# length, so that later calls decide "too short to compile?" without timing anything.
_eager_rates: dict[tuple, float] = {}


def clear_cache() -> None:
    """Forget every probed batch size.

    Examples
    --------
    >>> clear_cache()
    """
    _cache.clear()
    _eager_rates.clear()


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
        if best is not None:
            # a warm-up and three passes at this size, at the best rate so far: a probe of a
            # large model must not spend many times its budget on one candidate
            predicted = 4 * bs / best_rate
            if time.perf_counter() - start + predicted > time_budget:
                break
        try:
            rate = draws_per_second(forward, example, bs, sigma=sigma, min_time=min_time)
            if best is not None and rate < (1 - TIE_TOLERANCE) * best_rate:
                # Looks slower: time it once more before believing it. Another process's burst
                # of load rarely spans both timings, and two "slower" sizes end the sweep.
                rate = max(rate, draws_per_second(forward, example, bs, sigma=sigma,
                                                  min_time=min_time))  # fmt: skip
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


def consider_compile(
    forward: Callable[[Any], Any],
    example: Any,
    batch_size: int,
    *,
    expected_draws: int | None,
    eager_rate: float,
    sigma: float = 0.25,
    compile_fn: Callable[[Any], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    min_seconds: float = COMPILE_MIN_SECONDS,
) -> tuple[Callable[[Any], Any] | None, str]:
    """Compile ``forward`` if the run is long enough and the compiled one is faster.

    Returns ``(compiled forward or None, reason)``. Nothing is compiled when
    ``expected_draws`` is unknown or would take the eager forward less than ``min_seconds``
    at ``eager_rate`` draws per second. Otherwise ``compile_fn`` (default ``torch.compile``)
    is applied and its first call timed (the compilation), then the compiled draws per
    second; the compiled forward is kept when it beats eager by more than
    :data:`TIE_TOLERANCE` and the time it saves over the remaining draws exceeds the
    compilation's. Any exception while compiling or running the compiled forward means eager.

    Examples
    --------
    >>> f = torch.nn.Linear(4, 3)
    >>> consider_compile(f, torch.zeros(4), 8, expected_draws=1000, eager_rate=1e6)
    (None, 'run too short to repay compilation (~0.0 s eager)')
    """
    if expected_draws is None:
        return None, ""
    eager_seconds = expected_draws / eager_rate
    if eager_seconds < min_seconds:
        return None, f"run too short to repay compilation (~{eager_seconds:.1f} s eager)"
    compile_fn = compile_fn or torch.compile
    try:
        compiled = compile_fn(forward)
        with torch.inference_mode():
            batch = _noisy_batch(example, batch_size, sigma)
            t0 = clock()
            compiled(batch)  # the first call compiles
            _sync(_device_of(example))
            compile_seconds = clock() - t0
        rate = draws_per_second(compiled, example, batch_size, sigma=sigma, min_time=0.1)
    except Exception as err:  # noqa: BLE001 - whatever the compiler raises, eager still works
        text = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        return None, f"torch.compile failed ({type(err).__name__}: {text}); eager"
    saved = eager_seconds - expected_draws / rate
    speed = rate / eager_rate
    if speed <= 1 + TIE_TOLERANCE or saved <= compile_seconds:
        return None, (
            f"compiled {speed:.2f}x eager, saves {max(saved, 0.0):.1f} s for "
            f"{compile_seconds:.1f} s of compilation: eager"
        )
    return compiled, f"compiled {speed:.2f}x eager, {compile_seconds:.1f} s to compile"


def with_eager_fallback(
    compiled: Callable[[Any], Any], eager: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """``compiled``, switching to ``eager`` for good (with a warning) the first time it fails.

    The probe compiled one batch size; a run also meets a smaller last batch, which
    recompiles, and a compiler can fail there after hours of sampling. An error that is not
    the compiler's happens again in the eager call and propagates.

    Examples
    --------
    >>> def broken(b):
    ...     raise RuntimeError("inductor: no C++ compiler")
    >>> f = with_eager_fallback(broken, lambda b: b + 1)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f(1), f(2), len(w)
    (2, 3, 1)
    """
    state = {"failed": False}

    def forward(batch: Any) -> Any:
        if not state["failed"]:
            try:
                return compiled(batch)
            except Exception as err:  # noqa: BLE001 - whatever the compiler raises, eager works
                state["failed"] = True
                warnings.warn(
                    f"the torch.compile'd forward failed ({type(err).__name__}: "
                    f"{str(err).strip().splitlines()[0][:120] if str(err).strip() else ''}); "
                    "continuing eager",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return eager(batch)

    return forward


def _report(plan: BatchPlan, verbose: bool | None) -> None:
    """Print the plan the probe picked (on a terminal, or when asked)."""
    if verbose or (verbose is None and sys.stderr.isatty()):
        print(f"hierclass: batch_size='auto' picked {plan.describe()}", file=sys.stderr)


def resolve_plan(
    batch_size: int | str,
    model: Any,
    example: Any,
    *,
    sigma: float = 0.25,
    forward: Callable[[Any], Any] | None = None,
    channels_last: Callable[[Any], Any] | None = None,
    variant: Any = None,
    expected_draws: int | None = None,
    verbose: bool | None = None,
) -> BatchPlan:
    """Validate ``batch_size``, or for ``"auto"`` probe the fastest batch size and layout.

    Parameters
    ----------
    batch_size : int or "auto"
        A positive int gives ``BatchPlan(batch_size, channels_last=False)``: an explicit batch
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
    expected_draws : int, optional
        How many noisy draws the run will take; long runs also consider ``torch.compile``
        (:func:`consider_compile`). ``None``: never compile.
    verbose : bool, optional
        Print the plan picked (:meth:`BatchPlan.describe`); default: only on a terminal.

    Examples
    --------
    >>> resolve_plan(64, None, torch.zeros(3))
    BatchPlan(batch_size=64, channels_last=False, compiled=False, reason='')
    """
    if not isinstance(batch_size, str):  # an explicit size runs the model as given
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be a positive int or 'auto', got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return BatchPlan(batch_size)
    _check_auto(batch_size, example)
    plain = forward or model
    # The probe (batch size, layout) is cached per model and input layout. Compilation is
    # decided afresh for every run that says its length: a short call earlier in a session
    # must not rule it out for a long one, and a compiled forward (which holds the model)
    # is never cached, so the cache keeps no model alive.
    key = (_model_key(model), _layout_key(example), channels_last is not None, variant)
    plan, probed = _probed_plan(key, model, plain, channels_last, example, sigma)
    if expected_draws is not None:
        fastest = channels_last if plan.channels_last else plain
        plan = _compile_choice(plan, key, fastest, example, sigma, expected_draws, probed)
    if probed or expected_draws is not None:
        _report(plan, verbose)
    return plan


def _check_auto(batch_size: str, example: Any) -> None:
    """``"auto"``, with one input to probe with: a tensor or a non-empty dict of tensors."""
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


def _probed_plan(
    key: tuple, model: Any, plain: Any, channels_last: Any, example: Any, sigma: float
) -> tuple[BatchPlan, bool]:
    """The cached plan of ``key`` if it is ``model``'s, else a fresh probe (and cache it).

    Returns ``(plan, whether it was probed now)``.
    """
    hit = _cache.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1], False
    tic = time.perf_counter()
    plan = BatchPlan(probe_batch_size(plain, example, sigma=sigma))
    if channels_last is not None:
        plan = _compare_layouts(plain, channels_last, example, sigma, plan)
    plan = BatchPlan(plan.batch_size, plan.channels_last, probe_seconds=time.perf_counter() - tic)
    try:  # a weak reference: the cache must not keep a model alive
        ref = weakref.ref(model)
    except TypeError:
        ref = lambda: model  # noqa: E731 - objects that refuse weak references
    _cache[key] = (ref, plan)
    _eager_rates.pop(key, None)  # a new probe (perhaps a new model at the same id)
    return plan, True


def _compile_choice(
    plan: BatchPlan,
    key: tuple,
    fastest: Callable[[Any], Any],
    example: Any,
    sigma: float,
    expected_draws: int,
    probed: bool,
) -> BatchPlan:
    """``plan`` with the compilation decided for a run of ``expected_draws`` draws.

    ``fastest`` is the forward the plan chose (its layout); its eager rate is timed once per
    probe and kept, so a later run decides without timing anything.
    """
    rate = _eager_rates.get(key)
    if rate is None:
        rate = draws_per_second(fastest, example, plan.batch_size, sigma=sigma, min_time=0.1)
        _eager_rates[key] = rate
    compiled, reason = consider_compile(
        fastest, example, plan.batch_size, expected_draws=expected_draws, eager_rate=rate,
        sigma=sigma,
    )  # fmt: skip
    run = None if compiled is None else with_eager_fallback(compiled, fastest)
    return BatchPlan(plan.batch_size, plan.channels_last, compiled is not None, reason, run,
                plan.probe_seconds if probed else 0.0)  # fmt: skip


def _compare_layouts(plain, fast, example, sigma: float, plan: BatchPlan) -> BatchPlan:
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
        return BatchPlan(bs_fast, channels_last=True)
    return plan

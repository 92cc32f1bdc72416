"""Checks that wait for a boundary: verdicts kept on the device, read once.

A hot loop (an attack's steps) must not synchronise with the host on every call, yet the checks
its calls make (non-finite scores, inputs outside their range) must not be lost. Inside
``with deferred_checks():`` a check records its verdict as a device flag and, until it first
fails, the tensor it judged; leaving the block reads every flag with one synchronisation and, if
one failed, re-runs the check that failed first (in call order) on the very tensor it failed
on, so the error is the one the check raises at once outside the block.

Examples
--------
>>> from hierclass.inputs import check_logits
>>> def flag(t):
...     return ~torch.isfinite(t).all()
>>> with deferred_checks():  # doctest: +ELLIPSIS
...     for scale in (1.0, float("inf")):
...         check_or_defer(check_logits, torch.ones(2, 3) * scale, flag, site="demo")
Traceback (most recent call last):
...
ValueError: the model returned non-finite scores (nan or inf) for 2 of 2 rows; ...
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

import torch

from hierclass.batch import Batch, batch_size, check_batch
from hierclass.inputs import InputRange, check_inputs, range_for

Check = Callable[[torch.Tensor], object]

_NEVER = torch.iinfo(torch.long).max  # the call index of a check that never failed


class _Site:
    """One check at one place, on tensors of one shape: its first failure, kept on the device."""

    def __init__(self, check: Check, t: torch.Tensor) -> None:
        self.check = check
        self.failed = torch.zeros((), dtype=torch.bool, device=t.device)
        self.at = torch.full((), _NEVER, dtype=torch.long, device=t.device)
        self.tensor = t

    def record(self, t: torch.Tensor, bad: torch.Tensor, call: int) -> None:
        first = bad & ~self.failed
        self.tensor = torch.where(first, t, self.tensor)  # kept only until the first failure
        self.at = torch.where(first, call, self.at)
        self.failed = self.failed | bad


class _Pending:
    def __init__(self) -> None:
        self.sites: dict[Hashable, _Site] = {}
        self.calls = 0

    def record(self, check: Check, t: torch.Tensor, bad: torch.Tensor, site: Hashable) -> None:
        key = (site, tuple(t.shape), t.dtype, t.device)
        entry = self.sites.get(key)
        if entry is None:
            entry = self.sites[key] = _Site(check, t)
        entry.record(t, bad, self.calls)
        self.calls += 1

    def raise_first_failure(self) -> None:
        """One synchronisation; re-raise the first failed check, if any."""
        if not self.sites:
            return
        sites = list(self.sites.values())
        device = sites[0].at.device
        at = torch.stack([s.at.to(device) for s in sites]).tolist()
        first = min(range(len(sites)), key=at.__getitem__)
        if at[first] == _NEVER:
            return
        site = sites[first]
        site.check(site.tensor)
        raise AssertionError(f"a deferred check flagged a tensor that {site.check} accepts")


_PENDING: ContextVar[_Pending | None] = ContextVar("hierclass_deferred_checks", default=None)


def deferring() -> bool:
    """Whether checks are deferred here (inside :func:`deferred_checks`)."""
    return _PENDING.get() is not None


@contextmanager
def deferred_checks() -> Iterator[None]:
    """Defer :func:`check_or_defer` checks to the end of the block (one host sync there).

    The first check that failed inside the block raises on leaving it, as it would have at
    once; if the block itself raised, a check that failed before takes precedence (it is the
    cause: what ran after it ran on bad values).
    """
    pending = _Pending()
    token = _PENDING.set(pending)
    try:
        yield
    except Exception as exc:
        try:
            pending.raise_first_failure()
        except ValueError as err:
            raise err from exc
        raise
    finally:
        _PENDING.reset(token)
    pending.raise_first_failure()


def check_or_defer(
    check: Check,
    t: torch.Tensor,
    bad: Callable[[torch.Tensor], torch.Tensor],
    site: Hashable,
) -> None:
    """``check(t)`` now; inside :func:`deferred_checks`, ``bad(t)`` recorded for later.

    ``bad(t)`` is a 0-d bool tensor, computed without leaving the device, that is true exactly
    when ``check(t)`` raises; ``site`` names the place (checks at one site on tensors of one
    shape share one record).
    """
    pending = _PENDING.get()
    if pending is None:
        check(t)
    else:
        pending.record(check, t.detach(), bad(t.detach()), site)


def check_batch_or_defer(
    x: Batch, input_range: InputRange, check_range: bool, site: Hashable
) -> int:
    """:func:`~hierclass.batch.check_batch`, its verdict on the values deferred if deferring.

    Returns the batch size. The batch's structure (sizes, emptiness) is checked at once.
    """
    if _PENDING.get() is None:
        return check_batch(x, input_range=input_range, check_range=check_range)
    n = batch_size(x)
    if n == 0:
        return check_batch(x)  # the empty-batch error
    for key, t in [(None, x)] if isinstance(x, torch.Tensor) else x.items():
        if not t.is_floating_point() or t.numel() == 0:
            continue
        rng = range_for(key, t, input_range) if check_range else None
        check = partial(_check_modality, key=key, rng=rng)
        check_or_defer(check, t, partial(_outside, rng=rng), (site, key, rng))
    return n


def _check_modality(t: torch.Tensor, key: str | None, rng: tuple[float, float] | None) -> None:
    """``check_batch``'s check of one modality, with the same message."""
    check_inputs(t if key is None else {key: t}, input_range={key: rng}, what="input")


def _outside(t: torch.Tensor, rng: tuple[float, float] | None) -> torch.Tensor:
    """0-d bool on the device: whether :func:`_check_modality` refuses ``t``."""
    bad = ~torch.isfinite(t).all()
    if rng is not None:
        lo, hi = torch.aminmax(t)
        bad = bad | (lo < rng[0]) | (hi > rng[1])
    return bad

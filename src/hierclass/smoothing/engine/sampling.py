"""The Monte-Carlo engine: noisy copies of inputs, packed into batches, counted on device.

Sampling is the whole cost of certification, so this module keeps everything else out of the
way of the model's forward pass:

* noise comes from :mod:`hierclass.smoothing.engine.noise` (per-sample streams on the model's
  device, independent of batch size, batch composition and sharding);
* noisy inputs are written straight into a reused batch buffer (``x + sigma * noise`` in one
  kernel), memory stays O(batch) whatever ``n`` is;
* several samples' draws are packed into one forward pass when ``n`` is small next to the
  batch size, and one sample's draws span many batches when it is large;
* counts are accumulated with one ``torch.bincount`` per batch and copied to the host once per
  sample, when its last draw has been counted;
* each sample's wall time is measured (:class:`RowClock`): the time between two host
  synchronisations is split over the samples whose draws ran in it, in proportion to their
  rows, so packed samples are each charged their own share (``Task.seconds``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hierclass.smoothing.engine.noise import (  # noqa: F401 - re-exported: the names users import
    NOISE_BLOCK_ELEMENTS,
    STREAM_ESTIMATE,
    STREAM_PREDICT,
    STREAM_SELECT,
    NoiseStream,
    block_counter,
    block_draws,
    block_seed,
    check_distinct_noise_ids,
    modality_noise_id,
    stream_key,
)

__all__ = [
    "STREAM_ESTIMATE",
    "STREAM_PREDICT",
    "STREAM_SELECT",
    "CountEngine",
    "NoiseStream",
    "Request",
    "RowClock",
    "Task",
    "block_counter",
    "block_draws",
    "block_seed",
    "stream_key",
]


@dataclass
class Request:
    """``num`` noisy draws of a task's input from noise stream ``stream``.

    Examples
    --------
    >>> Request(STREAM_ESTIMATE, 1000).num
    1000
    """

    stream: int
    num: int


@dataclass
class Task:
    """One input to sample: the sample (no batch dimension), its global index, its requests.

    ``payload`` is carried through untouched for the caller (labels, bookkeeping). The engine
    fills ``counts`` and ``seconds`` (the wall time of its draws, see :class:`RowClock`).

    Examples
    --------
    >>> t = Task(torch.zeros(3), index=7, requests=[Request(STREAM_SELECT, 10)])
    >>> t.index, t.seconds
    (7, 0.0)
    """

    x: Any
    index: int
    requests: list[Request]
    payload: Any = None
    # filled by the engine
    counts: list[list[np.ndarray]] = field(default_factory=list)
    #: wall seconds spent on this task's draws (its share of each batch it rode in)
    seconds: float = 0.0


#: The clock :class:`RowClock` reads (a module attribute, so tests can put a fake one here).
_now = time.perf_counter


class RowClock:
    """Charges wall time to tasks in proportion to the rows (draws) each had evaluated.

    :meth:`charge` records rows as batches are packed; :meth:`settle` splits the wall time
    since the last settlement over the rows charged since then and adds each task's share
    to ``task.seconds``. The engine settles right after a host synchronisation (a finished
    sample's counts coming back), so on an accelerator the queued work of every batch since
    the previous one is inside the interval it splits; it adds no synchronisation of its own.
    Time before any row is charged (preparing the next input) is carried to the next
    settlement; time between :meth:`pause` and :meth:`resume` (the caller's) is no task's.

    Examples
    --------
    >>> t = iter([0.0, 3.0])
    >>> clock = RowClock(lambda: next(t))
    >>> a, b = Task(None, 0, []), Task(None, 1, [])
    >>> clock.charge(a, 100); clock.charge(b, 200)
    >>> clock.settle()
    >>> a.seconds, b.seconds
    (1.0, 2.0)
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock if clock is not None else _now
        self._rows: dict[int, list] = {}
        self._start: float | None = self.clock()

    def charge(self, task: Task, rows: int) -> None:
        """Record that ``rows`` draws of ``task`` ran since the last settlement."""
        entry = self._rows.get(id(task))
        if entry is None:
            self._rows[id(task)] = [task, rows]
        else:
            entry[1] += rows

    def settle(self) -> None:
        """Split the time since the last settlement over the rows charged since then."""
        if not self._rows or self._start is None:
            return
        now = self.clock()
        elapsed = now - self._start
        total = sum(rows for _, rows in self._rows.values())
        for task, rows in self._rows.values():
            task.seconds += elapsed * rows / total
        self._rows.clear()
        self._start = now

    def pause(self) -> None:
        """Settle what is charged and stop the clock until :meth:`resume`."""
        self.settle()
        self._start = None

    def resume(self) -> None:
        """Restart the clock after :meth:`pause`."""
        self._start = self.clock()


class _Job:
    __slots__ = ("task", "req", "slot", "remaining", "streams", "acc")

    def __init__(self, task, req, slot, streams, acc):
        self.task = task
        self.req = req
        self.slot = slot
        self.remaining = req.num
        self.streams = streams
        self.acc = acc


#: ``evaluate(batch, segments) -> [(index_within_head, rows_or_None), ...]``, one entry per
#: head; ``segments`` lists ``(task, num_rows)`` in batch order.
Evaluate = Callable[[Any, list], Sequence[tuple[torch.Tensor, torch.Tensor | None]]]


class CountEngine:
    """Counts a set of *heads* (label functions of a noisy batch) over Gaussian noise.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(batch, segments)`` with ``batch`` a tensor ``[B, ...]`` (or a dict of them)
        of noisy inputs and ``segments`` the ``(task, num_rows)`` pairs filling it, in order.
        Returns, per head, ``(idx, rows)``: ``idx`` holds the bin each evaluated draw falls in
        (``0 <= idx < head_sizes[h]``), ``rows`` the batch rows it evaluated, or ``None`` for
        all rows in order. ``idx`` may have trailing dimensions (several bins per draw).
    head_sizes : sequence of int
        Number of bins of each head.
    sigma : float
        Noise standard deviation.
    seed : int
        Base seed of all noise streams.
    batch_size : int
        Draws per forward pass.
    device : torch.device
        Where noise is generated and counts are kept (the model's device).
    perturbed_keys : sequence of str, optional
        For dict inputs: which modalities get noise (default: all floating-point ones).
        The others are repeated unchanged.

    Examples
    --------
    >>> f = lambda b, segments: [((b[:, 0] > 0).long(), None)]
    >>> eng = CountEngine(f, [2], sigma=1.0, seed=0, batch_size=64, device=torch.device("cpu"))
    >>> t = Task(torch.zeros(3), index=0, requests=[Request(STREAM_ESTIMATE, 1000)])
    >>> (done,) = list(eng.run([t]))
    >>> int(done.counts[0][0].sum())
    1000
    """

    def __init__(
        self,
        evaluate: Evaluate,
        head_sizes: Sequence[int],
        *,
        sigma: float,
        seed: int,
        batch_size: int,
        device: torch.device,
        perturbed_keys: Sequence[str] | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.head_sizes = [int(k) for k in head_sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.head_sizes)]).astype(int)
        self.width = int(self.offsets[-1])
        self.sigma = float(sigma)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.perturbed_keys = None if perturbed_keys is None else tuple(perturbed_keys)
        self.generator = torch.Generator(device=self.device)
        # non-finite scores seen so far, kept on the device (no host sync in the hot loop) and
        # read with the counts, once per (sample, stream)
        self._nonfinite = torch.zeros(1, dtype=torch.long, device=self.device)
        self.nonfinite_what = "the base classifier"
        self._buffers: Any = None
        self._layout: Any = None
        self.draws = 0  # noisy draws evaluated so far (for throughput reports)

    # -- buffers --------------------------------------------------------------------------
    def _layout_of(self, x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return (tuple(x.shape), x.dtype)
        return tuple((k, tuple(v.shape), v.dtype) for k, v in x.items())

    def _ensure_buffers(self, x: Any) -> None:
        layout = self._layout_of(x)
        if layout == self._layout:
            return
        if isinstance(x, torch.Tensor):
            self._buffers = torch.empty(
                (self.batch_size, *x.shape), dtype=x.dtype, device=self.device
            )
        else:
            self._buffers = {
                k: torch.empty((self.batch_size, *v.shape), dtype=v.dtype, device=self.device)
                for k, v in x.items()
            }
        self._layout = layout

    def _noisy_keys(self, x: Any) -> list:
        if isinstance(x, torch.Tensor):
            return [None]
        keys = [k for k, v in x.items() if v.is_floating_point()]
        if self.perturbed_keys is not None:
            missing = [k for k in self.perturbed_keys if k not in x]
            if missing:
                raise ValueError(
                    f"perturbed_keys {missing} are not modalities of the input (keys: {sorted(x)})"
                )
            keys = [k for k in x if k in self.perturbed_keys]
            bad = [k for k in keys if not x[k].is_floating_point()]
            if bad:
                raise TypeError(f"perturbed modalities must be floating point, not {bad}")
        check_distinct_noise_ids(keys)
        return keys

    def _make_job(self, task: Task, slot: int) -> _Job:
        x = task.x
        req = task.requests[slot]
        streams = {}
        noisy = self._noisy_keys(x)
        for key in self._all_keys(x):
            # a modality's noise depends on its name only, not on which other keys ride along
            key_id = modality_noise_id(key)
            if key in noisy:
                shape = x.shape if key is None else x[key].shape
                dtype = x.dtype if key is None else x[key].dtype
                streams[key] = NoiseStream(
                    self.seed, task.index, req.stream, key_id, shape, req.num, self.generator, dtype
                )
        acc = torch.zeros(self.width, dtype=torch.long, device=self.device)
        return _Job(task, req, slot, streams, acc)

    @staticmethod
    def _all_keys(x: Any) -> list:
        return [None] if isinstance(x, torch.Tensor) else list(x)

    def _write(self, job: _Job, start: int, m: int) -> None:
        x = job.task.x
        for key in self._all_keys(x):
            buf = self._buffers if key is None else self._buffers[key]
            value = x if key is None else x[key]
            stream = job.streams.get(key)
            if stream is None:
                buf[start : start + m].copy_(value.expand(m, *value.shape))
                continue
            pos = start
            for draw in stream.take(m):
                k = draw.shape[0]
                torch.add(value, draw, alpha=self.sigma, out=buf[pos : pos + k])
                pos += k

    def _batch(self, rows: int) -> Any:
        if isinstance(self._buffers, torch.Tensor):
            return self._buffers[:rows]
        return {k: v[:rows] for k, v in self._buffers.items()}

    # -- main loop ------------------------------------------------------------------------
    def run(self, tasks: Iterable[Task]) -> Iterator[Task]:
        """Sample every task's requests; yield each task, in order, once its counts are in.

        ``task.counts[r][h]`` is the count vector (numpy int64, length ``head_sizes[h]``) of
        request ``r`` and head ``h``; ``task.seconds`` the wall time its draws took (its share
        of every batch it rode in, see :class:`RowClock`; the caller's time between yields
        is not counted).
        """
        clock = RowClock()
        task_iter = iter(tasks)
        pending: deque[_Job] = deque()
        open_jobs: dict[int, int] = {}
        order: deque[Task] = deque()
        exhausted = False
        while True:
            segments: list[tuple[_Job, int]] = []
            rows = 0
            with torch.inference_mode():
                while rows < self.batch_size:
                    if not pending:
                        if exhausted:
                            break
                        task = next(task_iter, None)
                        if task is None:
                            exhausted = True
                            break
                        self._check_task(task)
                        self._ensure_buffers(task.x)
                        jobs = [self._make_job(task, i) for i in range(len(task.requests))]
                        order.append(task)
                        open_jobs[id(task)] = sum(1 for r in task.requests if r.num > 0)
                        task.counts = [[] for _ in task.requests]
                        for j in jobs:
                            if j.req.num > 0:
                                pending.append(j)
                            else:
                                self._finish_job(j)
                        continue
                    job = pending[0]
                    if self._layout_of(job.task.x) != self._layout:
                        if segments:
                            break  # a new input shape: flush what is packed first
                        self._ensure_buffers(job.task.x)
                    m = min(job.remaining, self.batch_size - rows)
                    self._write(job, rows, m)
                    segments.append((job, m))
                    job.remaining -= m
                    rows += m
                    if job.remaining == 0:
                        pending.popleft()
                if segments:
                    self._count(self._batch(rows), segments)
                    self.draws += rows
                    synced = False
                    for job, m in segments:
                        clock.charge(job.task, m)
                        if job.remaining == 0:
                            self._finish_job(job)
                            synced = True
                            open_jobs[id(job.task)] -= 1
                    if synced:  # the host has waited for every batch so far: time them
                        clock.settle()
            while order and open_jobs.get(id(order[0]), 0) == 0:
                task = order.popleft()
                open_jobs.pop(id(task), None)
                clock.pause()
                yield task
                clock.resume()
            if exhausted and not pending and not order:
                return

    def _check_task(self, task: Task) -> None:
        if not isinstance(task.x, (torch.Tensor, Mapping)):
            raise TypeError(f"an input is a tensor or a dict of tensors, got {type(task.x)}")
        for r in task.requests:
            if r.num < 0:
                raise ValueError(f"a request needs num >= 0 draws, got {r.num}")

    def flag_nonfinite(self, scores: torch.Tensor) -> None:
        """Record, on the device, whether ``scores`` hold ``nan`` or ``inf`` (no host sync).

        ``evaluate`` calls it on each batch of model outputs; the flag comes back with the
        next sample's counts and raises there.
        """
        self._nonfinite.add_((~torch.isfinite(scores)).any())

    def _finish_job(self, job: _Job) -> None:
        # the one host synchronisation per (sample, stream): counts and the non-finite flag
        packed = torch.cat([job.acc, self._nonfinite]).cpu().numpy()
        if packed[-1]:
            raise ValueError(
                f"{self.nonfinite_what} returned non-finite scores (nan or inf) on noisy "
                f"copies of sample {job.task.index}; check the model and its input"
            )
        acc = packed[:-1]
        job.task.counts[job.slot] = [
            acc[self.offsets[h] : self.offsets[h + 1]].copy() for h in range(len(self.head_sizes))
        ]

    def _count(self, batch: Any, segments: list[tuple[_Job, int]]) -> None:
        heads = self.evaluate(batch, [(job.task, m) for job, m in segments])
        if len(heads) != len(self.head_sizes):
            raise ValueError(
                f"evaluate returned {len(heads)} heads, expected {len(self.head_sizes)}"
            )
        if len(segments) == 1:
            parts = []
            for h, (idx, _rows) in enumerate(heads):
                parts.append(idx.reshape(-1) + int(self.offsets[h]) if h else idx.reshape(-1))
            flat = parts[0] if len(parts) == 1 else torch.cat(parts)
            job = segments[0][0]
            job.acc += torch.bincount(flat, minlength=self.width)
            return
        sizes = torch.tensor([m for _, m in segments], device=self.device)
        slot = torch.repeat_interleave(torch.arange(len(segments), device=self.device), sizes)
        parts = []
        for h, (idx, rows) in enumerate(heads):
            s = slot if rows is None else slot[rows]
            base = s * self.width + int(self.offsets[h])
            base = base.view(-1, *([1] * (idx.dim() - 1)))
            parts.append((idx + base).reshape(-1))
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        counts = torch.bincount(flat, minlength=len(segments) * self.width)
        counts = counts.view(len(segments), self.width)
        for j, (job, _) in enumerate(segments):
            job.acc += counts[j]

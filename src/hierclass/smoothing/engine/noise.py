"""Reproducible Gaussian noise: one stream per (seed, sample index, stream, modality).

Noise is generated on the model's device, in blocks of draws determined by ``(seed, sample
index, stream, modality, block)``. A sample's noise therefore never depends on the batch size,
on which other samples share its batches, or on how a data set is sharded. No two blocks of a
run coincide: on the CPU (whose torch generator keeps only 32 bits of a seed) blocks are
disjoint counter ranges of a Philox stream with a 128-bit key. The engine that packs these
draws into batches and counts votes is :mod:`hierclass.smoothing.engine.sampling`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "NOISE_BLOCK_ELEMENTS",
    "STREAM_ESTIMATE",
    "STREAM_PREDICT",
    "STREAM_SELECT",
    "NoiseStream",
    "block_counter",
    "block_draws",
    "block_seed",
    "check_distinct_noise_ids",
    "modality_noise_id",
    "stream_key",
]

#: Noise stream ids: selection (n0), estimation (n) and ``predict`` samples never share noise,
#: so the n0 selection samples are never reused for estimation (Cohen's proof needs that).
STREAM_SELECT = 0
STREAM_ESTIMATE = 1
STREAM_PREDICT = 2

#: Upper bound on the elements of one noise block (4 MiB of float32).
NOISE_BLOCK_ELEMENTS = 2**20
_MAX_BLOCK_DRAWS = 1024


def stream_key(seed: int, index: int, stream: int, key_id: int) -> np.ndarray:
    """The 128-bit Philox key of one noise stream (one sample, stream and modality).

    Derived with :class:`numpy.random.SeedSequence`, so neighbouring indices get unrelated
    keys. Blocks of the stream are counter ranges under this key (:func:`block_counter`).

    Examples
    --------
    >>> stream_key(0, 5, 1, 0).dtype, stream_key(0, 5, 1, 0).shape
    (dtype('uint64'), (2,))
    """
    return np.random.SeedSequence([seed, index, stream, key_id]).generate_state(2, dtype=np.uint64)


def block_counter(block: int) -> np.ndarray:
    """The Philox counter where block ``block`` of a stream starts: ``block * 2**64``.

    A block consumes far fewer than ``2**64`` counter steps (it holds at most
    ``NOISE_BLOCK_ELEMENTS`` draws), so two blocks of one stream never share a counter value,
    and so never share noise, by construction.

    Examples
    --------
    >>> block_counter(3).tolist()
    [0, 3, 0, 0]
    """
    if not 0 <= int(block) < 2**64:
        raise ValueError(f"a block number must lie in [0, 2**64), got {block}")
    return np.array([0, int(block), 0, 0], dtype=np.uint64)


def block_seed(seed: int, index: int, stream: int, key_id: int, block: int) -> int:
    """The 63-bit seed of one block on an accelerator (CUDA's Philox keeps all 64 bits).

    CPU noise does not use it: torch's CPU generator keeps only 32 bits of a seed, so blocks
    there are drawn from numpy's Philox under :func:`stream_key` instead.

    Examples
    --------
    >>> block_seed(0, 5, 1, 0, 0) == block_seed(0, 5, 1, 0, 0) != block_seed(0, 6, 1, 0, 0)
    True
    """
    state = np.random.SeedSequence([seed, index, stream, key_id, block]).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0] >> np.uint64(1))  # 63 bits: a valid torch seed on every device


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}

_MT_WORDS = 624  # Mersenne-Twister state words (torch stores each in 8 bytes)
_MT_OFFSET = 24  # after the initial seed (8 bytes), left/seeded (8) and next (8)


def _mt_template() -> np.ndarray | None:
    """The byte layout of a freshly seeded CPU generator's state, or None if it is not the
    known one (then CPU noise falls back to numpy's Philox sampler, slower but as sound)."""
    g = torch.Generator()
    g.manual_seed(0)
    state = g.get_state().numpy().copy()
    if state.size != 5056:
        return None
    words = state[_MT_OFFSET : _MT_OFFSET + 8 * _MT_WORDS].view(np.uint64)
    probe = torch.Generator()
    probe.manual_seed(1)
    try:
        g.set_state(torch.from_numpy(state))
        a = torch.randn(4, generator=g)
        changed = state.copy()
        changed[_MT_OFFSET + 8 : _MT_OFFSET + 16] = np.array([12345], np.uint64).view(np.uint8)
        g.set_state(torch.from_numpy(changed))
        b = torch.randn(4, generator=g)
    except RuntimeError:
        return None
    # the layout is the one assumed when the words are the state and steer the draws
    if words.max() >= 2**32 or torch.equal(a, b):
        return None
    return state


_MT_TEMPLATE = _mt_template()


def block_draws(shape: Sequence[int], total: int) -> int:
    """Draws per noise block for one input of ``shape`` in a stream of ``total`` draws.

    A power of two chosen from the input size alone (about ``NOISE_BLOCK_ELEMENTS``
    elements), never more than the stream needs. It does not depend on the batch size.

    Examples
    --------
    >>> block_draws((1, 28, 28), 100_000), block_draws((1, 28, 28), 100)
    (1024, 100)
    """
    numel = max(1, int(np.prod(shape, dtype=np.int64)))
    per_block = max(1, NOISE_BLOCK_ELEMENTS // numel)
    per_block = min(_MAX_BLOCK_DRAWS, 1 << (per_block.bit_length() - 1))
    return max(1, min(per_block, int(total)))


class NoiseStream:
    """The standard-normal draws of one (sample, stream, modality), produced block by block.

    Parameters
    ----------
    seed : int
        Identify the stream; see :func:`stream_key`.
    index : int
        Identify the stream; see :func:`stream_key`.
    stream : int
        Identify the stream; see :func:`stream_key`.
    key_id : int
        Identify the stream; see :func:`stream_key`.
    shape : tuple of int
        Shape of one draw (the sample's shape without batch dimension).
    total : int
        How many draws the stream will be asked for (sets the block size).
    generator : torch.Generator
        A generator on the target device. On an accelerator it is reseeded at each block with
        :func:`block_seed`, so it may be shared. On the CPU a 32-bit seed could make two
        blocks coincide (torch's CPU generator keeps 32 bits of a seed), so each block's
        generator state is instead filled with numpy Philox words keyed by :func:`stream_key`
        at :func:`block_counter`: distinct counters give distinct states, and torch's fast
        normal sampler then draws from them (numpy's Philox sampler if the state layout is
        not the known one).
    dtype : torch.dtype
        Floating dtype of the draws.

    Examples
    --------
    >>> g = torch.Generator()
    >>> a = torch.cat(NoiseStream(0, 3, 1, 0, (2,), 10, g).take(10))
    >>> s = NoiseStream(0, 3, 1, 0, (2,), 10, g)
    >>> b = torch.cat(s.take(4) + s.take(6))
    >>> torch.equal(a, b)
    True
    """

    def __init__(
        self,
        seed: int,
        index: int,
        stream: int,
        key_id: int,
        shape: Sequence[int],
        total: int,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.key = (int(seed), int(index), int(stream), int(key_id))
        self.shape = tuple(int(s) for s in shape)
        self.block = block_draws(self.shape, total)
        self.generator = generator
        self.dtype = dtype
        self._philox_key = stream_key(*self.key) if generator.device.type == "cpu" else None
        self._next_block = 0
        self._buf: torch.Tensor | None = None
        self._pos = 0

    def block_noise(self, block: int) -> torch.Tensor:
        """The draws of block ``block``: ``[self.block, *shape]`` (random access, for tests)."""
        size = (self.block, *self.shape)
        if self._philox_key is None:
            self.generator.manual_seed(block_seed(*self.key, block))
            return torch.randn(
                size, generator=self.generator, device=self.generator.device, dtype=self.dtype
            )
        bits = np.random.Philox(key=self._philox_key, counter=block_counter(block))
        if _MT_TEMPLATE is not None:
            # torch's own (fast) normal sampler, from a full 19937-bit Mersenne-Twister state
            # filled with this block's Philox words: distinct blocks get distinct states
            state = _MT_TEMPLATE.copy()
            words = bits.random_raw(_MT_WORDS // 2).view(np.uint32).astype(np.uint64)
            state[_MT_OFFSET : _MT_OFFSET + 8 * _MT_WORDS] = words.view(np.uint8)
            self.generator.set_state(torch.from_numpy(state))
            return torch.randn(size, generator=self.generator, dtype=self.dtype)
        np_dtype = _NUMPY_DTYPES.get(self.dtype, np.float32)
        out = torch.empty(size, dtype=torch.float32 if np_dtype is np.float32 else torch.float64)
        np.random.Generator(bits).standard_normal(out=out.numpy(), dtype=np_dtype)
        return out if out.dtype == self.dtype else out.to(self.dtype)

    def _refill(self) -> None:
        self._buf = self.block_noise(self._next_block)
        self._next_block += 1
        self._pos = 0

    def take(self, m: int) -> list[torch.Tensor]:
        """The next ``m`` draws, as views ``[k, *shape]`` whose lengths sum to ``m``."""
        out = []
        while m > 0:
            if self._buf is None or self._pos == self.block:
                self._refill()
            k = min(m, self.block - self._pos)
            out.append(self._buf[self._pos : self._pos + k])
            self._pos += k
            m -= k
        return out


def modality_noise_id(key: Any) -> int:
    """The noise id of a modality: a function of its name only (0 for a plain tensor input).

    A modality's noise must not depend on which other keys ride along, so the id comes from
    the name (its CRC-32, plus one); :func:`check_distinct_noise_ids` refuses names that share
    one, since two modalities with one id would get identical noise.

    Examples
    --------
    >>> modality_noise_id(None), modality_noise_id("image") == modality_noise_id("image")
    (0, True)
    """
    return 0 if key is None else zlib.crc32(str(key).encode()) + 1


def check_distinct_noise_ids(keys: Sequence[Any]) -> None:
    """Refuse perturbed modalities whose names share a noise id (a CRC-32 collision).

    Identical noise on two modalities is not the isotropic Gaussian the certificate assumes,
    so the certificate would be unsound; renaming one modality fixes it.

    Examples
    --------
    >>> check_distinct_noise_ids(["image", "audio"])
    >>> check_distinct_noise_ids(["plumless", "buckeroo"])
    Traceback (most recent call last):
    ...
    ValueError: modalities 'plumless' and 'buckeroo' share a noise id ...; rename one of them
    """
    seen: dict[int, Any] = {}
    for key in keys:
        kid = modality_noise_id(key)
        if kid in seen:
            raise ValueError(
                f"modalities {seen[kid]!r} and {key!r} share a noise id (their names' CRC-32 "
                "collide), so they would get identical noise; rename one of them"
            )
        seen[kid] = key

"""The PRF / error-correcting-code toy of §III-C (after Degwekar et al.).

Two distributions over bit strings ``z = (b, Encode(x, F_k(x) xor b))`` with ``x`` uniform in
``{0,1}^n``, label ``b``, a pseudo-random function ``F_k`` with secret key ``k`` and an error-
correcting code. The first bit gives the label away, so a classifier reading it is perfect
and easy to learn, but an adversary who may flip that bit (plus a few codeword bits the code
corrects) defeats it. A robust classifier exists (decode, recompute ``F_k(x)``, compare) but
needs the key; without it the codeword looks like noise, which is what the keyless learner
here shows empirically. Enforcing the invariant ``I = {(z, z~) : z_0 = z~_0}`` (the adversary
may not touch the first bit) makes the trivial first-bit classifier robust.

This is a toy: ``F_k`` is HMAC-SHA256 truncated to one bit (a standard PRF candidate, not a
proof) and the code is a repetition code (corrects ``(r - 1) // 2`` flips per block).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import numpy as np

from hierclass._utils.checks import positive_int


class RepetitionCode:
    """Repeat each bit ``r`` times (``r`` odd); decode by majority vote per block.

    Examples
    --------
    >>> code = RepetitionCode(3)
    >>> code.encode(np.array([[1, 0]], dtype=np.uint8)).tolist()
    [[1, 1, 1, 0, 0, 0]]
    >>> code.decode(np.array([[1, 0, 1, 0, 0, 1]], dtype=np.uint8)).tolist()
    [[1, 0]]
    """

    def __init__(self, r: int = 5) -> None:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1 or r % 2 == 0:
            raise ValueError(f"r must be an odd positive int, got {r!r}")
        self.r = r

    @property
    def correctable(self) -> int:
        """Flips per block the majority vote always undoes."""
        return (self.r - 1) // 2

    def encode(self, bits: np.ndarray) -> np.ndarray:
        """``[m, L]`` bits -> ``[m, L * r]`` codewords."""
        return np.repeat(np.asarray(bits, dtype=np.uint8), self.r, axis=1)

    def decode(self, codewords: np.ndarray) -> np.ndarray:
        """``[m, L * r]`` (possibly corrupted) codewords -> ``[m, L]`` bits."""
        c = np.asarray(codewords, dtype=np.uint8)
        if c.ndim != 2 or c.shape[1] % self.r:
            raise ValueError(f"codewords must be [m, L * {self.r}], got shape {c.shape}")
        blocks = c.reshape(c.shape[0], -1, self.r)
        return (blocks.sum(axis=2) * 2 > self.r).astype(np.uint8)


class PRF:
    """``F_k : {0,1}^n -> {0,1}``: HMAC-SHA256 of the packed bits, lowest output bit.

    Examples
    --------
    >>> f = PRF(b"secret")
    >>> f(np.array([[0, 1, 1], [0, 1, 1]], dtype=np.uint8)).tolist()[0] in (0, 1)
    True
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or not key:
            raise TypeError("key must be non-empty bytes")
        self._key = key

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.uint8)
        if x.ndim != 2:
            raise ValueError(f"x must be [m, n] bits, got shape {x.shape}")
        packed = np.packbits(x, axis=1)
        out = [
            hmac.new(self._key, row.tobytes(), hashlib.sha256).digest()[-1] & 1 for row in packed
        ]
        return np.asarray(out, dtype=np.uint8)


@dataclass
class PRFECCTask:
    """Sampler and classifiers for the §III-C construction.

    Parameters
    ----------
    n_bits : int, default 16
        Length of ``x``.
    r : int, default 5
        Repetition factor of the code.
    key : bytes, default b"hierclass-toy-key"
        Secret PRF key.

    Examples
    --------
    >>> task = PRFECCTask(n_bits=8, r=3)
    >>> z, b = task.sample(100, seed=0)
    >>> bool((task.keyed_classifier(z) == b).all()), bool((task.first_bit_classifier(z) == b).all())
    (True, True)
    """

    n_bits: int = 16
    r: int = 5
    key: bytes = b"hierclass-toy-key"

    def __post_init__(self) -> None:
        positive_int(self.n_bits, "n_bits")
        self.code = RepetitionCode(self.r)
        self.prf = PRF(self.key)

    @property
    def length(self) -> int:
        """Bits per sample: the label bit plus the codeword."""
        return 1 + (self.n_bits + 1) * self.r

    def sample(self, m: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``m`` samples: ``z`` uint8 ``[m, length]`` and labels ``b`` uint8 ``[m]`` (balanced)."""
        rng = np.random.default_rng(seed)
        b = rng.integers(0, 2, m, dtype=np.uint8)
        x = rng.integers(0, 2, (m, self.n_bits), dtype=np.uint8)
        tag = self.prf(x) ^ b
        z = np.concatenate([b[:, None], self.code.encode(np.concatenate([x, tag[:, None]], 1))], 1)
        return z, b

    def attack(
        self, z: np.ndarray, b: np.ndarray, *, may_flip_first: bool, seed: int = 0
    ) -> np.ndarray:
        """The adversary: flips the label bit (unless the invariant forbids it) and
        ``(r - 1) // 2`` random bits in every codeword block (all the code can correct)."""
        rng = np.random.default_rng(seed)
        z = np.array(z, dtype=np.uint8, copy=True)
        if may_flip_first:
            z[:, 0] = 1 - np.asarray(b, dtype=np.uint8)
        m, blocks = z.shape[0], self.n_bits + 1
        t = self.code.correctable
        if t:
            picks = np.argsort(rng.random((m, blocks, self.r)), axis=2)[:, :, :t]
            pos = 1 + np.arange(blocks)[None, :, None] * self.r + picks
            rows = np.broadcast_to(np.arange(m)[:, None, None], pos.shape)
            z[rows, pos] ^= 1
        return z

    def first_bit_classifier(self, z: np.ndarray) -> np.ndarray:
        """The easy classifier: read the label bit."""
        return np.asarray(z)[:, 0].astype(np.uint8)

    def keyed_classifier(self, z: np.ndarray) -> np.ndarray:
        """The robust classifier that needs the key: decode, recompute ``F_k(x)``, compare."""
        decoded = self.code.decode(np.asarray(z)[:, 1:])
        x, tag = decoded[:, :-1], decoded[:, -1]
        return (tag ^ self.prf(x)).astype(np.uint8)


def prf_ecc_comparison(
    n_bits: int = 16, r: int = 5, n_train: int = 4000, n_test: int = 2000, seed: int = 0
) -> list[dict[str, object]]:
    """Natural and adversarial accuracy of four learners, with and without the invariant.

    Rows: the first-bit classifier without the invariant (the adversary flips bit 0) and with
    it; a keyless learner (logistic regression on the codeword: what can be learned without
    ``k`` once bit 0 is untrusted); the key holder. Expected: 1/0, 1/1, ~0.5/~0.5, 1/1.

    Returns
    -------
    list of dict with keys ``learner``, ``invariant``, ``natural``, ``adversarial``

    Examples
    --------
    >>> rows = prf_ecc_comparison(n_bits=8, r=3, n_train=300, n_test=200)
    >>> [(r["natural"], r["adversarial"]) for r in rows[:2]]
    [(1.0, 0.0), (1.0, 1.0)]
    """
    from sklearn.linear_model import LogisticRegression

    task = PRFECCTask(n_bits=n_bits, r=r)
    z_tr, b_tr = task.sample(n_train, seed=seed)
    z_te, b_te = task.sample(n_test, seed=seed + 1)
    free = task.attack(z_te, b_te, may_flip_first=True, seed=seed + 2)
    bound = task.attack(z_te, b_te, may_flip_first=False, seed=seed + 2)
    keyless = LogisticRegression(max_iter=2000).fit(z_tr[:, 1:], b_tr)

    def acc(pred: np.ndarray) -> float:
        return float((np.asarray(pred) == b_te).mean())

    return [
        {
            "learner": "first bit",
            "invariant": False,
            "natural": acc(task.first_bit_classifier(z_te)),
            "adversarial": acc(task.first_bit_classifier(free)),
        },
        {
            "learner": "first bit",
            "invariant": True,
            "natural": acc(task.first_bit_classifier(z_te)),
            "adversarial": acc(task.first_bit_classifier(bound)),
        },
        {
            "learner": "keyless (logistic regression on codeword)",
            "invariant": False,
            "natural": acc(keyless.predict(z_te[:, 1:])),
            "adversarial": acc(keyless.predict(free[:, 1:])),
        },
        {
            "learner": "key holder (decode + PRF)",
            "invariant": False,
            "natural": acc(task.keyed_classifier(z_te)),
            "adversarial": acc(task.keyed_classifier(free)),
        },
    ]

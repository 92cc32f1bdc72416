"""A simulator of the paper's speaker-identification case study (§VI-B).

**This data is simulated.** The paper uses LibriSpeech (1172 speakers, 3 s clips at 4 kHz); no
such corpus ships with any package installed here, so hierclass synthesises speech-like log-mel
features that keep the structure the case study relies on:

* every speaker has a gender, a mean pitch (female voices about 165-255 Hz, male about 85-160 Hz),
  a vocal-tract length (female formants about 17% higher), a glottal roll-off and personal
  offsets of each vowel's formants;
* an utterance is a sequence of voiced frames: a glottal pulse train with the speaker's pitch
  contour and jitter, shaped by the formant resonances of a vowel sequence with coarticulation,
  plus breath noise and background noise at a random SNR;
* frames go through a windowed FFT and a mel filter bank; the log-mel image is scaled to [0, 1]
  (80 dB below the utterance's peak maps to 0).

So a root can read gender robustly from pitch and formants, and leaves tell speakers apart
inside a gender. Numbers obtained on it are not the paper's LibriSpeech numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from hierclass._utils.checks import positive_int

__all__ = [
    "GENDER_NAMES",
    "SpeakerBatch",
    "SpeakerSimulator",
    "simulate_speakers",
]

#: Gender codes of :attr:`SpeakerBatch.gender` and :attr:`SpeakerSimulator.speaker_gender`.
GENDER_NAMES: tuple[str, ...] = ("female", "male")

# Formant targets F1..F3 (Hz) of five vowels for an adult male vocal tract (i, e, a, o, u).
_VOWELS = np.array(
    [
        [270.0, 2290.0, 3010.0],
        [530.0, 1840.0, 2480.0],
        [730.0, 1090.0, 2440.0],
        [570.0, 840.0, 2410.0],
        [300.0, 870.0, 2240.0],
    ]
)
_BANDWIDTH = np.array([70.0, 100.0, 140.0])
_SEGMENTS = 4  # vowels per utterance
_CHUNK = 1024


@dataclass(frozen=True)
class SpeakerBatch:
    """Simulated utterances as log-mel images.

    Attributes
    ----------
    features : torch.Tensor
        ``[N, 1, n_mels, n_frames]`` float32 log-mel features in [0, 1] (low mel bands first).
    speaker : torch.Tensor
        ``[N]`` int64 speaker ids (the labels).
    gender : torch.Tensor
        ``[N]`` int64 gender codes into :data:`GENDER_NAMES`.
    f0 : torch.Tensor
        ``[N]`` float32 mean pitch of the utterance, Hz.
    snr_db : torch.Tensor
        ``[N]`` float32 signal-to-noise ratio of the utterance, dB.

    Examples
    --------
    >>> batch = SpeakerSimulator(num_speakers=4).generate(5, seed=0)
    >>> batch.features.shape, len(batch[:2])
    (torch.Size([5, 1, 32, 32]), 2)
    """

    features: torch.Tensor
    speaker: torch.Tensor
    gender: torch.Tensor
    f0: torch.Tensor
    snr_db: torch.Tensor

    @property
    def inputs(self) -> torch.Tensor:
        """The model input, :attr:`features`."""
        return self.features

    @property
    def label(self) -> torch.Tensor:
        """Alias of :attr:`speaker`."""
        return self.speaker

    def __len__(self) -> int:
        return int(self.speaker.shape[0])

    def __getitem__(self, index: Any) -> SpeakerBatch:
        """Sub-batch selected by a slice, an index tensor/array or a boolean mask."""
        if isinstance(index, int):
            raise TypeError(
                "index a SpeakerBatch with a slice, an index array or a mask, not an int"
            )
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        return SpeakerBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> SpeakerBatch:
        """Copy of the batch with every tensor on ``device``."""
        return SpeakerBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class SpeakerSimulator:
    """Synthesises log-mel features of voiced speech for a fixed set of simulated speakers.

    The speakers (gender, pitch, vocal tract, voice quality) are fixed by ``speaker_seed``;
    utterances are drawn by :meth:`generate` from its own ``seed``, so a train and a test set
    drawn with different seeds share speakers but not utterances.

    Parameters
    ----------
    num_speakers : int, default 20
        Number of speakers (labels ``0..num_speakers-1``).
    num_female : int, optional
        Speakers ``0..num_female-1`` are female, the rest male. Default: half, rounded down.
    speaker_seed : int, default 0
        Seed of the speakers' traits.
    sample_rate : int, default 8000
        Sampling rate of the simulated audio, Hz.
    n_mels : int, default 32
        Mel bands (image height).
    n_frames : int, default 32
        Frames of 25 ms every 10 ms (image width); 32 frames span 0.335 s.
    snr_db : tuple of float, default (20.0, 40.0)
        Range of the background-noise SNR, dB.
    pitch_spread : float, default 0.03
        Relative spread of an utterance's mean pitch around the speaker's.

    Examples
    --------
    >>> sim = SpeakerSimulator(num_speakers=6)
    >>> sim.speaker_gender.tolist()
    [0, 0, 0, 1, 1, 1]
    >>> batch = sim.generate(8, seed=3)
    >>> bool(((batch.features >= 0) & (batch.features <= 1)).all())
    True
    >>> bool(torch.equal(batch.gender, sim.speaker_gender[batch.speaker]))
    True
    """

    def __init__(
        self,
        num_speakers: int = 20,
        num_female: int | None = None,
        *,
        speaker_seed: int = 0,
        sample_rate: int = 8000,
        n_mels: int = 32,
        n_frames: int = 32,
        snr_db: tuple[float, float] = (20.0, 40.0),
        pitch_spread: float = 0.03,
    ) -> None:
        self.num_speakers = num_speakers
        self.num_female = num_female
        self.speaker_seed = speaker_seed
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_frames = n_frames
        self.snr_db = snr_db
        self.pitch_spread = pitch_spread

    # ------------------------------------------------------------------ speakers
    def _female_count(self) -> int:
        if not isinstance(self.num_speakers, int) or self.num_speakers < 2:
            raise ValueError(f"num_speakers must be an int >= 2, got {self.num_speakers!r}")
        k = self.num_speakers // 2 if self.num_female is None else self.num_female
        if not isinstance(k, int) or not 1 <= k < self.num_speakers:
            raise ValueError(
                f"num_female must be an int in 1..{self.num_speakers - 1} so both genders have "
                f"speakers, got {self.num_female!r}"
            )
        return k

    @property
    def speaker_gender(self) -> torch.Tensor:
        """``[num_speakers]`` int64 gender code of each speaker (0 female, 1 male)."""
        k = self._female_count()
        return (torch.arange(self.num_speakers) >= k).long()

    def gender_partition(self):
        """The gender invariant as a :class:`~hierclass.LabelPartition` over speaker ids.

        Examples
        --------
        >>> SpeakerSimulator(num_speakers=4).gender_partition().classes
        ((0, 1), (2, 3))
        """
        from hierclass.partition import LabelPartition

        gender = self.speaker_gender.tolist()
        return LabelPartition(
            {
                name: [s for s, g in enumerate(gender) if g == code]
                for code, name in enumerate(GENDER_NAMES)
            },
            num_labels=self.num_speakers,
        )

    def _traits(self) -> dict[str, np.ndarray]:
        k = self._female_count()
        n = self.num_speakers
        rng = np.random.default_rng(self.speaker_seed)
        female = np.arange(n) < k
        f0 = np.where(
            female,
            np.clip(rng.normal(210.0, 22.0, n), 165.0, 255.0),
            np.clip(rng.normal(120.0, 16.0, n), 85.0, 160.0),
        )
        tract = np.where(female, 1.17, 1.0) * rng.normal(1.0, 0.035, n)
        return {
            "f0": f0,
            "tract": tract,
            # personal deviation of each vowel's formants from the population targets
            "vowel_offset": rng.normal(1.0, 0.10, (n, len(_VOWELS), 3)),
            "bandwidth": rng.uniform(0.8, 1.3, (n, 3)),
            "rolloff": rng.uniform(300.0, 900.0, n),  # glottal source corner frequency, Hz
            "breath": rng.uniform(0.02, 0.12, n),
            "rate": rng.uniform(0.8, 1.25, n),  # speaking rate: how fast vowels change
        }

    # ------------------------------------------------------------------ utterances
    def generate(
        self,
        n: int,
        seed: int = 0,
        speakers: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    ) -> SpeakerBatch:
        """Draw ``n`` utterances from speakers chosen uniformly.

        Parameters
        ----------
        n : int
            Number of utterances.
        seed : int, default 0
            Seed of everything random in the utterances.
        speakers : sequence of int, optional
            Speaker ids to draw from; default all.

        Returns
        -------
        SpeakerBatch
        """
        n = positive_int(n, "n")
        pool = np.arange(self.num_speakers) if speakers is None else self._as_ids(speakers)
        if pool.size == 0:
            raise ValueError("speakers must name at least one speaker, got an empty sequence")
        rng = np.random.default_rng(seed)
        return self._synthesise(rng.choice(pool, size=n), rng)

    def render(
        self, speakers: Sequence[int] | np.ndarray | torch.Tensor, seed: int = 0
    ) -> SpeakerBatch:
        """One utterance for each given speaker id, in order.

        Examples
        --------
        >>> SpeakerSimulator(num_speakers=4).render([3, 0], seed=1).gender.tolist()
        [1, 0]
        """
        ids = self._as_ids(speakers)
        if ids.size == 0:
            raise ValueError("speakers must name at least one speaker, got an empty sequence")
        return self._synthesise(ids, np.random.default_rng(seed))

    def _as_ids(self, speakers: Any) -> np.ndarray:
        if isinstance(speakers, torch.Tensor):
            speakers = speakers.detach().cpu().numpy()
        arr = np.asarray(speakers)
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise TypeError(f"speakers must be a 1-D sequence of int speaker ids, got {speakers!r}")
        bad = arr[(arr < 0) | (arr >= self.num_speakers)]
        if bad.size:
            raise ValueError(
                f"speaker ids must be in 0..{self.num_speakers - 1}, "
                f"got {sorted(set(bad.tolist()))}"
            )
        return arr.astype(np.int64)

    def _validate(self) -> None:
        for name, low in (("sample_rate", 4000), ("n_mels", 4), ("n_frames", 4)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        lo, hi = self.snr_db
        if not lo <= hi:
            raise ValueError(f"snr_db must be (low, high) with low <= high, got {self.snr_db!r}")
        if not 0 <= self.pitch_spread < 0.5:
            raise ValueError(f"pitch_spread must be in [0, 0.5), got {self.pitch_spread!r}")

    def _synthesise(self, speaker: np.ndarray, rng: np.random.Generator) -> SpeakerBatch:
        self._validate()
        traits = self._traits()
        n = speaker.size
        sr = self.sample_rate
        win, hop = int(round(0.025 * sr)), int(round(0.010 * sr))
        n_fft = 1 << (win - 1).bit_length()
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
        mel = _mel_filterbank(self.n_mels, n_fft, sr, fmin=60.0)
        window = np.hanning(win)
        length = win + (self.n_frames - 1) * hop
        feats, f0_mean, snrs = [], [], []
        for start in range(0, n, _CHUNK):  # chunks bound the memory of the frame arrays
            who = speaker[start : start + _CHUNK]
            m = who.size
            # Pitch contour: the speaker's pitch, an utterance-level shift, a slow glide, jitter.
            t = np.arange(length) / sr
            base = traits["f0"][who] * (1.0 + self.pitch_spread * rng.standard_normal(m))
            glide = rng.normal(0.0, 0.15, m)[:, None] * (t / t[-1] - 0.5)[None]
            jitter = 0.01 * rng.standard_normal((m, length))
            f0 = base[:, None] * (1.0 + glide + jitter)
            # Glottal pulse train: one unit impulse each time the accumulated phase wraps.
            phase = np.cumsum(f0 / sr, axis=1) + rng.random((m, 1))
            source = np.diff(np.floor(phase), axis=1, prepend=np.floor(phase[:, :1]))
            frames = (_frames(source, win, hop) * window).astype(np.float32)  # [m, F, win]
            spec = np.fft.rfft(frames, n=n_fft, axis=-1)  # [m, F, B]

            envelope = self._envelope(who, traits, freqs, rng)  # [m, F, B]
            voiced = spec * envelope
            power = np.mean(np.abs(voiced) ** 2, axis=(1, 2))
            # Breath noise follows the vocal-tract envelope, background noise is white; both are
            # independent complex Gaussians per bin, so one draw with the summed variance is exact.
            breath = traits["breath"][who][:, None, None] * envelope * np.sqrt(power)[:, None, None]
            snr = rng.uniform(*self.snr_db, m)
            background = np.sqrt(power / 10.0 ** (snr / 10.0))[:, None, None]
            scale = np.sqrt(breath**2 + background**2)
            total = voiced + scale * _complex_noise(rng, spec.shape)
            mel_power = np.abs(total) ** 2 @ mel.T  # [m, F, n_mels]
            db = 10.0 * np.log10(mel_power + 1e-12)
            db -= db.max(axis=(1, 2), keepdims=True)
            # Log-mel scaled to [0, 1]: the utterance's peak is 1, 80 dB below it (or less) is 0.
            feats.append(np.clip(1.0 + db / 80.0, 0.0, 1.0).transpose(0, 2, 1)[:, None])
            f0_mean.append(f0.mean(axis=1))
            snrs.append(snr)
        return SpeakerBatch(
            features=torch.from_numpy(np.concatenate(feats).astype(np.float32)),
            speaker=torch.from_numpy(speaker.astype(np.int64)),
            gender=self.speaker_gender[torch.from_numpy(speaker)],
            f0=torch.from_numpy(np.concatenate(f0_mean).astype(np.float32)),
            snr_db=torch.from_numpy(np.concatenate(snrs).astype(np.float32)),
        )

    def _envelope(
        self,
        who: np.ndarray,
        traits: dict[str, np.ndarray],
        freqs: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Magnitude response of source roll-off, radiation and formants for every frame."""
        m, frames = who.size, self.n_frames
        vowels = rng.integers(0, len(_VOWELS), (m, _SEGMENTS))
        targets = _VOWELS[vowels] * traits["vowel_offset"][who[:, None], vowels]  # [m, S, 3]
        targets = targets * traits["tract"][who][:, None, None]
        # Coarticulation: formants glide linearly between the vowel targets, at the speaker's rate.
        pos = np.linspace(0.0, _SEGMENTS - 1, frames)[None, :] * traits["rate"][who][:, None]
        pos = np.clip(pos + rng.uniform(-0.3, 0.3, (m, 1)), 0.0, _SEGMENTS - 1)
        lo = np.floor(pos).astype(np.int64).clip(0, _SEGMENTS - 2)
        frac = (pos - lo)[..., None]
        left = np.take_along_axis(targets, lo[..., None], axis=1)
        right = np.take_along_axis(targets, lo[..., None] + 1, axis=1)
        formants = ((1.0 - frac) * left + frac * right).astype(np.float32)  # [m, F, 3]
        bw = (_BANDWIDTH * traits["bandwidth"][who]).astype(np.float32)  # [m, 3]
        freqs = freqs.astype(np.float32)
        f = freqs[None, None, None, :]
        fc = formants[..., None]
        b = bw[:, None, :, None]
        # Two-pole resonator magnitude, unit gain at DC.
        resonance = fc**2 / np.sqrt((fc**2 - f**2) ** 2 + (b * f) ** 2)
        rolloff = traits["rolloff"][who].astype(np.float32)
        # Glottal pulse (-12 dB/octave above the corner) times lip radiation (+6 dB/octave).
        glottal = 1.0 / np.sqrt(1.0 + (freqs[None, :] / rolloff[:, None]) ** 2)
        return resonance.prod(axis=2) * glottal[:, None, :]


def _frames(signal: np.ndarray, win: int, hop: int) -> np.ndarray:
    count = 1 + (signal.shape[1] - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(count)[:, None]
    return signal[:, idx]


def _complex_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    pair = rng.standard_normal((*shape, 2), dtype=np.float32) * np.float32(np.sqrt(0.5))
    return pair.view(np.complex64)[..., 0]


def _mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float) -> np.ndarray:
    """Triangular filters equally spaced on the HTK mel scale, ``[n_mels, n_fft // 2 + 1]``."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(np.array(fmin)), to_mel(np.array(sr / 2.0)), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None] - lower) / (centre - lower)
    fall = (upper - freqs[None]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rise, fall))
    # Narrow low bands can fall between FFT bins; give each band at least its nearest bin.
    empty = bank.sum(axis=1) == 0
    bank[empty, np.abs(freqs[None] - centre[empty]).argmin(axis=1)] = 1.0
    return bank / bank.sum(axis=1, keepdims=True)


def simulate_speakers(n: int, seed: int = 0, **kwargs: Any) -> SpeakerBatch:
    """Shortcut for ``SpeakerSimulator(**kwargs).generate(n, seed)``.

    Examples
    --------
    >>> simulate_speakers(3, seed=0, num_speakers=4).features.shape
    torch.Size([3, 1, 32, 32])
    """
    return SpeakerSimulator(**kwargs).generate(n, seed=seed)

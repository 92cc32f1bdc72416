"""Tests of the speaker-feature simulator (hierclass.data.speaker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from hierclass.data.speaker import GENDER_NAMES, SpeakerBatch, SpeakerSimulator, simulate_speakers

SIM = SpeakerSimulator(num_speakers=6)


@pytest.fixture(scope="module")
def batch() -> SpeakerBatch:
    return SIM.generate(600, seed=0)


def test_fields_have_documented_shapes_dtypes_and_ranges(batch: SpeakerBatch) -> None:
    n = len(batch)
    assert batch.features.shape == (n, 1, 32, 32) and batch.features.dtype == torch.float32
    assert batch.features.min() >= 0 and batch.features.max() <= 1
    # Each utterance is scaled so that its peak is exactly 1.
    assert torch.allclose(batch.features.amax(dim=(1, 2, 3)), torch.ones(n))
    assert batch.speaker.dtype == torch.int64 and set(batch.speaker.tolist()) == set(range(6))
    assert torch.equal(batch.gender, SIM.speaker_gender[batch.speaker])
    assert torch.equal(batch.label, batch.speaker) and batch.inputs is batch.features
    assert ((batch.snr_db >= 20) & (batch.snr_db <= 40)).all()


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    a, b, c = SIM.generate(20, seed=5), SIM.generate(20, seed=5), SIM.generate(20, seed=6)
    assert torch.equal(a.features, b.features) and torch.equal(a.speaker, b.speaker)
    assert not torch.equal(a.features, c.features)


def test_speakers_are_fixed_by_speaker_seed_not_by_the_utterance_seed() -> None:
    other = SpeakerSimulator(num_speakers=6, speaker_seed=1)
    a = SIM.render([0] * 30, seed=1)
    b = other.render([0] * 30, seed=1)
    assert not torch.allclose(a.f0.mean(), b.f0.mean())
    # Same speakers, different utterances: mean pitch agrees within sampling error.
    c = SIM.render([0] * 30, seed=2)
    se = float(torch.cat([a.f0, c.f0]).std()) * (2 / 30) ** 0.5
    assert abs(float(a.f0.mean() - c.f0.mean())) < 5 * se


def test_gender_shifts_pitch(batch: SpeakerBatch) -> None:
    female = batch.f0[batch.gender == 0]
    male = batch.f0[batch.gender == 1]
    assert female.mean() > 1.4 * male.mean()
    assert female.min() > 120 and male.max() < 200


def test_gender_shifts_formants_upwards() -> None:
    # Speaker 1 drawn twice from the same traits and utterance seed, once male and once female:
    # only pitch and vocal-tract length change. Above the pitch region (mel band >= 10), the
    # female long-term spectrum must match the male one shifted *up*, not down or unshifted.
    male = SpeakerSimulator(num_speakers=4, num_female=1).render([1] * 100, seed=0)
    female = SpeakerSimulator(num_speakers=4, num_female=3).render([1] * 100, seed=0)
    assert male.gender[0] == 1 and female.gender[0] == 0
    m = male.features[:, 0].mean(dim=(0, 2))
    f = female.features[:, 0].mean(dim=(0, 2))

    def fit(shift: int) -> float:
        return float(torch.corrcoef(torch.stack([f[10 + shift : 28 + shift], m[10:28]]))[0, 1])

    assert max(fit(1), fit(2)) > max(fit(0), fit(-1), fit(-2))


def _nearest_mean_accuracy(train: SpeakerBatch, test: SpeakerBatch, key: str, k: int) -> float:
    x_train, x_test = train.features.flatten(1), test.features.flatten(1)
    y_train, y_test = getattr(train, key), getattr(test, key)
    means = torch.stack([x_train[y_train == c].mean(0) for c in range(k)])
    return (torch.cdist(x_test, means).argmin(1) == y_test).float().mean().item()


def test_gender_and_speaker_are_learnable(batch: SpeakerBatch) -> None:
    test = SIM.generate(300, seed=1)
    gender_acc = _nearest_mean_accuracy(batch, test, "gender", 2)
    speaker_acc = _nearest_mean_accuracy(batch, test, "speaker", 6)
    # Chance levels are 1/2 and 1/6; require rejection of chance at the 1e-6 level and a
    # gender signal strong enough for a robust root.
    assert binomtest(round(gender_acc * 300), 300, 0.5, alternative="greater").pvalue < 1e-6
    assert binomtest(round(speaker_acc * 300), 300, 1 / 6, alternative="greater").pvalue < 1e-6
    assert gender_acc > 0.85


def test_gender_partition_and_num_female() -> None:
    p = SpeakerSimulator(num_speakers=5, num_female=2).gender_partition()
    assert p.names == GENDER_NAMES
    assert p.classes == ((0, 1), (2, 3, 4))


def test_render_order_and_indexing() -> None:
    b = SIM.render(np.array([5, 0, 3]), seed=0)
    assert b.speaker.tolist() == [5, 0, 3] and b.gender.tolist() == [1, 0, 1]
    assert torch.equal(b[1:].features, b.features[1:])
    assert torch.equal(b[np.array([2])].speaker, torch.tensor([3]))
    assert b.to("cpu").speaker.device.type == "cpu"
    with pytest.raises(TypeError, match="slice"):
        b[0]


def test_other_feature_sizes() -> None:
    b = SpeakerSimulator(num_speakers=2, n_mels=20, n_frames=12, sample_rate=4000).generate(3)
    assert b.features.shape == (3, 1, 20, 12)


def test_shortcut_matches_the_class() -> None:
    a = simulate_speakers(4, seed=1, num_speakers=4)
    assert torch.equal(a.features, SpeakerSimulator(num_speakers=4).generate(4, seed=1).features)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_speakers": 1}, "num_speakers"),
        ({"num_speakers": 4, "num_female": 4}, "num_female"),
        ({"num_speakers": 4, "num_female": 0}, "num_female"),
        ({"sample_rate": 2000}, "sample_rate"),
        ({"n_mels": 2}, "n_mels"),
        ({"snr_db": (30.0, 10.0)}, "snr_db"),
        ({"pitch_spread": 0.7}, "pitch_spread"),
    ],
)
def test_invalid_parameters_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpeakerSimulator(**kwargs).generate(2)


def test_invalid_requests_raise() -> None:
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        SIM.generate(-1)
    with pytest.raises(ValueError, match="0..5"):
        SIM.render([6])
    with pytest.raises(TypeError, match="int speaker ids"):
        SIM.render([[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        SIM.generate(3, speakers=[])

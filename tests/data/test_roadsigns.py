"""Tests of the road-sign + LiDAR simulator (hierclass.data.roadsigns)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from hierclass.data.gtsrb import GTSRB_SHAPE_IDS, SHAPES, gtsrb_shape_partition
from hierclass.data.roadsigns import (
    LOCATION_NAMES,
    SPEED_LIMIT_LABELS,
    RoadSignBatch,
    RoadSignSimulator,
    simulate_road_signs,
    speed_limit_partition,
    speed_limit_rule,
)

SIM = RoadSignSimulator(image_size=16, num_points=64)


@pytest.fixture(scope="module")
def batch() -> RoadSignBatch:
    return SIM.generate(1200, seed=0)


def test_fields_have_documented_shapes_dtypes_and_ranges(batch: RoadSignBatch) -> None:
    n = len(batch)
    assert batch.image.shape == (n, 3, 16, 16) and batch.image.dtype == torch.float32
    assert batch.lidar.shape == (n, 64, 3) and batch.lidar.dtype == torch.float32
    for name in ("location", "label", "shape_id", "num_returns"):
        assert getattr(batch, name).shape == (n,) and getattr(batch, name).dtype == torch.int64
    assert batch.image.min() >= 0 and batch.image.max() <= 1
    assert set(batch.label.unique().tolist()) == set(range(43))
    assert batch.location.max() < len(LOCATION_NAMES)
    assert ((batch.distance >= 5) & (batch.distance <= 20)).all()
    assert batch.view_angle.abs().max() <= 50
    assert (batch.num_returns >= 3).all()
    # Clouds are centred on their own mean.
    assert batch.lidar.mean(dim=1).abs().max() < 1e-4


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    a, b, c = SIM.generate(50, seed=7), SIM.generate(50, seed=7), SIM.generate(50, seed=8)
    for name in ("image", "lidar", "label", "distance"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.image, c.image)
    assert not torch.equal(a.lidar, c.lidar)


def test_shape_id_follows_the_gtsrb_table(batch: RoadSignBatch) -> None:
    expected = torch.tensor(GTSRB_SHAPE_IDS)[batch.label]
    assert torch.equal(batch.shape_id, expected)


def test_point_cloud_depends_on_shape_only_never_on_the_pictogram() -> None:
    # With the same seed, the random draws are the same; two labels of the same shape must
    # give identical clouds (the LiDAR cannot see the pictogram) but different images.
    speed_30 = SIM.render([1] * 40, seed=3)
    no_entry = SIM.render([17] * 40, seed=3)  # also a circle
    stop = SIM.render([14] * 40, seed=3)  # an octagon
    assert torch.equal(speed_30.lidar, no_entry.lidar)
    assert not torch.equal(speed_30.image, no_entry.image)
    assert not torch.equal(speed_30.lidar, stop.lidar)


def test_point_cloud_has_the_plate_geometry(batch: RoadSignBatch) -> None:
    # Triangles pointing up have their long tail upwards (positive vertical skewness),
    # inverted triangles downwards; discs are symmetric. Tolerance: 5 standard errors.
    y = batch.lidar[..., 1].double()
    skew = (y**3).mean(dim=1) / (y**2).mean(dim=1) ** 1.5
    by_shape = {}
    for k, name in enumerate(SHAPES):
        s = skew[batch.shape_id == k]
        by_shape[name] = (s.mean().item(), s.std().item() / max(len(s), 2) ** 0.5)
    mean, se = by_shape["triangle"]
    assert mean > 0.3 and mean - 5 * se > 0
    mean, se = by_shape["inverted_triangle"]
    assert mean < -0.3 and mean + 5 * se < 0
    mean, se = by_shape["circle"]
    assert abs(mean) < 5 * se + 0.05
    # Every point lies within the largest plate (triangle circumradius 0.52 m * 1.1), plus
    # a margin for the centring offset and range noise.
    assert batch.lidar[..., :2].norm(dim=-1).max() < 0.52 * 1.1 * 2


def test_farther_signs_get_fewer_returns(batch: RoadSignBatch) -> None:
    circles = batch.shape_id == 0
    near = batch.num_returns[circles & (batch.distance < 8)].float().mean()
    far = batch.num_returns[circles & (batch.distance > 16)].float().mean()
    # Returns scale like 1/distance^2: (8/16)^2 -> at least a factor 2 with slack.
    assert near > 2 * far


def test_images_carry_the_label_and_the_shape() -> None:
    # A nearest-class-mean classifier on raw pixels must beat chance (1/43) by far; if the
    # pictograms or colours were lost, it would not.
    train, test = SIM.generate(1500, seed=1), SIM.generate(400, seed=2)
    flat_train, flat_test = train.image.flatten(1), test.image.flatten(1)
    means = torch.stack([flat_train[train.label == c].mean(0) for c in range(43)])
    acc = (torch.cdist(flat_test, means).argmin(1) == test.label).float().mean().item()
    # Chance is 1/43; a binomial test at the 1e-6 level rejects chance comfortably.
    assert binomtest(round(acc * 400), 400, 1 / 43, alternative="greater").pvalue < 1e-6
    assert acc > 0.15


def test_location_marks_speed_limits_exactly_without_map_error(batch: RoadSignBatch) -> None:
    expected = torch.isin(batch.label, torch.tensor(SPEED_LIMIT_LABELS)).long()
    assert torch.equal(batch.location, expected)


def test_map_error_flips_location_at_the_requested_rate() -> None:
    noisy = RoadSignSimulator(image_size=8, num_points=8, map_error=0.2).generate(2000, seed=4)
    truth = torch.isin(noisy.label, torch.tensor(SPEED_LIMIT_LABELS)).long()
    flips = int((noisy.location != truth).sum())
    ci = binomtest(flips, 2000).proportion_ci(confidence_level=0.999)
    assert ci.low <= 0.2 <= ci.high


def test_labels_and_weights_restrict_the_draw() -> None:
    b = SIM.generate(300, seed=0, labels=[14, 13], class_weights=[3, 1])
    assert set(b.label.tolist()) == {13, 14}
    k = int((b.label == 14).sum())
    ci = binomtest(k, 300).proportion_ci(confidence_level=0.999)
    assert ci.low <= 0.75 <= ci.high


def test_render_keeps_order() -> None:
    b = SIM.render(torch.tensor([14, 0, 12]), seed=0)
    assert b.label.tolist() == [14, 0, 12]
    assert b.shape_id.tolist() == [3, 0, 4]


def test_batch_indexing_inputs_and_device() -> None:
    b = SIM.generate(10, seed=0)
    sub = b[b.label >= 0][2:5]
    assert len(sub) == 3 and torch.equal(sub.image, b.image[2:5])
    assert torch.equal(b[np.array([1, 3])].lidar, b.lidar[[1, 3]])
    assert set(b.inputs) == {"image", "lidar", "location"}
    assert b.to("cpu").image.device.type == "cpu"
    with pytest.raises(TypeError, match="slice"):
        b[0]


def test_speed_limit_partition_and_rule_agree_with_the_location_code(batch) -> None:
    p = speed_limit_partition()
    assert p.names == ("speed_limit", "other_circle")
    assert p.labels == gtsrb_shape_partition().labels_of("circle")
    assert p.labels_of("speed_limit") == SPEED_LIMIT_LABELS
    circles = batch[batch.shape_id == 0]
    routed = speed_limit_rule(circles.location)
    assert torch.equal(routed, p.class_of(circles.label))
    with pytest.raises(ValueError, match="location codes"):
        speed_limit_rule(torch.tensor([2]))
    with pytest.raises(TypeError, match="integer tensor"):
        speed_limit_rule(torch.tensor([1.0]))


def test_shortcut_matches_the_class() -> None:
    a = simulate_road_signs(5, seed=2, image_size=8, num_points=8)
    b = RoadSignSimulator(image_size=8, num_points=8).generate(5, seed=2)
    assert torch.equal(a.image, b.image)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 4}, "image_size"),
        ({"num_points": 2.5}, "num_points"),
        ({"dropout": 1.0}, "dropout"),
        ({"map_error": -0.1}, "map_error"),
        ({"pixel_noise": -1.0}, "pixel_noise"),
        ({"max_view_angle": 85.0}, "max_view_angle"),
        ({"lighting": (0.0, 1.0)}, "lighting"),
        ({"distance_range": (10.0, 5.0)}, "distance_range"),
        ({"beam_spacing_deg": (0.4, 0.0)}, "beam_spacing_deg"),
    ],
)
def test_invalid_parameters_raise_at_generate(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RoadSignSimulator(**kwargs).generate(2)


def test_invalid_requests_raise() -> None:
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        SIM.generate(0)
    with pytest.raises(ValueError, match="0..42"):
        SIM.generate(3, labels=[0, 43])
    with pytest.raises(TypeError, match="int class ids"):
        SIM.render([0.5, 1.0])
    with pytest.raises(ValueError, match="empty"):
        SIM.render([])
    with pytest.raises(ValueError, match="class_weights"):
        SIM.generate(3, labels=[0, 1], class_weights=[1.0])


def test_sparse_scans_fail_loudly_instead_of_inventing_points() -> None:
    sim = RoadSignSimulator(
        image_size=8, num_points=8, distance_range=(200.0, 200.0), beam_spacing_deg=(2.0, 2.0)
    )
    with pytest.raises(RuntimeError, match="fewer than 3 LiDAR returns"):
        sim.generate(20, seed=0)

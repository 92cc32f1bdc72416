"""The input contract: finite values inside the model's input range (hierclass.inputs)."""

import math

import pytest
import torch

from hierclass.inputs import (
    check_input_range,
    check_inputs,
    check_logits,
    is_image_shaped,
    range_for,
)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_inputs_are_errors_naming_the_samples(bad):
    x = torch.rand(4, 1, 3, 3)
    x[2, 0, 1, 1] = bad
    with pytest.raises(ValueError, match=r"must be finite.*samples \[2\]"):
        check_inputs(x)


def test_non_finite_in_unranged_modality_is_an_error():
    x = {"lidar": torch.zeros(3, 16, 3), "image": torch.rand(3, 1, 4, 4)}
    x["lidar"][0, 0, 0] = math.inf
    with pytest.raises(ValueError, match="modality 'lidar' must be finite"):
        check_inputs(x)


def test_images_default_to_unit_range_and_error_names_range_and_values():
    with pytest.raises(ValueError, match=r"\[0, 1\].*image-shaped.*got values in \[0, 255\]"):
        check_inputs(torch.tensor([0.0, 255.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2))
    check_inputs(torch.rand(2, 3, 4, 4))  # inside: fine


def test_normalised_images_are_refused_not_clamped():
    x = (torch.rand(2, 1, 4, 4) - 0.1307) / 0.3081
    before = x.clone()
    with pytest.raises(ValueError, match="must lie in"):
        check_inputs(x)
    assert torch.equal(x, before)


def test_declared_range_replaces_the_default_and_applies_to_other_shapes():
    check_inputs(255 * torch.ones(2, 1, 4, 4), input_range=(0, 255))
    declared = r"\[-50, 50\] \(the declared input_range\), got values in \[60, 60\]"
    with pytest.raises(ValueError, match=declared):
        check_inputs({"lidar": torch.full((2, 8, 3), 60.0)}, input_range={"lidar": (-50, 50)})
    # a modality mapped to None has no range at all
    check_inputs({"img": 3 * torch.ones(2, 1, 4, 4)}, input_range={"img": None})


def test_non_image_inputs_have_no_default_range():
    check_inputs(100 * torch.ones(3, 16, 3))
    check_inputs(-5 * torch.ones(4, 10))


def test_unbatched_samples():
    assert is_image_shaped(torch.zeros(1, 8, 8), batched=False)
    assert not is_image_shaped(torch.zeros(1, 8, 8), batched=True)
    with pytest.raises(ValueError, match="must lie in") as err:
        check_inputs(2 * torch.ones(1, 8, 8), batched=False)
    assert "samples" not in str(err.value)


def test_range_for_resolution_order():
    t = torch.zeros(2, 1, 4, 4)
    assert range_for(None, t, None) == (0.0, 1.0)
    assert range_for("a", t, {"b": (0, 2)}) == (0.0, 1.0)
    assert range_for("b", t, {"b": (0, 2)}) == (0, 2)
    assert range_for("x", torch.zeros(2, 5), None) is None


@pytest.mark.parametrize("bad", [(1, 0), (0, math.inf), (0,), "ab", {"k": (2, 2)}, (0, math.nan)])
def test_bad_declared_ranges_are_refused(bad):
    with pytest.raises(ValueError, match="input_range"):
        check_input_range(bad)


def test_integer_and_empty_tensors_are_not_range_checked():
    check_inputs({"ids": torch.tensor([[5, 900]]), "img": torch.rand(1, 1, 2, 2)})
    check_inputs(torch.zeros(0, 1, 4, 4))


def test_non_finite_logits():
    out = torch.zeros(3, 2)
    assert check_logits(out) is out
    out[1, 0] = math.nan
    with pytest.raises(ValueError, match="1 of 3 rows"):
        check_logits(out)


def test_error_never_rounds_a_value_back_inside_the_range():
    x = torch.full((1, 1, 2, 2), 0.5)
    x[0, 0, 0, 0] = 1.0001
    with pytest.raises(ValueError, match=r"got values in \[0.5, 1.0001\]"):
        check_inputs(x)

"""Shapes, the layer_one/rest split, parameter counts and the build/spec round trip."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hierclass.models import (
    CifarResNet,
    Normalize,
    PointNet,
    PreActResNet18,
    SmallCNN,
    available_models,
    build,
    build_from_spec,
    model_spec,
    register_model,
    resnet20,
    resnet110,
)

# (factory, input shape) for every model family; small widths where the class allows it.
CASES = {
    "small_cnn_mnist": (lambda: SmallCNN(10), (3, 1, 28, 28)),
    "small_cnn_digits_rgb": (lambda: SmallCNN(4, in_channels=3, image_size=8), (3, 3, 8, 8)),
    "resnet20": (lambda: resnet20(10), (3, 3, 32, 32)),
    "resnet110": (lambda: resnet110(7), (2, 3, 32, 32)),
    "preact_resnet18": (lambda: PreActResNet18(5), (2, 3, 32, 32)),
    "pointnet": (lambda: PointNet(4, point_dims=(16, 32), head_dims=(16,)), (3, 40, 3)),
    "pointnet_default": (lambda: PointNet(5), (2, 64, 3)),
    "small_cnn_norm": (
        lambda: SmallCNN(3, image_size=8, mean=[0.5], std=[0.25]),
        (3, 1, 8, 8),
    ),
    "resnet20_norm": (
        lambda: resnet20(3, mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26]),
        (2, 3, 32, 32),
    ),
    "pointnet_norm": (
        lambda: PointNet(2, point_dims=(8,), head_dims=(), mean=[0.1, 0.2, 0.3], std=[1, 2, 3]),
        (2, 10, 3),
    ),
}


def _num_classes(model: nn.Module) -> int:
    return model.num_classes


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shape_and_split_identity(case: str) -> None:
    factory, shape = CASES[case]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.rand(shape)
    with torch.no_grad():
        out = model(x)
        split = model.rest(model.layer_one(x))
    assert out.shape == (shape[0], _num_classes(model))
    assert isinstance(model.layer_one, nn.Module) and isinstance(model.rest, nn.Module)
    torch.testing.assert_close(out, split, rtol=0, atol=0)
    assert model.embed(x).shape[0] == shape[0]


@pytest.mark.parametrize("case", ["small_cnn_norm", "resnet20_norm", "pointnet_norm"])
def test_normalisation_lives_in_layer_one(case: str) -> None:
    factory, shape = CASES[case]
    torch.manual_seed(0)
    model = factory().eval()
    norms = [m for m in model.layer_one.modules() if isinstance(m, Normalize)]
    assert len(norms) == 1
    # The same weights without normalisation, fed the normalised input, give the same logits.
    spec = model_spec(model)
    spec["kwargs"].update(mean=None, std=None)
    plain = build_from_spec(spec).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".norm." not in k})
    x = torch.rand(shape)
    norm = norms[0]
    xn = norm(x.transpose(1, 2)).transpose(1, 2) if x.dim() == 3 else norm(x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(xn), rtol=1e-5, atol=1e-5)


def test_normalize_values() -> None:
    norm = Normalize([0.0, 1.0], [1.0, 0.5])
    x = torch.tensor([[[0.5], [0.5]]])  # [1, 2, 1]
    torch.testing.assert_close(norm(x), torch.tensor([[[0.5], [-1.0]]]))


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_published_sizes() -> None:
    # He et al. (2016), Table 6: ResNet-20 has 0.27M and ResNet-110 1.7M parameters (option-A
    # shortcuts, 10 classes). The exact counts are those of the standard reference code.
    n20, n110 = _count(resnet20(10)), _count(resnet110(10))
    assert n20 == 269_722
    assert n110 == 1_727_962
    assert round(n20 / 1e6, 2) == 0.27 and round(n110 / 1e6, 1) == 1.7
    # PreAct-ResNet-18 for CIFAR-10: 11,171,146 in the common CIFAR code without the final
    # BatchNorm, plus 2 * 512 for the final BN + ReLU kept by the fast-adversarial-training
    # variant implemented here.
    assert _count(PreActResNet18(10)) == 11_171_146 + 2 * 512


def test_resnet_depth_counts_layers() -> None:
    model = CifarResNet(32, num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 32


def test_pointnet_is_permutation_invariant_and_per_sample() -> None:
    torch.manual_seed(0)
    model = PointNet(3, point_dims=(8, 16), head_dims=(8,)).eval()
    x = torch.randn(4, 30, 3)
    with torch.no_grad():
        out = model(x)
        perm = model(x[:, torch.randperm(30)])
        alone = model(x[1:2])
    torch.testing.assert_close(out, perm, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[1:2], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_spec_round_trip_rebuilds_identical_model(case: str) -> None:
    factory, shape = CASES[case]
    model = factory().eval()
    spec = model_spec(model)
    assert json.loads(json.dumps(spec)) == spec
    assert spec["name"] in available_models()
    rebuilt = build_from_spec(json.loads(json.dumps(spec))).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(shape)
    with torch.no_grad():
        torch.testing.assert_close(model(x), rebuilt(x), rtol=0, atol=0)
    assert model_spec(rebuilt) == spec


def test_build_by_name_and_spec_keeps_defaults() -> None:
    model = build("small_cnn", num_classes=3, image_size=8)
    assert isinstance(model, SmallCNN)
    kwargs = model_spec(model)["kwargs"]
    assert kwargs["in_channels"] == 1 and kwargs["channels"] == [32, 64, 64]
    assert model_spec(build("resnet110", num_classes=2))["name"] == "resnet110"
    assert model_spec(CifarResNet(20, 3))["kwargs"]["depth"] == 20


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid names: .*'pointnet'.*'resnet20'"):
        build("resnet21", num_classes=10)


def test_model_spec_of_foreign_model_is_type_error() -> None:
    with pytest.raises(TypeError, match="carries no model spec"):
        model_spec(nn.Linear(2, 2))


def test_register_custom_model() -> None:
    register_model("test_mlp", lambda d, k: nn.Sequential(nn.Linear(d, k)), overwrite=True)
    spec = model_spec(build("test_mlp", d=3, k=2))
    assert spec == {"name": "test_mlp", "kwargs": {"d": 3, "k": 2}}
    with pytest.raises(ValueError, match="already registered"):
        register_model("test_mlp", lambda: nn.Identity())
    register_model("test_bad", lambda obj: nn.Identity(), overwrite=True)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        build("test_bad", obj=object())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SmallCNN(0), "num_classes must be an int >= 1"),
        (lambda: SmallCNN(True), "num_classes must be an int >= 1"),
        (lambda: SmallCNN(10, image_size=3), "image_size must be an int >= 4"),
        (lambda: SmallCNN(10, channels=(8, 8)), "channels must be three"),
        (lambda: SmallCNN(10, mean=[0.5]), "both mean and std"),
        (lambda: SmallCNN(10, mean=[0.5, 0.5], std=[1, 1]), "one value per input channel"),
        (lambda: SmallCNN(10, mean=[0.5], std=[0.0]), "std must be positive"),
        (lambda: CifarResNet(21), "depth must be 6n \\+ 2"),
        (lambda: PointNet(3, in_dim=0), "in_dim must be an int >= 1"),
        (lambda: PointNet(3, dropout=1.0), "dropout must be in"),
        (lambda: build_from_spec({"name": "resnet20"}), "keys 'name' and 'kwargs'"),
    ],
)
def test_constructor_validation(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_forward_validates_input_shape() -> None:
    with pytest.raises(
        ValueError, match=r"expects input of shape \[B, 1, 8, 8\], got \[2, 1, 28, 28\]"
    ):
        SmallCNN(10, image_size=8)(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"point clouds of shape \[B, N, 3\]"):
        PointNet(2)(torch.rand(2, 3, 10, 1))

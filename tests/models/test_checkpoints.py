"""Checkpoints of the smoothing literature, written in their exact on-disk layouts.

The reference here is independent of hierclass's modules: :func:`reference_state` lays out
the parameters under the original repositories' names (``conv1``, ``layer1.0.downsample.0``,
``fc``, ...) and :func:`reference_forward` computes the network functionally from those
names. A checkpoint that loads under other names, or a module whose forward differs from
the original's, fails these tests.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hierclass.models import (
    NORMALIZATIONS,
    load_checkpoint,
    model_spec,
    read_checkpoint,
    smoothing_arch,
)
from hierclass.models.registry import build_from_spec

CIFAR_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
CIFAR_STD = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)


def _bn(state, name, gen, c):
    state[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=gen)
    state[f"{name}.bias"] = 0.1 * torch.randn(c, generator=gen)
    state[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=gen)
    state[f"{name}.running_var"] = 1 + 0.1 * torch.rand(c, generator=gen)
    state[f"{name}.num_batches_tracked"] = torch.tensor(7)


def _conv(state, name, gen, cout, cin, k):
    state[f"{name}.weight"] = (
        torch.randn(cout, cin, k, k, generator=gen) * (2 / (cin * k * k)) ** 0.5
    )


def reference_state(depth: int, classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the names of locuslab/smoothing's ``archs/cifar_resnet.py``."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    _conv(state, "conv1", gen, 16, 3, 3)
    _bn(state, "bn1", gen, 16)
    n, cin = (depth - 2) // 6, 16
    for stage, planes in enumerate((16, 32, 64), start=1):
        for b in range(n):
            name = f"layer{stage}.{b}"
            _conv(state, f"{name}.conv1", gen, planes, cin, 3)
            _bn(state, f"{name}.bn1", gen, planes)
            _conv(state, f"{name}.conv2", gen, planes, planes, 3)
            _bn(state, f"{name}.bn2", gen, planes)
            if b == 0 and cin != planes:
                _conv(state, f"{name}.downsample.0", gen, planes, cin, 1)
                _bn(state, f"{name}.downsample.1", gen, planes)
            cin = planes
    state["fc.weight"] = 0.1 * torch.randn(classes, 64, generator=gen)
    state["fc.bias"] = 0.1 * torch.randn(classes, generator=gen)
    return state


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The original CIFAR ResNet's forward, computed from the state dict's names alone."""

    def bn(name, t):
        return F.batch_norm(
            t, state[f"{name}.running_mean"], state[f"{name}.running_var"],
            state[f"{name}.weight"], state[f"{name}.bias"], training=False, eps=1e-5,
        )  # fmt: skip

    out = F.relu(bn("bn1", F.conv2d(x, state["conv1.weight"], padding=1)))
    for stage in (1, 2, 3):
        b = 0
        while f"layer{stage}.{b}.conv1.weight" in state:
            name = f"layer{stage}.{b}"
            stride = 2 if b == 0 and stage > 1 else 1
            y = F.relu(
                bn(
                    f"{name}.bn1",
                    F.conv2d(out, state[f"{name}.conv1.weight"], stride=stride, padding=1),
                )
            )
            y = bn(f"{name}.bn2", F.conv2d(y, state[f"{name}.conv2.weight"], padding=1))
            if f"{name}.downsample.0.weight" in state:
                out = bn(
                    f"{name}.downsample.1",
                    F.conv2d(out, state[f"{name}.downsample.0.weight"], stride=stride),
                )
            out = F.relu(y + out)
            b += 1
    out = F.avg_pool2d(out, 8).flatten(1)
    return F.linear(out, state["fc.weight"], state["fc.bias"])


def prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items()}


def cohen_checkpoint(path, arch, state, prefix="1."):
    """What Cohen et al.'s ``train.py`` writes: arch, epoch, the wrapped model and SGD state."""
    params = [
        v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "tracked"))
    ]
    optimizer = torch.optim.SGD([p.clone().requires_grad_() for p in params], lr=0.1, momentum=0.9)
    torch.save(
        {"epoch": 90, "arch": arch, "state_dict": prefixed(state, prefix),
         "optimizer": optimizer.state_dict()},
        path,
    )  # fmt: skip
    return path


X = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))


def test_cohen_cifar_resnet20_logits_match_the_original_layout(tmp_path):
    state = reference_state(20, 10)
    assert len(state) == 128  # the count for this layout (hierclass's resnet20: 116)
    ckpt = read_checkpoint(
        cohen_checkpoint(tmp_path / "checkpoint.pth.tar", "cifar_resnet20", state)
    )
    assert (ckpt.format, ckpt.arch, ckpt.num_classes, ckpt.epoch) == (
        "cohen",
        "cifar_resnet20",
        10,
        90,
    )
    assert ckpt.normalization == "cifar10" and not ckpt.model.training
    expected = reference_forward(state, (X - CIFAR_MEAN) / CIFAR_STD)
    torch.testing.assert_close(ckpt.model(X), expected, rtol=1e-4, atol=1e-4)


def test_both_loading_paths_give_the_same_logits(tmp_path):
    state = reference_state(20, 7, seed=1)
    path = cohen_checkpoint(tmp_path / "c.pth.tar", "cifar_resnet20", state)
    by_file = load_checkpoint(path)
    manual = smoothing_arch("cifar_resnet20", num_classes=7).eval()
    manual.load_state_dict(torch.load(path, weights_only=True)["state_dict"])  # strict
    assert torch.equal(by_file(X), manual(X))


def test_smoothadv_input_center_variant(tmp_path):
    state = reference_state(20, 10, seed=2)
    path = cohen_checkpoint(tmp_path / "smoothadv.pth.tar", "cifar_resnet20", state)
    model = load_checkpoint(path, normalization="cifar10-center")
    torch.testing.assert_close(
        model(X), reference_forward(state, X - CIFAR_MEAN), rtol=1e-4, atol=1e-4
    )
    assert NORMALIZATIONS["cifar10-center"][1] == (1.0, 1.0, 1.0)


def test_imagenet32_resnet110_uses_cifar_statistics(tmp_path):
    state = reference_state(110, 1000, seed=3)
    path = cohen_checkpoint(tmp_path / "i32.pth.tar", "imagenet32_resnet110", state)
    ckpt = read_checkpoint(path)
    assert (ckpt.num_classes, ckpt.normalization) == (1000, "cifar10")
    expected = reference_forward(state, (X - CIFAR_MEAN) / CIFAR_STD)
    torch.testing.assert_close(ckpt.model(X), expected, rtol=1e-3, atol=1e-3)


def test_macer_checkpoint_without_normalisation(tmp_path):
    state = reference_state(110, 10, seed=4)
    path = tmp_path / "macer.pth"
    torch.save({"net": prefixed(state, "module."), "epoch": 440}, path)  # a DataParallel's keys
    ckpt = read_checkpoint(path)
    assert (ckpt.format, ckpt.arch, ckpt.normalization, ckpt.epoch) == (
        "macer",
        "cifar_resnet110",
        "none",
        440,
    )
    torch.testing.assert_close(ckpt.model(X), reference_forward(state, X), rtol=1e-3, atol=1e-3)


def test_bare_state_dict_needs_the_architecture(tmp_path):
    state = reference_state(20, 10, seed=6)
    path = tmp_path / "bare.pt"
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"bare.pt is a bare state dict that names no architecture"
    ):
        read_checkpoint(path)
    model = load_checkpoint(path, arch="cifar_resnet20", normalization="none")
    torch.testing.assert_close(model(X), reference_forward(state, X), rtol=1e-4, atol=1e-4)


def test_imagenet_resnet50_dataparallel_keys(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    original = resnet50(weights=None).eval()
    path = tmp_path / "imagenet.pth.tar"
    torch.save(
        {
            "arch": "resnet50",
            "epoch": 89,
            "state_dict": prefixed(original.state_dict(), "1.module."),
        },
        path,
    )
    ckpt = read_checkpoint(path)
    assert (ckpt.arch, ckpt.num_classes, ckpt.normalization) == ("resnet50", 1000, "imagenet")
    x = torch.rand(1, 3, 224, 224)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATIONS["imagenet"])
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(x), original((x - mean) / std), rtol=1e-4, atol=1e-4)


def test_a_checkpoint_model_rebuilds_from_its_spec(tmp_path):
    state = reference_state(20, 4, seed=7)
    model = load_checkpoint(cohen_checkpoint(tmp_path / "c.pth.tar", "cifar_resnet20", state))
    spec = model_spec(model)
    assert spec == {
        "name": "smoothing_arch",
        "kwargs": {"arch": "cifar_resnet20", "num_classes": 4, "normalization": "cifar10"},
    }
    rebuilt = build_from_spec(spec).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(X), model(X))
    assert not any(
        k.startswith("0.") for k in model.state_dict()
    )  # the originals' layer has no state


R20 = {"arch": "cifar_resnet20", "state_dict": prefixed(reference_state(20, 10), "1.")}


@pytest.mark.parametrize(
    "blob, kwargs, match",
    [
        ({**R20, "arch": "cifar_resnet110"}, {}, r"do not fit cifar_resnet110 \(\d+ missing keys"),
        (R20, {"arch": "resnet50"}, r"holds a 'cifar_resnet20' checkpoint; arch 'resnet50' was"),
        ({"arch": "wrn28", "state_dict": {"w": torch.zeros(1)}}, {}, r"'wrn28' is not one hiercl"),
        (R20, {"normalization": "cifar"}, r"normalization 'cifar' is not one of"),
        (
            {"epoch": 3, "acc": 0.9},
            {},
            r"expected a checkpoint.*a dict with keys \['acc', 'epoch'\]",
        ),
        (torch.zeros(3), {}, r"expected a checkpoint.*got a Tensor"),
    ],
)
def test_refused_checkpoints_name_the_file_and_the_problem(tmp_path, blob, kwargs, match):
    path = tmp_path / "bad.pth.tar"
    torch.save(blob, path)
    with pytest.raises(ValueError, match=match) as info:
        read_checkpoint(path, **kwargs)
    assert "\n" not in str(info.value)


class _Pickled:
    pass


def test_a_file_that_needs_code_to_load_is_refused(tmp_path):
    path = tmp_path / "code.pth"
    torch.save({"state_dict": {}, "arch": _Pickled()}, path)
    with pytest.raises(ValueError, match=r"code.pth cannot be read as a weights-only checkpoint"):
        read_checkpoint(path)

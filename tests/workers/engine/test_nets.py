from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from contracts.classifier import ZOO_ARCHITECTURES, ArchitectureConfig
from workers.engine.nets import (
    NETWORKS,
    Classifier,
    build_network,
    count_parameters,
    expected_state_shapes,
)

SHAPE_CASES = [
    ("small_cnn", 1, (28, 28)),
    ("small_cnn", 3, (32, 32)),
    ("small_cnn", 3, (4, 4)),
    ("small_cnn", 1, (10, 14)),
    ("resnet18", 3, (32, 32)),
    ("resnet18", 1, (8, 8)),
    ("resnet18", 3, (12, 20)),
    ("mlp", 1, (28, 28)),
    ("mlp", 3, (8, 16)),
    ("mnist_cnn", 1, (28, 28)),
]


@pytest.mark.parametrize(("name", "channels", "size"), SHAPE_CASES)
def test_output_and_feature_shapes(name: str, channels: int, size: tuple[int, int]) -> None:
    arch = ArchitectureConfig(
        name=name, num_classes=7, in_channels=channels, input_size=size, width=8
    )
    net = build_network(arch)
    net.eval()
    x = torch.rand(3, channels, *size)
    logits = net(x)
    features = net.features(x)
    assert tuple(logits.shape) == (3, 7)
    assert tuple(features.shape) == (3, net.feature_dim)
    assert isinstance(net.head, nn.Linear) and net.head.out_features == 7
    # forward is exactly head(features): unlearning methods rely on this split.
    assert torch.allclose(net.head(features), logits)


def test_registry_covers_every_configurable_architecture() -> None:
    names = ArchitectureConfig.model_fields["name"].annotation.__args__  # type: ignore[union-attr]
    assert set(NETWORKS) | set(ZOO_ARCHITECTURES) == set(names)
    zoo_models = {"torchvision": "resnet18", "timm": "resnet18d"}
    for name in names:
        arch = ArchitectureConfig(name=name, num_classes=3, model=zoo_models.get(name))
        assert isinstance(build_network(arch), Classifier)


def test_width_scales_the_network() -> None:
    small = count_parameters(ArchitectureConfig(name="resnet18", num_classes=10, width=8))
    large = count_parameters(ArchitectureConfig(name="resnet18", num_classes=10, width=16))
    assert large > 3 * small


def test_normalisation_is_applied_but_not_saved() -> None:
    plain = ArchitectureConfig(name="mlp", num_classes=3, in_channels=3, input_size=(4, 4))
    normed = plain.model_copy(update={"normalize_mean": [0.5] * 3, "normalize_std": [0.25] * 3})
    torch.manual_seed(0)
    net_plain = build_network(plain)
    net_normed = build_network(normed)
    net_normed.load_state_dict(net_plain.state_dict(), strict=True)
    assert set(net_normed.state_dict()) == set(net_plain.state_dict())
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(net_normed(x), net_plain((x - 0.5) / 0.25), atol=1e-6)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_expected_state_shapes_match_a_real_network(name: str) -> None:
    arch = ArchitectureConfig(name=name, num_classes=5, width=8)
    real = {k: tuple(v.shape) for k, v in build_network(arch).state_dict().items()}
    assert expected_state_shapes(arch) == real


def _reference_cnn_class(weights: Path) -> type[nn.Module]:
    """digit-recognizer-py's own CNN class, loaded from its model.py (no torchvision)."""
    spec = importlib.util.spec_from_file_location("dr_model", weights.parent.parent / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CNN


def test_mnist_cnn_loads_digit_recognizer_weights_strictly(
    digit_recognizer_weights: Path, mnist_cnn_arch: ArchitectureConfig
) -> None:
    state_dict = torch.load(digit_recognizer_weights, map_location="cpu", weights_only=True)
    net = build_network(mnist_cnn_arch)
    net.load_state_dict(state_dict, strict=True)
    assert set(net.state_dict()) == set(state_dict)

    reference = _reference_cnn_class(digit_recognizer_weights)()
    reference.load_state_dict(state_dict, strict=True)
    net.eval()
    reference.eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        # The reference expects inputs already normalised the MNIST way.
        expected = reference((x - 0.1307) / 0.3081)
        assert torch.allclose(net(x), expected, atol=1e-5)

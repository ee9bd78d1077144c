"""torchvision and timm classifiers by name: building, keys, checkpoints and validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from contracts.classifier import ArchitectureConfig
from workers.engine.checkpoint import read_external_checkpoint, validate_state_dict
from workers.engine.errors import CheckpointMismatch
from workers.engine.nets import build_network
from workers.engine.zoo import _first_conv, _names_module_source


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def arch(name: str, model: str, **kw: object) -> ArchitectureConfig:
    return ArchitectureConfig.model_validate(
        {"name": name, "model": model, "num_classes": 10, "in_channels": 3, **kw}
    )


def test_names_module_matches_the_installed_registries() -> None:
    """zoo_names.py is what the pinned libraries list (regenerate it on an upgrade)."""
    current = (Path(__file__).parents[3] / "contracts/zoo_names.py").read_text()
    assert current == _names_module_source(), "run: python -m workers.engine.zoo --write-names"


@pytest.mark.parametrize(
    ("name", "model", "head"),
    [
        ("torchvision", "resnet50", "net.fc"),
        ("torchvision", "vit_b_16", "net.heads.head"),
        ("torchvision", "mobilenet_v3_small", "net.classifier.3"),
        ("timm", "resnet18d", "net.fc"),
    ],
)
def test_library_model_splits_into_features_and_head(name: str, model: str, head: str) -> None:
    net = build_network(arch(name, model, input_size=[32, 32])).eval()
    x = torch.rand(2, 3, 32, 32)
    logits = net(x)
    assert net.head_name == head and logits.shape == (2, 10)
    assert net.features(x).shape == (2, net.feature_dim)
    # head(features(x)) is exactly the library model's own forward.
    torch.testing.assert_close(logits, net.net(net.normalize(x)))


@pytest.mark.parametrize(("name", "model"), [("torchvision", "resnet18"), ("timm", "resnet18d")])
def test_one_channel_input_rebuilds_the_stem(name: str, model: str) -> None:
    net = build_network(arch(name, model, in_channels=1, input_size=[28, 28])).eval()
    found = _first_conv(net.net)
    assert found is not None and found[1].in_channels == 1
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_library_keys_and_ours_both_validate_and_load(tmp_path: Path) -> None:
    """A user's plain torchvision state dict (``fc.weight``) fits; ours (``net.fc``) too."""
    a = arch("torchvision", "resnet18", input_size=[32, 32])
    torch.manual_seed(0)
    ours = build_network(a).state_dict()
    native = {k.removeprefix("net."): v for k, v in ours.items()}
    path = tmp_path / "resnet18.pt"
    torch.save(native, path)
    loaded = read_external_checkpoint(path)
    validate_state_dict(a, loaded)
    validate_state_dict(a, ours)
    net = build_network(a)
    net.load_state_dict(loaded)  # strict
    torch.testing.assert_close(net.state_dict()["net.fc.weight"], ours["net.fc.weight"])


def test_mismatched_checkpoint_names_the_keys() -> None:
    a = arch("torchvision", "resnet18", input_size=[32, 32])
    other = build_network(arch("torchvision", "resnet18", num_classes=5, input_size=[32, 32]))
    state = {k.removeprefix("net."): v for k, v in other.state_dict().items()}
    state.pop("layer1.0.conv1.weight")
    with pytest.raises(CheckpointMismatch) as err:
        validate_state_dict(a, state)
    assert "net.layer1.0.conv1.weight" in err.value.missing
    assert "net.fc.weight" in str(err.value) and "[5, 512]" in str(err.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "torchvision", "model": "resnet05"}, "did you mean"),
        ({"name": "timm", "model": "not_a_model"}, "not a timm classification model"),
        ({"name": "torchvision"}, "needs a model name"),
        ({"name": "small_cnn", "model": "resnet50"}, "only for torchvision or timm"),
    ],
)
def test_model_names_are_validated_without_torch(body: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        ArchitectureConfig.model_validate({"num_classes": 10, **body})


def test_validating_a_library_architecture_imports_no_torch() -> None:
    code = (
        "import sys; from contracts.classifier import ArchitectureConfig as A;"
        "A(name='timm', model='resnet18d', num_classes=3); A(name='torchvision',"
        " model='convnext_tiny', num_classes=3); sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "validating imported torch"


def test_a_model_without_a_linear_head_is_refused() -> None:
    with pytest.raises(ValueError, match="no nn.Linear classifier head"):
        build_network(arch("torchvision", "squeezenet1_0", input_size=[64, 64]))

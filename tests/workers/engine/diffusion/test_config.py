from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from contracts.ddpm import (
    DiffusionArchitecture,
    DiffusionTrainParams,
    GenerateParams,
)


def test_modules_the_api_imports_are_torch_free() -> None:
    # The API validates requests and lists methods with these; it must not load torch.
    code = (
        "import sys, json, contracts.ddpm, contracts.methods as m;"
        "json.dumps(m.describe_methods());"
        "bad = [m for m in ('torch', 'diffusers') if m in sys.modules];"
        "print(bad, file=sys.stderr); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "imported torch/diffusers"


def test_defaults_and_presets_are_valid() -> None:
    arch = DiffusionArchitecture(num_classes=10)
    assert arch.null_class == 10 and arch.attention == [False, False, True]
    kwargs = arch.unet_kwargs()
    assert kwargs["num_class_embeds"] == 11
    assert kwargs["down_block_types"][-1] == "AttnDownBlock2D"
    assert kwargs["up_block_types"][0] == "AttnUpBlock2D"
    tiny = DiffusionArchitecture.preset("tiny8", num_classes=3)
    assert tiny.sample_size == 8 and tiny.attention == [False, False]
    assert DiffusionArchitecture.model_validate_json(arch.model_dump_json()) == arch
    assert DiffusionTrainParams().cond_drop_prob == 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 1},
        {"num_classes": 10, "sample_size": 18},  # not divisible by 4 for three levels
        {"num_classes": 10, "block_out_channels": [24, 36, 48]},  # 36 % 8 groups
        {"num_classes": 10, "attention_levels": [True]},  # wrong length
        {"num_classes": 10, "block_out_channels": [24, 40, 44], "norm_num_groups": 4},
        {"num_classes": 10, "beta_schedule": "sigmoid"},
        {"num_classes": 10, "family": "text2image"},
        {"num_classes": 10, "unknown": 1},
    ],
)
def test_invalid_architectures_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        DiffusionArchitecture(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": 0},
        {"cond_drop_prob": 1.0},
        {"ema_decay": 1.0},
        {"steps": 10, "lr_warmup_steps": 10},
        {"device": "tpu"},
        {"extra": 1},
    ],
)
def test_invalid_train_params_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        DiffusionTrainParams(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"labels": []},
        {"labels": [-1]},
        {"labels": [0, 1], "seeds": [1]},
        {"labels": [0], "guidance_scale": 51},
        {"labels": [0], "num_inference_steps": 0},
        {"labels": [0], "scheduler": "euler"},
        {"labels": [0] * 4097},
    ],
)
def test_invalid_generate_params_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        GenerateParams(**kwargs)


def test_image_seeds_default_to_base_plus_index() -> None:
    assert GenerateParams(labels=[0, 1, 2], seed=7).image_seeds() == [7, 8, 9]
    assert GenerateParams(labels=[0, 1], seeds=[5, 3]).image_seeds() == [5, 3]


@pytest.mark.parametrize("model", [DiffusionArchitecture, DiffusionTrainParams, GenerateParams])
def test_every_field_is_documented(model: type) -> None:
    assert all(f.description for f in model.model_fields.values())

"""The prompt-conditioned families: text2image (ours, MiniLM-conditioned, pixel space)
and stable_diffusion (a diffusers folder, tested with a tiny pipeline built here)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from contracts.text2image import (
    ConceptScope,
    PromptGenerateParams,
    TextToImageArchitecture,
)
from tests.workers.engine.diffusion.conftest import PromptWorld
from tests.workers.engine.diffusion.tiny_sd import CROSS_DIM, build_tiny_sd
from workers.engine.diffusion.prompted import (
    extract_archive,
    generate_prompts,
    inspect_sd_folder,
    load_stable_diffusion,
    load_text2image,
    load_text2image_checkpoint,
    pack_folder,
    save_text2image,
    xattn_keys,
)
from workers.engine.diffusion.unlearning import ConceptUnlearnData, get_diffusion_method
from workers.engine.errors import EngineError

torch.set_num_threads(1)


# --------------------------------------------------------------------------- text2image


def test_text2image_architecture_is_validated() -> None:
    arch = TextToImageArchitecture.preset("tiny8", num_classes=3)
    assert arch.cross_attention_dim == 384
    assert arch.captions_for(["3"]) == [["a photo of 3"]]
    with pytest.raises(ValidationError, match="must contain"):
        TextToImageArchitecture(num_classes=3, caption_templates=["a photo"])
    with pytest.raises(ValidationError, match="class_names has 2 names"):
        TextToImageArchitecture(num_classes=3, class_names=["a", "b"])
    with pytest.raises(ValidationError, match="negative_prompts has 1"):
        PromptGenerateParams(prompts=["a", "b"], negative_prompts=["x"])
    with pytest.raises(ValidationError):
        PromptGenerateParams(prompts=[])
    with pytest.raises(ValidationError, match="empty"):
        ConceptScope(prompts=["  "])


def test_text2image_generation_is_deterministic_by_seed(prompt_world: PromptWorld) -> None:
    model = load_text2image(prompt_world.arch, prompt_world.state_dict)
    prompts = prompt_world.prompts
    params = PromptGenerateParams(
        prompts=prompts, seeds=[5, 6, 7], num_inference_steps=8, guidance_scale=3.0
    )
    first = generate_prompts(model, params)
    one_by_one = generate_prompts(model, params.model_copy(update={"batch_size": 1}))
    assert first.images.shape == (3, 8, 8, 1) and first.images.dtype == np.uint8
    assert np.array_equal(first.images, one_by_one.images)
    other_seed = generate_prompts(model, params.model_copy(update={"seeds": [50, 6, 7]}))
    assert not np.array_equal(other_seed.images[0], first.images[0])
    assert np.array_equal(other_seed.images[1:], first.images[1:])
    negative = generate_prompts(
        model, params.model_copy(update={"negative_prompts": [prompts[1], "", ""]})
    )
    assert not np.array_equal(negative.images[0], first.images[0])
    assert first.negative_prompts == ["", "", ""]


def test_text2image_checkpoint_round_trip(prompt_world: PromptWorld, tmp_path: Path) -> None:
    path = tmp_path / "t2i.safetensors"
    save_text2image(path, prompt_world.arch, prompt_world.state_dict, ["a", "b", "c"])
    arch, state_dict, names = load_text2image_checkpoint(path)
    assert arch == prompt_world.arch and names == ["a", "b", "c"]
    assert all(torch.equal(state_dict[k], v) for k, v in prompt_world.state_dict.items())
    broken = dict(prompt_world.state_dict)
    broken.pop(next(iter(broken)))
    with pytest.raises(EngineError, match="missing key"):
        load_text2image(prompt_world.arch, broken)


# --------------------------------------------------------------------------- stable diffusion


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd(tmp_path_factory.mktemp("sd"))


def test_sd_folder_is_inspected_and_loaded_offline(sd_folder: Path) -> None:
    info = inspect_sd_folder(sd_folder)
    assert info["cross_attention_dim"] == CROSS_DIM and info["latent_channels"] == 4
    assert info["image_size"] == 16
    model = load_stable_diffusion(sd_folder)
    assert model.vae is not None and len(xattn_keys(model.unet.state_dict())) == 8


def test_sd_generation_is_deterministic_by_seed(sd_folder: Path) -> None:
    model = load_stable_diffusion(sd_folder)
    params = PromptGenerateParams(
        prompts=["a photo of the cat", "a dog"],
        negative_prompts=["", "blurry"],
        seeds=[1, 2],
        guidance_scale=5.0,
        num_inference_steps=4,
    )
    first = generate_prompts(model, params)
    again = generate_prompts(
        load_stable_diffusion(sd_folder), params.model_copy(update={"batch_size": 1})
    )
    assert first.images.shape == (2, 16, 16, 3)
    assert np.array_equal(first.images, again.images)
    for name in ("ddpm", "dpm"):
        a = generate_prompts(model, params.model_copy(update={"scheduler": name}))
        b = generate_prompts(model, params.model_copy(update={"scheduler": name}))
        assert np.array_equal(a.images, b.images), name


def _broken_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_bad_sd_folders_are_refused_by_name(sd_folder: Path, tmp_path: Path) -> None:
    missing = _broken_copy(sd_folder, tmp_path / "missing")
    shutil.rmtree(missing / "vae")
    with pytest.raises(EngineError, match="missing component.*vae"):
        inspect_sd_folder(missing)

    mismatched = _broken_copy(sd_folder, tmp_path / "mismatched")
    config_path = mismatched / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["cross_attention_dim"] = 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(EngineError, match="cross_attention_dim 64 != text_encoder hidden_size 32"):
        inspect_sd_folder(mismatched)

    pickled = _broken_copy(sd_folder, tmp_path / "pickled")
    for f in (pickled / "unet").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(EngineError, match="unet/ holds only .bin"):
        inspect_sd_folder(pickled)

    with pytest.raises(EngineError, match="model_index.json"):
        inspect_sd_folder(tmp_path)


def test_archives_round_trip_and_unsafe_members_are_refused(
    sd_folder: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "sd.tar"
    pack_folder(sd_folder, archive)
    root = extract_archive(archive, tmp_path / "out")
    assert inspect_sd_folder(root) == inspect_sd_folder(sd_folder)
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(evil, "w") as tf:
        tf.add(payload, arcname="../escape.txt")
    with pytest.raises(EngineError, match="outside the folder"):
        extract_archive(evil, tmp_path / "evil_out")
    not_archive = tmp_path / "x.bin"
    not_archive.write_bytes(b"hello")
    with pytest.raises(EngineError, match="neither a tar nor a zip"):
        extract_archive(not_archive, tmp_path / "x_out")


def test_uce_edits_a_stable_diffusion_unet(sd_folder: Path) -> None:
    model = load_stable_diffusion(sd_folder)
    parent = model.unet_state_dict()
    data = ConceptUnlearnData(prompts=["a cat"], anchor="a animal", preserve=["a dog"])
    result = get_diffusion_method("uce").run_concepts(model, data, {"lam": 0.1})
    assert sorted(result.trained_keys) == xattn_keys(parent)
    assert result.metrics["erase_residual"] < 0.5 and result.metrics["preserve_drift"] < 0.2
    # The loaded model is untouched; the child loads back into the same pipeline.
    assert all(torch.equal(model.unet.state_dict()[k], v) for k, v in parent.items())
    child = load_stable_diffusion(sd_folder, unet_state_dict=result.state_dict)
    params = PromptGenerateParams(prompts=["a cat", "a dog"], seeds=[0, 1], num_inference_steps=3)
    before, after = generate_prompts(model, params), generate_prompts(child, params)
    assert not np.array_equal(before.images[0], after.images[0])


def test_text2image_resume_is_bit_identical(prompt_world: PromptWorld) -> None:
    from tests.workers.engine.diffusion.conftest import PROMPT_NAMES, tiny_recipe
    from workers.engine.diffusion.prompted import train_text2image
    from workers.engine.training import Callbacks

    states: list[dict] = []

    class Capture(Callbacks):
        def on_checkpoint(self, state: dict) -> None:
            states.append(state)

    recipe = tiny_recipe(steps=6, checkpoint_every_steps=3, lr_warmup_steps=1)
    images = prompt_world.images
    full = train_text2image(prompt_world.arch, recipe, images, PROMPT_NAMES, Capture())
    resumed = train_text2image(prompt_world.arch, recipe, images, PROMPT_NAMES, resume=states[0])
    assert states[0]["step"] == 3
    assert all(torch.equal(full.state_dict[k], resumed.state_dict[k]) for k in full.state_dict)
    with pytest.raises(EngineError, match="different training set"):
        train_text2image(
            prompt_world.arch, recipe, images.subset(np.arange(64)), PROMPT_NAMES, resume=states[0]
        )


def test_esd_subsets_map_onto_cross_attention(sd_folder: Path) -> None:
    from workers.engine.diffusion.unlearning.prompt_common import select_prompt_parameters

    model = load_stable_diffusion(sd_folder)
    names = [n for n, _ in model.unet.named_parameters()]
    xattn = select_prompt_parameters(names, "xattn")
    noxattn = select_prompt_parameters(names, "noxattn")
    assert xattn and all(".attn2." in n for n in xattn)
    assert set(xattn_keys(model.unet.state_dict())) <= set(xattn)
    assert not set(xattn) & set(noxattn)
    left = set(names) - set(xattn) - set(noxattn)
    assert left and all(
        n.startswith(("time_embedding.", "conv_out.", "conv_norm_out.")) for n in left
    )
    # ESD runs on the latent model too (states recorded in latent space).
    data = ConceptUnlearnData(prompts=["a cat"], preserve=["a dog"])
    params = {"steps": 3, "trajectories": 2, "ddim_steps": 3, "train_method": "xattn"}
    result = get_diffusion_method("esd").run_concepts(model, data, params)
    assert set(result.trained_keys) == set(xattn) and result.metrics["forget_epsilon_shift"] > 0

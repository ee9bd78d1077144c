"""A tiny, randomly initialised Stable Diffusion pipeline that tests build and save.

Nothing is downloaded: the UNet, VAE and CLIP text encoder are built from small
configs, and the CLIP tokenizer from a character-level vocabulary and a few merges
written here. ``save_pretrained`` gives the same folder layout a user uploads.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

CROSS_DIM = 32


def _write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"]
    letters = list(string.ascii_lowercase + string.digits + "-")
    tokens += letters + [c + "</w>" for c in letters]
    merges = ["#version: 0.2", "t h", "th e</w>"]
    tokens += ["th", "the</w>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab))
    merges_path.write_text("\n".join(merges) + "\n")
    return vocab_path, merges_path


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """Write a tiny diffusers SD folder (64x64 images from 8x8 latents) to ``folder``."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=CROSS_DIM,
            attention_head_dim=2,
            norm_num_groups=4,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 8),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=16,
        )
        vocab, merges = _write_tokenizer_files(folder / "_tok_src")
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=16)
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(json.loads(vocab.read_text())),
                hidden_size=CROSS_DIM,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=16,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out = folder / "pipeline"
    pipe.save_pretrained(out, safe_serialization=True)
    return out

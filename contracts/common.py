"""Declarations every side shares (API, ``core``, workers and the engine).

Each constant here had copies in several places; this module is their one owner.
Pydantic and the standard library only, like the whole ``contracts`` package: importing it
never loads torch (``tests/contracts`` checks that).
"""

from __future__ import annotations

from typing import Literal

# A torch device string a job may ask for; "auto" is not one (method params add it).
DEVICE_PATTERN = r"^(cpu|cuda(:\d+)?|mps)$"
# Method params may also say "auto": the job's device.
DEVICE_OR_AUTO_PATTERN = r"^(auto|cpu|cuda(:\d+)?|mps)$"

# What a forget scope names (the API's ``ForgetScope`` request object holds one of these);
# the engine's methods declare which of the first three they accept.
ScopeKind = Literal["subject_ids", "sample_ids", "labels", "concept"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("subject_ids", "sample_ids", "labels", "concept")

# Diffusion noise schedules and samplers (ddpm, text2image and their judges).
BetaSchedule = Literal["linear", "squaredcos_cap_v2"]
SamplerName = Literal["ddpm", "ddim", "dpm"]

# Formats of an uploaded classifier or ddpm checkpoint (checked against the architecture).
CHECKPOINT_UPLOADS: dict[str, str] = {
    "safetensors": "a .safetensors state dict",
    "pytorch_state_dict": "a PyTorch state dict (.pt/.pth), read with weights_only=True",
}

# The upload format of a diffusers pipeline folder (a tar or zip of it).
PIPELINE_UPLOAD = "diffusers_pipeline"

# The config ``format`` of a Stable Diffusion version stored as a diffusers pipeline folder.
SD_PIPELINE_FORMAT = "expunge.sd_pipeline/1"

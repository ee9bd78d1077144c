"""Diffusion engine: class-conditional DDPMs on diffusers, concept erasure, judges.

Import ``contracts.ddpm`` and ``workers.engine.diffusion.unlearning``
without torch (the API does); ``models``, ``judge`` and the method bodies need torch and
diffusers. See docs/diffusion.md.
"""

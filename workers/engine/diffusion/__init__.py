"""Diffusion engine: class-conditional DDPMs on diffusers, concept erasure, judges.

Import ``workers.engine.diffusion.config`` and ``workers.engine.diffusion.unlearning``
without torch (the API does); ``models``, ``judge`` and the method bodies need torch and
diffusers. See docs/diffusion.md.
"""

"""Declarations shared by the API, ``core``, the workers and the engine.

Pydantic and the standard library only: nothing here imports torch or any other package
of this repository (import-linter contract ``contracts-bottom``), so every side can import
it. Each model family's schemas live in one module (``classifier``, ``ddpm``,
``text2image``); what several families share lives in ``common`` and ``judge``.
"""

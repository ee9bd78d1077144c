"""Typed engine errors.

They live in one small module so that data, nets, checkpoint and training code can raise
them without importing each other; ``workers.engine.training`` re-exports them because
that is where the runner looks for them.
"""

from __future__ import annotations


class EngineError(Exception):
    """A job cannot go on because of its input; the message is meant for the user."""


class TrainingStopped(EngineError):
    """``Callbacks.should_stop()`` asked the loop to stop (cancel, shutdown)."""

    def __init__(self, message: str, step: int = 0) -> None:
        super().__init__(message)
        self.step = step


class TrainingDiverged(EngineError):
    """The loss became NaN or infinite; continuing would only produce garbage weights."""

    def __init__(self, message: str, step: int = 0) -> None:
        super().__init__(message)
        self.step = step


class CheckpointError(EngineError):
    """A checkpoint file cannot be read, or is not something we are willing to read."""


class CheckpointMismatch(CheckpointError):
    """A state dict does not fit the architecture it is meant for."""

    def __init__(
        self,
        message: str,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = missing or []
        self.unexpected = unexpected or []
        self.mismatched = mismatched or []

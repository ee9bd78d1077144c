"""A model family as the worker runs it: which handler runs each kind of job.

Handlers are named as ``"module:function"`` and imported only when a job needs one:
they pull in torch (and diffusers, transformers), which the runner module, the Celery
app and the sweeper must not load just to start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# A job handler: (JobContext, Job) -> the job's metrics. Typed loosely here so that this
# module imports neither the ORM nor the job context.
Handler = Callable[[Any, Any], dict[str, Any]]


class UnsupportedJob(ValueError):
    """No runtime runs this kind of job on this family; the message is the job's error."""


@dataclass(frozen=True)
class FamilyRuntime:
    """One family's worker side: its name (as ``Model.family`` stores it) and, per job
    kind, the dotted path of the function that runs such a job."""

    family: str
    handlers: Mapping[str, str]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self.handlers)

    def handler(self, kind: str) -> Handler:
        """Import and return the handler for ``kind`` (``UnsupportedJob`` if none)."""
        path = self.handlers.get(kind)
        if path is None:
            runs = ", ".join(sorted(self.handlers)) or "nothing"
            raise UnsupportedJob(
                f"this worker cannot run {kind!r} jobs on {self.family} models "
                f"(it runs {runs} on them)"
            )
        module_name, _, attribute = path.partition(":")
        handler: Handler = getattr(importlib.import_module(module_name), attribute)
        return handler

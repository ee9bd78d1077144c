"""The worker runtime of every model family, and the one table the runner dispatches
from. Adding a family: its runtime module here, and one line in ``RUNTIMES``.

Importing this package is cheap (names and dotted paths only); a handler's module is
imported when the first job that needs it runs.
"""

from __future__ import annotations

from workers.families.base import FamilyRuntime, Handler, UnsupportedJob
from workers.families.causal_lm import CAUSAL_LM
from workers.families.classifier import CLASSIFIER
from workers.families.ddpm import DDPM
from workers.families.text2image import STABLE_DIFFUSION, TEXT2IMAGE

__all__ = ["RUNTIMES", "FamilyRuntime", "Handler", "UnsupportedJob", "handler_for", "runtime"]

RUNTIMES: dict[str, FamilyRuntime] = {
    r.family: r
    for r in (
        CLASSIFIER,
        DDPM,
        TEXT2IMAGE,
        STABLE_DIFFUSION,
        CAUSAL_LM,
    )
}


def runtime(family: str) -> FamilyRuntime:
    """The runtime of ``family`` (``UnsupportedJob`` naming the known ones if none)."""
    try:
        return RUNTIMES[family]
    except KeyError:
        known = ", ".join(sorted(RUNTIMES))
        raise UnsupportedJob(
            f"this worker has no runtime for {family} models (it knows {known})"
        ) from None


def handler_for(kind: str, family: str) -> Handler:
    """The handler of a ``kind`` job on a ``family`` model, imported now."""
    return runtime(family).handler(kind)

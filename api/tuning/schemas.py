from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from api.schemas import RequestBody
from contracts.common import DEVICE_PATTERN

MAX_CANDIDATES = 12


class TuneCreate(RequestBody):
    """Search a method's parameters on a pseudo-forget set of the model's own training
    samples; the winner becomes the deletion policy's ``method_params`` (``apply``)."""

    model_config = ConfigDict(extra="forbid")

    model_version_id: str | None = Field(
        default=None,
        max_length=40,
        description="The version to tune on; defaults to the model's newest active version",
    )
    method: str | None = Field(
        default=None,
        max_length=60,
        description="Approximate method to tune; defaults to the policy's method",
    )
    grid: dict[str, list[Any]] | None = Field(
        default=None,
        description="Values to try per parameter (every combination, at most "
        f"{MAX_CANDIDATES}); default: lr x budget_fraction for iterative methods",
    )
    pseudo_forget_fraction: float = Field(
        0.05,
        gt=0,
        le=0.5,
        description="Share of the version's trained samples that plays the forget set",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds the pseudo-forget draw and runs")
    device: str = Field(
        "cpu", pattern=DEVICE_PATTERN, description="torch device to run on"
    )
    apply: bool = Field(
        True,
        description="Store a winner that passes the policy's checks on the deletion policy "
        "(false: only report)",
    )

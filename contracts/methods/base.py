"""What every unlearning method declares, and the cost model a plan prices it with.

Torch-free (pydantic and the standard library only): the API lists the methods and
validates job params against them, ``core.deletion.pricing`` sizes an attempt with
``ClassifierMethodSpec.budget``, and the engine's method files take their ``Params`` and
metadata from the same declaration, so the three sides cannot drift apart. The engine
keeps the implementations (``workers.engine.unlearning``, one file per method).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.common import DEVICE_OR_AUTO_PATTERN

# What a classifier method can forget: samples of a subject, samples, or whole classes.
ClassifierScope = Literal["subject_ids", "sample_ids", "labels"]
CLASSIFIER_SCOPES: frozenset[ClassifierScope] = frozenset({"subject_ids", "sample_ids", "labels"})


# --------------------------------------------------------------------------- errors


class MethodError(Exception):
    """A method request that cannot be honoured; the message is meant for the user."""


class UnknownMethod(MethodError):
    """No method is declared under the requested name (for the requested family)."""


class UnsupportedScope(MethodError):
    """The method cannot forget this kind of scope (e.g. Boundary Unlearning on samples)."""


class InvalidMethodParams(MethodError):
    """The params given for a method do not validate against its ``Params`` schema."""


# --------------------------------------------------------------------------- params


class MethodParams(BaseModel):
    """Options every method accepts. Subclasses add their own hyper-parameters."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds batch order and any noise.")
    device: str = Field(
        "auto",
        pattern=DEVICE_OR_AUTO_PATTERN,
        description="torch device; 'auto' uses CUDA when available, else CPU.",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Samples per optimizer step.")
    retain_accuracy_floor: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "Fail with UnlearningDiverged if accuracy on a retain probe falls below this; "
            "a method that destroys the model should not produce a model version."
        ),
    )
    retain_probe_size: int = Field(
        256, ge=8, le=100_000, description="Retain samples used for the floor check."
    )
    probe_every_steps: int = Field(
        50, ge=1, description="Check the retain floor every this many optimizer steps."
    )


# The share of the original's training (epochs x training samples, in sample passes) a
# method may spend when no explicit epoch count is given. 0.2 keeps every default under
# half a retrain with room for what the estimate leaves out: per-run overheads, a smaller
# batch than the recipe's, a busy machine (bench/cost.py measures it).
DEFAULT_BUDGET_FRACTION = 0.2


def epochs_field(walks: str) -> Any:
    """The ``epochs`` field of an iterative method: empty means "resolve from the budget"."""
    return Field(
        None,
        ge=1,
        le=1000,
        description=(
            f"Passes over the {walks}. Empty: as many as budget_fraction of the original's "
            "training allows, at most the method's reference count (its paper's); a number "
            "given here wins over the budget."
        ),
    )


class IterativeParams(MethodParams):
    """Options of methods that take optimizer steps. Subclasses re-declare defaults."""

    epochs: int | None = epochs_field("set the loop walks")
    budget_fraction: float = Field(
        DEFAULT_BUDGET_FRACTION,
        gt=0,
        le=1,
        description=(
            "Without explicit epochs: spend at most this share of the original's own "
            "training (its recipe's epochs x its training samples, in sample passes), "
            "resolved at run time, so a default never costs more than retraining would."
        ),
    )
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="Optimizer.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by adam).")
    weight_decay: float = Field(5e-4, ge=0, le=1, description="L2 penalty.")


class ForgetLossParams(IterativeParams):
    """Options of methods that optimise a loss on the forget set.

    Only those can honour LoReUn, so only their schema advertises it.
    """

    loreun: bool = Field(
        False,
        description=(
            "LoReUn (Li et al. 2025): weight forget samples by softmax(-loss/T) so the "
            "ones the model still fits well (hard to forget) get more weight."
        ),
    )
    loreun_temperature: float = Field(
        1.0, gt=0, le=100, description="Temperature T of the LoReUn weights."
    )


# --------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class Budget:
    """What one run will cost, in sample passes (one forward + backward of one sample).

    The unit is what training spends too: the original cost ``epochs x training samples``
    and a retrain costs ``epochs x retain samples`` with the same recipe, so
    ``cost_fraction`` compares a method with the exact path without timing either.
    """

    epochs: int | None  # resolved epochs; None for a method that takes none
    retain_samples: int | None  # walk a seeded subset of this many retain samples
    passes: float
    original_passes: float | None
    retrain_passes: float | None
    source: Literal["explicit", "budget", "reference", "fixed", "exact"]
    # Param values resolved for this run (e.g. a search's size fitted to the budget).
    updates: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_fraction(self) -> float | None:
        """Estimated cost over a retrain's (None without the original's recipe)."""
        if not self.retrain_passes:
            return None
        return self.passes / self.retrain_passes

    def note(self, method: str) -> str:
        what = {
            "explicit": "epochs given",
            "budget": "sized by budget_fraction of the original's training",
            "reference": "no recipe known: the method's reference epochs",
            "fixed": "no epochs: fixed passes",
            "exact": "exact: a retrain",
        }[self.source]
        parts = [f"{method} budget: {what}"]
        if self.epochs is not None:
            parts.append(f"{self.epochs} epoch(s)")
        if self.retain_samples is not None:
            parts.append(f"over {self.retain_samples} retain samples")
        parts += [f"{k} {v}" for k, v in sorted(self.updates.items())]
        parts.append(f"~{self.passes:.0f} sample passes")
        if self.cost_fraction is not None:
            parts.append(f"{self.cost_fraction:.2f} x a retrain")
        return ", ".join(parts)


# (params, n_forget, n_retain) -> sample passes
PassesFn = Callable[[Any, int, int], float]
# (params, n_forget, n_retain, allowed passes or None) -> param values for this run
FitFn = Callable[[Any, int, int, "float | None"], dict[str, Any]]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, kw_only=True)
class MethodSpec(ABC):
    """One unlearning method as every side knows it: what the API lists and validates,
    what the engine's implementation of the same name runs with."""

    name: str
    paper: str
    summary: str  # one sentence, published by GET /api/v1/methods
    params: type[BaseModel]
    exact: bool = False

    def __post_init__(self) -> None:
        for attr in ("name", "paper", "summary"):
            if not getattr(self, attr):
                raise TypeError(f"method spec {self.name!r} needs a non-empty {attr!r}")

    @property
    @abstractmethod
    def job_families(self) -> tuple[str, ...]:
        """Model families a job may use this method on (one published row each)."""

    def params_for(self, family: str) -> type[BaseModel]:
        """The params schema on models of ``family``."""
        return self.params

    def parse_params(
        self, params: BaseModel | Mapping[str, Any] | None, family: str | None = None
    ) -> Any:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        cls = self.params_for(family or self.job_families[0])
        if params is None:
            return cls()
        if isinstance(params, cls):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return cls.model_validate(dict(params))
        except ValidationError as exc:
            raise InvalidMethodParams(f"invalid params for {self.name}: {exc}") from exc

    @abstractmethod
    def describe(self, family: str) -> dict[str, Any]:
        """The row GET /api/v1/methods publishes for this method on ``family``."""


@dataclass(frozen=True, kw_only=True)
class ClassifierMethodSpec(MethodSpec):
    """A classifier method and its cost model (sample passes against the original's).

    ``epoch_cost``/``fixed_cost``/``fit_budget`` override the defaults below where a
    method spends more than one pass over the set it walks, or takes no epochs.
    """

    scopes: frozenset[ClassifierScope] = CLASSIFIER_SCOPES
    # The paper's epoch count: used when no recipe is known, and the most a budget buys.
    default_epochs: int = 5
    # Which set one epoch walks: a budget under one epoch subsamples the retain set of a
    # retain walker; a forget walker always makes at least one pass over the forget set.
    walks: Literal["retain", "forget"] = "forget"
    epoch_cost: PassesFn | None = None
    fixed_cost: PassesFn | None = None
    fit_budget: FitFn | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.scopes or not self.scopes <= CLASSIFIER_SCOPES:
            raise TypeError(f"{self.name}: scopes must be a non-empty subset of the classifier's")

    @property
    def job_families(self) -> tuple[str, ...]:
        return ("classifier",)

    @property
    def supports_loreun(self) -> bool:
        return issubclass(self.params, ForgetLossParams)

    def describe(self, family: str = "classifier") -> dict[str, Any]:
        return {
            "name": self.name,
            "family": "classifier",
            "exact": self.exact,
            "paper": self.paper,
            "scopes": sorted(self.scopes),
            "supports_loreun": self.supports_loreun,
            "summary": self.summary,
            "params_schema": self.params.model_json_schema(),
        }

    # ------------------------------------------------------------------ cost model

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sample passes of one epoch (a forward-only pass counts 1/3)."""
        if self.epoch_cost is not None:
            return self.epoch_cost(params, n_forget, n_retain)
        return float(n_retain if self.walks == "retain" else n_forget)

    def fixed_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sample passes spent once per run, whatever the epochs (gradients, masks)."""
        if self.fixed_cost is not None:
            return self.fixed_cost(params, n_forget, n_retain)
        return 0.0

    def resolve_fixed(
        self, params: Any, n_forget: int, n_retain: int, allowed: float | None
    ) -> dict[str, Any]:
        """Param values a method without epochs takes for this run, fitting its empty
        (budget-driven) fields to ``allowed`` passes when the original is known."""
        if self.fit_budget is not None:
            return self.fit_budget(params, n_forget, n_retain, allowed)
        return {}

    def budget(
        self,
        params: BaseModel | Mapping[str, Any] | None,
        n_forget: int,
        n_retain: int,
        train_epochs: float | None,
    ) -> Budget:
        """The epochs this run takes and what it costs against the original's training.

        ``train_epochs`` is the original recipe's epoch count (None if unknown). Explicit
        epochs win; otherwise the epochs are as many as ``budget_fraction`` of the
        original's passes buys (at most ``default_epochs``), and a retain walker whose
        budget buys less than one epoch walks a subset of the retain set instead.
        """
        parsed = self.parse_params(params)
        original = train_epochs * (n_forget + n_retain) if train_epochs else None
        retrain = train_epochs * n_retain if train_epochs else None
        if self.exact:
            passes = float(getattr(parsed, "epochs", None) or train_epochs or 1) * n_retain
            return Budget(None, None, passes, original, retrain, "exact")
        if not isinstance(parsed, IterativeParams):
            fraction = getattr(parsed, "budget_fraction", None)
            allowed = fraction * original if fraction and original else None
            updates = self.resolve_fixed(parsed, n_forget, n_retain, allowed)
            fixed = self.fixed_passes(parsed.model_copy(update=updates), n_forget, n_retain)
            fitted: Literal["budget", "fixed"] = (
                "budget" if allowed is not None and updates else "fixed"
            )
            return Budget(None, None, fixed, original, retrain, fitted, updates)
        fixed = self.fixed_passes(parsed, n_forget, n_retain)
        per_epoch = max(self.epoch_passes(parsed, n_forget, n_retain), 1e-9)
        keep: int | None = None
        epochs: int
        source_: Literal["explicit", "budget", "reference"]
        if parsed.epochs is not None:
            epochs, source_ = parsed.epochs, "explicit"
        elif original is None:
            epochs, source_ = self.default_epochs, "reference"
        else:
            source_ = "budget"
            allowed = parsed.budget_fraction * original - fixed
            epochs = min(int(allowed // per_epoch), self.default_epochs)
            if epochs < 1:
                epochs = 1
                if self.walks == "retain" and n_retain > 0:
                    # One epoch's cost grows with the retain set; walk as much as fits.
                    floor = min(n_retain, parsed.batch_size)
                    share = max(allowed, 0.0) / per_epoch
                    keep = min(n_retain, max(floor, int(share * n_retain)))
                    if keep >= n_retain:
                        keep = None
                    else:
                        per_epoch = self.epoch_passes(parsed, n_forget, keep)
        passes = fixed + epochs * per_epoch
        return Budget(epochs, keep, passes, original, retrain, source_)

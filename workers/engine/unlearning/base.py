"""The contract every classifier-unlearning method follows, and the registry.

This module is torch-free on purpose: the API publishes ``describe_methods()`` and
validates job params against each method's ``Params`` without ever importing torch.
Method files therefore keep their torch imports inside functions, and the shared torch
machinery lives in ``workers.engine.unlearning.common``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workers.engine.errors import EngineError, TrainingDiverged

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.data import ImageArrays
    from workers.engine.training import Callbacks

ForgetScope = Literal["subject_ids", "sample_ids", "labels"]
ALL_SCOPES: frozenset[ForgetScope] = frozenset({"subject_ids", "sample_ids", "labels"})

_DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?|mps)$"


# --------------------------------------------------------------------------- errors


class UnknownMethod(EngineError):
    """No method is registered under the requested name."""


class UnsupportedScope(EngineError):
    """The method cannot forget this kind of scope (e.g. Boundary Unlearning on samples)."""


class InvalidMethodParams(EngineError):
    """The params given for a method do not validate against its ``Params`` schema."""


class UnlearningDiverged(TrainingDiverged):
    """The loss went NaN/inf, or retain accuracy fell below ``retain_accuracy_floor``.

    Either way the weights are no longer worth keeping, so the job fails instead of
    producing a model version that forgot everything.
    """


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class UnlearnData:
    """Already-resolved data for one unlearning run.

    The runner turns a deletion request (subjects, samples or labels) into these arrays;
    a method never sees the database. ``forget_labels`` is set exactly when the scope is
    class-wise forgetting.
    """

    forget: ImageArrays
    retain: ImageArrays
    test: ImageArrays | None = None
    forget_labels: list[int] | None = None
    scope: ForgetScope | None = None

    def __post_init__(self) -> None:
        scope = self.scope
        if scope is None:
            scope = "labels" if self.forget_labels is not None else "sample_ids"
            object.__setattr__(self, "scope", scope)
        if (scope == "labels") != (self.forget_labels is not None):
            raise EngineError("forget_labels must be given exactly when the scope is 'labels'")
        if len(self.forget.labels) == 0:
            raise EngineError("the forget set is empty: there is nothing to unlearn")
        if len(self.retain.labels) == 0:
            raise EngineError("the retain set is empty")


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


@dataclass
class UnlearnResult:
    """What a method hands back: new weights, summary metrics and human-readable log."""

    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- params


class MethodParams(BaseModel):
    """Options every method accepts. Subclasses add their own hyper-parameters."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds batch order and any noise.")
    device: str = Field(
        "auto",
        pattern=_DEVICE_PATTERN,
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


def loreun_weights(losses: torch.Tensor, temperature: float) -> torch.Tensor:
    """LoReUn per-sample weights from detached per-sample losses (mean weight 1).

    Samples with a small loss are still well fitted, i.e. not yet forgotten, so they get
    more weight: w_i = n * softmax(-loss_i / T).
    """
    import torch

    losses = losses.detach()
    n = losses.numel()
    return n * torch.softmax(-losses / temperature, dim=0)


def weighted_mean(per_sample: torch.Tensor, params: MethodParams) -> torch.Tensor:
    """Mean of a per-sample forget loss, LoReUn-weighted when the params ask for it."""
    if isinstance(params, ForgetLossParams) and params.loreun:
        weights = loreun_weights(per_sample, params.loreun_temperature)
        return (weights * per_sample).mean()
    return per_sample.mean()


def loreun_mean(
    per_sample: torch.Tensor, difficulty: torch.Tensor, params: MethodParams
) -> torch.Tensor:
    """Like ``weighted_mean`` but with weights from a separate difficulty loss.

    Gradient ascent maximises the forget loss, random labelling minimises a loss on
    wrong labels: in both cases the LoReUn difficulty is the loss of the *true* label.
    """
    if isinstance(params, ForgetLossParams) and params.loreun:
        weights = loreun_weights(difficulty, params.loreun_temperature)
        return (weights * per_sample).mean()
    return per_sample.mean()


# --------------------------------------------------------------------------- methods


class UnlearningMethod(ABC):
    """One unlearning method. Subclasses set the class attributes and ``unlearn``."""

    name: ClassVar[str]
    family: ClassVar[Literal["classifier"]] = "classifier"
    exact: ClassVar[bool] = False
    paper: ClassVar[str]
    scopes: ClassVar[frozenset[ForgetScope]] = ALL_SCOPES
    Params: ClassVar[type[MethodParams]] = MethodParams
    # The paper's epoch count: used when no recipe is known, and the most a budget buys.
    default_epochs: ClassVar[int] = 5
    # Which set one epoch walks: a budget under one epoch subsamples the retain set of a
    # retain walker; a forget walker always makes at least one pass over the forget set.
    walks: ClassVar[Literal["retain", "forget"]] = "forget"

    # ------------------------------------------------------------------ cost model

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sample passes of one epoch (a forward-only pass counts 1/3)."""
        return float(n_retain if self.walks == "retain" else n_forget)

    def fixed_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sample passes spent once per run, whatever the epochs (gradients, masks)."""
        return 0.0

    def resolve_fixed(
        self, params: Any, n_forget: int, n_retain: int, allowed: float | None
    ) -> dict[str, Any]:
        """Param values a method without epochs takes for this run, fitting its empty
        (budget-driven) fields to ``allowed`` passes when the original is known."""
        return {}

    def budget(
        self,
        params: MethodParams | Mapping[str, Any] | None,
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
            source = "budget" if allowed is not None and updates else "fixed"
            return Budget(None, None, fixed, original, retrain, source, updates)  # type: ignore[arg-type]
        fixed = self.fixed_passes(parsed, n_forget, n_retain)
        per_epoch = max(self.epoch_passes(parsed, n_forget, n_retain), 1e-9)
        keep: int | None = None
        if parsed.epochs is not None:
            epochs, source = parsed.epochs, "explicit"
        elif original is None:
            epochs, source = self.default_epochs, "reference"
        else:
            source = "budget"
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
        return Budget(epochs, keep, passes, original, retrain, source)  # type: ignore[arg-type]

    def parse_params(self, params: MethodParams | Mapping[str, Any] | None) -> MethodParams:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        if params is None:
            return self.Params()
        if isinstance(params, self.Params):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return self.Params.model_validate(dict(params))
        except ValidationError as exc:
            raise InvalidMethodParams(f"invalid params for {self.name}: {exc}") from exc

    def check_scope(self, data: UnlearnData) -> None:
        if data.scope not in self.scopes:
            raise UnsupportedScope(
                f"{self.name} supports scopes {sorted(self.scopes)}, not {data.scope!r}"
            )

    def run(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: MethodParams | Mapping[str, Any] | None = None,
        callbacks: Callbacks | None = None,
        train_params: TrainParams | None = None,
    ) -> UnlearnResult:
        """Validate params and scope, then unlearn. The input state dict is not modified."""
        parsed = self.parse_params(params)
        self.check_scope(data)
        if callbacks is None:
            from workers.engine.training import Callbacks

            callbacks = Callbacks()
        # A recipe read from a version without one (an uploaded checkpoint) is all
        # defaults: its epochs say nothing about how the original trained.
        known = train_params is not None and "epochs" in train_params.model_fields_set
        budget = self.budget(
            parsed,
            len(data.forget.labels),
            len(data.retain.labels),
            train_params.epochs if known and train_params is not None else None,
        )
        if isinstance(parsed, IterativeParams) and budget.epochs is not None:
            parsed = parsed.model_copy(update={"epochs": budget.epochs})
        if budget.updates:
            parsed = parsed.model_copy(update=budget.updates)
        if budget.retain_samples is not None:
            data = replace(data, retain=_seeded_subset(data.retain, budget.retain_samples, parsed))
        note = budget.note(self.name)
        callbacks.on_log(note)
        result = self.unlearn(arch, state_dict, data, parsed, callbacks, train_params)
        result.log.insert(0, note)
        result.metrics["estimated_passes"] = float(budget.passes)
        if budget.cost_fraction is not None:
            result.metrics["estimated_cost_fraction"] = float(budget.cost_fraction)
        return result

    @abstractmethod
    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        """The method itself; ``params`` is an instance of ``self.Params``."""


def _seeded_subset(arrays: ImageArrays, size: int, params: MethodParams) -> ImageArrays:
    """A seeded random ``size`` of ``arrays``, in their order (a budget's retain share)."""
    import numpy as np

    rng = np.random.default_rng(params.seed + 7919)
    return arrays.subset(np.sort(rng.choice(len(arrays.labels), size=size, replace=False)))


# --------------------------------------------------------------------------- registry

METHODS: dict[str, type[UnlearningMethod]] = {}


def register(cls: type[UnlearningMethod]) -> type[UnlearningMethod]:
    """Class decorator adding a method to ``METHODS`` under ``cls.name``."""
    for attr in ("name", "paper"):
        if not getattr(cls, attr, None):
            raise TypeError(f"{cls.__name__} must set a non-empty class attribute {attr!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise TypeError(f"method name {cls.name!r} is already registered")
    if not cls.scopes or not cls.scopes <= ALL_SCOPES:
        raise TypeError(f"{cls.__name__}.scopes must be a non-empty subset of {ALL_SCOPES}")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> UnlearningMethod:
    """An instance of the method registered under ``name``."""
    try:
        return METHODS[name]()
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise UnknownMethod(f"unknown unlearning method {name!r}; known: {known}") from None


def describe_methods() -> list[dict[str, Any]]:
    """Public description of every method (GET /api/v1/methods), sorted by name."""
    return [
        {
            "name": cls.name,
            "family": cls.family,
            "exact": cls.exact,
            "paper": cls.paper,
            "scopes": sorted(cls.scopes),
            "supports_loreun": issubclass(cls.Params, ForgetLossParams),
            "summary": (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "params_schema": cls.Params.model_json_schema(),
        }
        for cls in sorted(METHODS.values(), key=lambda c: c.name)
    ]

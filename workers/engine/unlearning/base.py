"""How the engine runs a classifier-unlearning method, and the registry of implementations.

What a method *is* (its params schema, paper, scopes and cost model) is declared in
``contracts.methods.classifier``; a method file here implements one declaration
(``spec = ...``) and registers with ``@register``. ``register`` refuses an implementation
without a declaration, and the shared test refuses a declaration without an
implementation. Method files keep their torch imports inside functions; the shared torch
machinery lives in ``workers.engine.unlearning.common``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from contracts.methods import base as contract
from contracts.methods import get_method_spec
from contracts.methods.base import (
    CLASSIFIER_SCOPES,
    Budget,
    ClassifierMethodSpec,
    ClassifierScope,
    ForgetLossParams,
    IterativeParams,
    MethodParams,
)
from workers.engine.errors import EngineError, TrainingDiverged

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.data import ImageArrays
    from workers.engine.training import Callbacks

# --------------------------------------------------------------------------- errors
# The contracts' errors, made engine errors too: a job that raises one fails with its
# message, and a caller that catches the contracts' class catches these as well.


class UnknownMethod(EngineError, contract.UnknownMethod):
    """No method is registered under the requested name."""


class UnsupportedScope(EngineError, contract.UnsupportedScope):
    """The method cannot forget this kind of scope (e.g. Boundary Unlearning on samples)."""


class InvalidMethodParams(EngineError, contract.InvalidMethodParams):
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
    scope: ClassifierScope | None = None

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


@dataclass
class UnlearnResult:
    """What a method hands back: new weights, summary metrics and human-readable log."""

    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- LoReUn


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
    """One unlearning method. Subclasses set ``spec`` (their declaration) and ``unlearn``."""

    spec: ClassVar[ClassifierMethodSpec]
    # Read off the spec when a subclass sets it, so callers can read them off the class.
    name: ClassVar[str]
    family: ClassVar[Literal["classifier"]] = "classifier"
    exact: ClassVar[bool] = False
    paper: ClassVar[str]
    scopes: ClassVar[frozenset[ClassifierScope]] = CLASSIFIER_SCOPES
    Params: ClassVar[type[MethodParams]] = MethodParams
    default_epochs: ClassVar[int] = 5
    walks: ClassVar[Literal["retain", "forget"]] = "forget"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        cls.name = spec.name
        cls.exact = spec.exact
        cls.paper = spec.paper
        cls.scopes = spec.scopes
        cls.Params = spec.params
        cls.default_epochs = spec.default_epochs
        cls.walks = spec.walks

    # ------------------------------------------------------------------ cost model

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sample passes of one epoch (the declaration's cost model)."""
        return self.spec.epoch_passes(params, n_forget, n_retain)

    def fixed_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        """Sample passes spent once per run, whatever the epochs (gradients, masks)."""
        return self.spec.fixed_passes(params, n_forget, n_retain)

    def resolve_fixed(
        self, params: Any, n_forget: int, n_retain: int, allowed: float | None
    ) -> dict[str, Any]:
        """Param values a method without epochs takes for this run (see the spec)."""
        return self.spec.resolve_fixed(params, n_forget, n_retain, allowed)

    def budget(
        self,
        params: MethodParams | Mapping[str, Any] | None,
        n_forget: int,
        n_retain: int,
        train_epochs: float | None,
    ) -> Budget:
        """The epochs this run takes and what it costs (``ClassifierMethodSpec.budget``)."""
        return self.spec.budget(self.parse_params(params), n_forget, n_retain, train_epochs)

    def parse_params(self, params: MethodParams | Mapping[str, Any] | None) -> MethodParams:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        try:
            parsed: MethodParams = self.spec.parse_params(params)
        except contract.InvalidMethodParams as exc:
            raise InvalidMethodParams(str(exc)) from exc
        return parsed

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
    """Class decorator adding a method to ``METHODS`` under its declaration's name.

    An implementation must carry the contracts' declaration of that name, so the API can
    never list a method differently from how the engine runs it.
    """
    spec = cls.__dict__.get("spec")
    if not isinstance(spec, ClassifierMethodSpec):
        raise TypeError(f"{cls.__name__} must set 'spec' to its ClassifierMethodSpec")
    try:
        declared = get_method_spec(spec.name, "classifier")
    except contract.UnknownMethod:
        raise TypeError(f"{cls.__name__}: {spec.name!r} is not declared in contracts") from None
    if declared is not spec:
        raise TypeError(f"{cls.__name__}.spec is not the declaration of {spec.name!r}")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise TypeError(f"method name {cls.name!r} is already registered")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> UnlearningMethod:
    """An instance of the method registered under ``name``."""
    try:
        return METHODS[name]()
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise UnknownMethod(f"unknown unlearning method {name!r}; known: {known}") from None

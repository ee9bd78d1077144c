"""The contract every language-model (``causal_lm``) unlearning method follows, and its
registry.

Torch-free on purpose, like ``workers.engine.unlearning.base``. Each method's params,
paper and cost model are declared in ``contracts.methods.causal_lm`` (what the API lists
and validates with); the files here implement them. Method files keep their torch imports
inside functions; the shared torch machinery is ``workers.engine.lm.unlearning.common``.

A method receives a Hugging Face causal LM that is already loaded (the fine-tune to
unlearn from, or for ``retrain`` the base it was fine-tuned from), its tokenizer and the
forget / retain records, and updates the model in place. Costs are counted in sequence
passes (one forward + backward of one record), the unit the fine-tune spends too, so a
default never costs more than ``budget_fraction`` of the fine-tune (``LMMethodSpec.budget``,
the classifier methods' ``Budget``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

from contracts.causal_lm import LMTrainParams
from contracts.methods import base as contract
from contracts.methods.base import Budget
from contracts.methods.causal_lm import (
    CAUSAL_LM_METHODS,
    DEFAULT_IDK_ANSWERS,
    LMMethodParams,
    LMMethodSpec,
)
from workers.engine.errors import EngineError, TrainingDiverged

if TYPE_CHECKING:
    from workers.engine.lm.data import TextRecord
    from workers.engine.training import Callbacks

__all__ = [
    "DEFAULT_IDK_ANSWERS",
    "LM_METHODS",
    "Budget",
    "LMMethodSpec",
    "InvalidMethodParams",
    "LMMethodParams",
    "LMUnlearnData",
    "LMUnlearnResult",
    "LMUnlearningMethod",
    "UnknownMethod",
    "LMUnlearningDiverged",
    "UnsupportedRecords",
    "describe_lm_methods",
    "get_lm_method",
    "register_lm_method",
]

# --------------------------------------------------------------------------- errors
# The contracts' errors, made engine errors too: a job that raises one fails with its
# message, and a caller that catches the contracts' class catches these as well.


class UnknownMethod(EngineError, contract.UnknownMethod):
    """No language-model method is registered under the requested name."""


class InvalidMethodParams(EngineError, contract.InvalidMethodParams):
    """The params given for a method do not validate against its ``Params`` schema."""


class LMUnlearningDiverged(TrainingDiverged):
    """The loss went NaN/inf, or the retain NLL rose above ``retain_loss_ceiling``.

    Either way the weights are no longer worth keeping, so the job fails instead of
    producing a model version that forgot everything.
    """


class UnsupportedRecords(EngineError):
    """The method cannot work on these records (IdK needs questions to refuse)."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LMUnlearnData:
    """Already-resolved records of one run: what to forget and what to keep.

    The runner turns a deletion request (a person, some samples) into these lists; a
    method never sees the database. ``idk`` overrides the refusals the IdK methods use.
    ``calibration`` holds records of people the model was never trained on, the level the
    ``stop_at_holdout`` rule stops at (never the ones the verdict then judges on).
    """

    forget: list[TextRecord]
    retain: list[TextRecord]
    idk: list[str] | None = None
    calibration: list[TextRecord] | None = None

    def __post_init__(self) -> None:
        if not self.forget:
            raise EngineError("the forget set is empty: there is nothing to unlearn")
        if not self.retain:
            raise EngineError("the retain set is empty")
        clash = {r.sample_id for r in self.forget} & {r.sample_id for r in self.retain}
        if clash:
            raise EngineError(f"samples {sorted(clash)[:5]} are both forgotten and retained")
        if self.calibration is not None:
            seen = {r.sample_id for r in (*self.forget, *self.retain)}
            trained = sorted(seen & {r.sample_id for r in self.calibration})
            if trained:
                raise EngineError(
                    f"calibration records {trained[:5]} are also forgotten or retained: "
                    "calibration must come from people the model never saw"
                )
        if self.idk is not None:
            answers = [str(a).strip() for a in self.idk]
            if not answers or not all(answers):
                raise EngineError("idk answers must be non-empty strings")
            object.__setattr__(self, "idk", answers)


@dataclass
class LMUnlearnResult:
    """What a method hands back: the model (updated in place, or a merged LoRA model that
    replaces it), summary metrics and a human-readable log."""

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- methods


class LMUnlearningMethod(ABC):
    """One language-model unlearning method. Subclasses set ``spec`` (their declaration
    in ``contracts.methods.causal_lm``) and ``unlearn``; the runner calls ``run``."""

    spec: ClassVar[LMMethodSpec]
    # Read off the spec when a subclass sets it, so callers can read them off the class.
    name: ClassVar[str]
    family: ClassVar[Literal["causal_lm"]] = "causal_lm"
    exact: ClassVar[bool] = False
    paper: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = LMMethodParams
    default_epochs: ClassVar[int] = 10
    needs_reference: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        cls.name = spec.name
        cls.exact = spec.exact
        cls.paper = spec.paper
        cls.Params = spec.params
        cls.default_epochs = spec.default_epochs
        cls.needs_reference = spec.needs_reference

    def budget(
        self,
        params: BaseModel | Mapping[str, Any] | None,
        n_forget: int,
        n_retain: int,
        train_epochs: float | None,
    ) -> Budget:
        """The epochs this run takes and what it costs (``LMMethodSpec.budget``)."""
        return self.spec.budget(self.parse_params(params), n_forget, n_retain, train_epochs)

    def parse_params(self, params: BaseModel | Mapping[str, Any] | None) -> Any:
        """Accept a Params instance, a plain dict (from a job row) or None (defaults)."""
        try:
            return self.spec.parse_params(params)
        except contract.InvalidMethodParams as exc:
            raise InvalidMethodParams(str(exc)) from exc

    def run(
        self,
        model: Any,
        tokenizer: Any,
        data: LMUnlearnData,
        params: BaseModel | Mapping[str, Any] | None = None,
        callbacks: Callbacks | None = None,
        reference: Any | None = None,
        train_params: Any | None = None,
    ) -> LMUnlearnResult:
        """Validate params, size the run from the budget, then unlearn.

        ``reference`` is a frozen copy of the model before unlearning for the methods that
        need one (the method makes it when not given); ``train_params`` is the fine-tune's recipe
        (an ``LMTrainParams``): it sizes the budget, and ``retrain`` replays it.
        """
        parsed = self.parse_params(params)
        if callbacks is None:
            from workers.engine.training import Callbacks

            callbacks = Callbacks()
        if train_params is not None and not isinstance(train_params, LMTrainParams):
            # A recipe read from a job row or a version's config.
            raw = train_params.model_dump() if isinstance(train_params, BaseModel) else train_params
            try:
                train_params = LMTrainParams.model_validate(dict(raw))
            except ValidationError as exc:
                raise EngineError(f"the fine-tune's recipe does not validate: {exc}") from exc
        # A recipe without explicit epochs (an uploaded model) says nothing about its cost.
        known = train_params is not None and "epochs" in train_params.model_fields_set
        budget = self.budget(
            parsed,
            len(data.forget),
            len(data.retain),
            float(train_params.epochs) if known and train_params is not None else None,
        )
        if budget.epochs is not None and "epochs" in type(parsed).model_fields:
            parsed = parsed.model_copy(update={"epochs": budget.epochs})
        note = budget.note(self.name)
        callbacks.on_log(note)
        result = self.unlearn(model, tokenizer, data, parsed, callbacks, reference, train_params)
        result.log.insert(0, note)
        result.metrics["estimated_passes"] = float(budget.passes)
        if budget.cost_fraction is not None:
            result.metrics["estimated_cost_fraction"] = float(budget.cost_fraction)
        return result

    @abstractmethod
    def unlearn(
        self,
        model: Any,
        tokenizer: Any,
        data: LMUnlearnData,
        params: Any,
        callbacks: Callbacks,
        reference: Any | None = None,
        train_params: Any | None = None,
    ) -> LMUnlearnResult:
        """The method itself; ``params`` is an instance of ``self.Params`` with its
        epochs resolved."""


# --------------------------------------------------------------------------- registry

LM_METHODS: dict[str, type[LMUnlearningMethod]] = {}


def register_lm_method(cls: type[LMUnlearningMethod]) -> type[LMUnlearningMethod]:
    """Class decorator adding a method to ``LM_METHODS`` under its spec's name; the spec
    must be one of ``CAUSAL_LM_METHODS``, so the API and the engine list the same ones."""
    spec = cls.__dict__.get("spec")
    if spec is None:
        raise TypeError(f"{cls.__name__} must set 'spec' (its declaration in contracts)")
    if spec not in CAUSAL_LM_METHODS:
        raise TypeError(f"{cls.__name__}.spec {spec.name!r} is not in CAUSAL_LM_METHODS")
    if cls.name in LM_METHODS and LM_METHODS[cls.name] is not cls:
        raise TypeError(f"language-model method name {cls.name!r} is already registered")
    LM_METHODS[cls.name] = cls
    return cls


def get_lm_method(name: str) -> LMUnlearningMethod:
    """An instance of the language-model method registered under ``name``."""
    try:
        return LM_METHODS[name]()
    except KeyError:
        known = ", ".join(sorted(LM_METHODS))
        raise UnknownMethod(
            f"unknown language-model unlearning method {name!r}; known: {known}"
        ) from None


def describe_lm_methods(names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Public description of every language-model method, sorted by name."""
    chosen = sorted(LM_METHODS.values(), key=lambda c: c.name)
    if names is not None:
        chosen = [c for c in chosen if c.name in set(names)]
    return [cls.spec.describe() for cls in chosen]
